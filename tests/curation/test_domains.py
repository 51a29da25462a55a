"""The MSC2020 table: 63 classes, s1's 61, titles as published, subject names mapped as documented."""

import re

import pytest

from curation.domains import KEYWORDS, MSC2020, S1_CODES, SUBJECT_CODES, domain_codes, domain_name, domain_record, subject_code
from engine.errors import TTScaleError


def test_msc2020_has_the_63_published_classes_in_order():
    assert len(MSC2020) == 63
    assert list(MSC2020) == sorted(MSC2020)
    assert all(re.fullmatch(r"\d\d", c) for c in MSC2020)
    # spot checks against the published titles
    assert MSC2020["00"] == "General and overarching topics; collections"
    assert MSC2020["11"] == "Number theory"
    assert MSC2020["15"] == "Linear and multilinear algebra; matrix theory"
    assert MSC2020["91"] == "Game theory, economics, finance, and other social and behavioral sciences"
    assert MSC2020["97"] == "Mathematics education"
    for gone in ("02", "04", "07", "09", "10", "21", "23", "24", "25", "27", "29", "36", "38", "48", "50", "56", "59",
                 "61", "63", "64", "66", "67", "69", "71", "72", "73", "75", "77", "79", "84", "87", "88", "89", "95", "96", "98", "99"):
        assert gone not in MSC2020


def test_s1_codes_are_msc2020_without_general_and_history():
    assert len(S1_CODES) == 61                                   # REFERENCE §1: "61 two-digit codes"
    assert set(MSC2020) - set(S1_CODES) == {"00", "01"}
    assert domain_codes("s1") == S1_CODES and len(domain_codes("msc2020")) == 63
    with pytest.raises(TTScaleError, match="code set 'msc2010' is unknown"):
        domain_codes("msc2010")


def test_names_and_records():
    assert domain_name("05") == "Combinatorics"
    assert domain_record("11", "subject", "x") == {"code": "11", "name": "Number theory", "method": "subject", "detail": "x"}
    for bad in ("02", "1", "111", 11, None):
        with pytest.raises(TTScaleError, match="not an MSC2020 top-level class"):
            domain_name(bad)


def test_math_subjects_map_as_documented():
    expected = {"Prealgebra": "97", "Algebra": "12", "Intermediate Algebra": "12", "Precalculus": "26",
                "Number Theory": "11", "Geometry": "51", "Counting & Probability": "05"}
    assert {s: subject_code(s) for s in expected} == expected
    assert subject_code("counting and probability") == subject_code("  COUNTING &  PROBABILITY ") == "05"
    assert subject_code("Linear_Algebra") == "15"
    assert subject_code("Basket weaving") is None and subject_code(None) is None


def test_every_table_code_is_msc2020():
    assert set(SUBJECT_CODES.values()) <= set(MSC2020)
    assert set(KEYWORDS) <= set(S1_CODES)
    for code, patterns in KEYWORDS.items():
        for pattern, weight in patterns:
            re.compile(pattern)
            assert weight > 0, (code, pattern)


def test_the_curation_modules_import_no_model_or_plotting_library():
    """The CLI builds its flags from these configs, so importing them must stay cheap."""
    import subprocess
    import sys

    code = ("import sys, curation.domains, curation.diversity, curation.select, curation.output; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
