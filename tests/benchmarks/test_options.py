"""``benchmarks/options.py``: every ``ttscale bench`` benchmark's flags, importable without torch or math-verify."""

import subprocess
import sys

import pytest
from conftest import REPO

from benchmarks.options import BENCHMARKS, GradingOptions
from engine.errors import ConfigError


def test_the_registry_is_torch_free():
    code = "import sys, benchmarks.options; print(sorted(m for m in ('torch', 'transformers', 'math_verify', 'sympy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()
    assert out == "[]"


def test_every_benchmark_has_a_runner_and_help():
    assert set(BENCHMARKS) == {"budget", "search", "kv-cache", "prm-memory", "serve", "view", "grading", "decontam"}
    for name, b in BENCHMARKS.items():
        module, _, function = b.run.partition(":")
        assert module.startswith("benchmarks.") and function == "main", name
        assert b.help and not b.help.endswith("."), name
        assert all(f.metadata.get("help") for _, f, _ in b.spec.fields.values()), name


@pytest.mark.parametrize("value", [0, -3, True, "200"])
def test_grading_refuses_a_bad_sample_count(value):
    with pytest.raises(ConfigError, match="per_template must be an integer >= 1"):
        GradingOptions(per_template=value)
