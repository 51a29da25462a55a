"""The curation record: ids equal up to case and spacing, clear refusals, a lossless JSON round trip."""

import pytest

from curation.schema import Drop, Question, normalise, question_id
from engine.errors import TTScaleError


def test_ids_ignore_case_and_spacing_only():
    assert normalise("  What IS\n2 +  2?\t") == "what is 2 + 2?"
    assert question_id("What is 2+2?") == question_id("what   is 2+2?") != question_id("What is 2+3?")
    assert len(question_id("x")) == 16


def test_round_trip_and_defaults():
    q = Question("What is 2+2?", solution="2+2=4", answer=4, source="synthetic", metadata={"level": 1})
    assert q.answer == "4" and q.id == question_id("What is 2+2?")
    assert Question.from_json(q.to_json()) == q
    assert Question("x", solution=None).solution == ""
    assert Drop(q.id, "quality", "figure", "[asy]").to_json()["reason"] == "figure"


@pytest.mark.parametrize("bad", ["", "   ", None, 3, ["a"]])
def test_a_question_must_be_text(bad):
    with pytest.raises(TTScaleError, match="empty or not text"):
        Question(bad, source="pool.jsonl")


def test_metadata_must_be_a_mapping():
    with pytest.raises(TTScaleError, match="metadata must be a mapping"):
        Question("x", metadata=[1])
