"""Lazy package exports: importing ``engine`` or ``engine.search`` loads no torch; a name loads its module on use."""

import subprocess
import sys

import pytest
from conftest import REPO

import engine
import engine.search


def test_packages_import_without_torch_and_export_on_use():
    code = ("import sys, engine, engine.search\nbefore = 'torch' in sys.modules\n"
            "from engine import ThinkingEngine, load_model\nfrom engine.search import Searcher\n"
            "print(before, 'torch' in sys.modules, ThinkingEngine.__module__, Searcher.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout.split()
    assert out == ["False", "True", "engine.engine", "engine.search.searcher"]


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'engine' has no attribute 'nope'"):
        engine.nope  # noqa: B018
    with pytest.raises(AttributeError, match="module 'engine.search' has no attribute 'Nope'"):
        engine.search.Nope  # noqa: B018
    assert set(engine.__all__) >= {"ThinkingEngine", "load_model", "ModelConfig"}
