"""Config dataclasses drive the CLI: one flag per field with its help, ``--config FILE.yaml``, errors per audience."""

import dataclasses
import subprocess
import sys

import pytest
from conftest import REPO

from benchmarks.options import BENCHMARKS
from curation.schema import STAGES
from engine.cli import flags
from engine.cli.args import CommandConfig
from engine.cli.eval import config_from_args
from engine.cli.main import build_parser, main, run_command
from engine.errors import ConfigError
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.search.config import SearchConfig

SPECS = {"generate": flags.GENERATE, "search": flags.SEARCH, "eval": flags.EVAL, "trace show": flags.TRACE, "view": flags.VIEW,
         **{f"bench {name}": b.spec for name, b in BENCHMARKS.items()}}


@pytest.mark.parametrize("name", SPECS)
def test_every_flag_is_a_field_with_help(name):
    spec = SPECS[name]
    assert spec.fields
    for field_name, (cls, f, _) in spec.fields.items():
        assert f.metadata.get("help"), f"{cls.__name__}.{field_name} has no help"
    argv = name.split() + ["--help"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


def test_help_lists_the_fields_flags(capsys):
    assert main(["generate", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--min-thinking-tokens", "--ignore-str", "--temperature", "--model", "--format", "--batch-size", "--config"):
        assert flag in out


def test_library_errors_name_the_field_and_the_cli_names_the_flag(capsys):
    with pytest.raises(ConfigError, match=r"^max_thinking_tokens must be >= 1") as err:
        BudgetConfig(max_thinking_tokens=0)
    assert err.value.field == "max_thinking_tokens"
    with pytest.raises(ConfigError, match=r"^beam_width"):
        SearchConfig(beam_width=0)
    with pytest.raises(ConfigError, match=r"^top_p must be in \(0, 1\]"):
        SamplingConfig(top_p=0)
    assert main(["generate", "x", "--max-thinking-tokens", "0"]) == 2
    assert capsys.readouterr().err.startswith("ttscale: error: --max-thinking-tokens must be >= 1")
    assert main(["search", "x", "--beam-width", "0"]) == 2
    assert "--beam-width must be an integer >= 1" in capsys.readouterr().err
    assert main(["search", "x", "--no-dedup", "--n", "6", "--beam-width", "4"]) == 2
    assert "--n 6 is not divisible by --beam-width 4" in capsys.readouterr().err


def test_nan_is_refused_before_any_model_loads(capsys):
    assert main(["generate", "x", "--temperature", "nan", "--model", "/no/such/model"]) == 2
    assert "--temperature must be a number >= 0" in capsys.readouterr().err


def _args(name, argv):
    return build_parser().parse_args(name.split() + argv)


def test_config_file_sets_values_and_flags_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("max-thinking-tokens: 64\nmin_thinking_tokens: 8\nignore_str: [Wait, Hmm]\ntemperature: 0.5\n"
                    "strategy: dvts\nn: 8\nbeam_width: 4\nprompt: [\"What is 2+2?\"]\n")
    c = flags.SEARCH.build(_args("search", ["--config", str(path), "--min-thinking-tokens", "16"]))
    b = c[BudgetConfig]
    assert (b.max_thinking_tokens, b.min_thinking_tokens, b.ignore_strs) == (64, 16, ("Wait", "Hmm"))
    assert c[SamplingConfig].temperature == 0.5 and c[SearchConfig].strategy == "dvts"
    assert c[flags.PromptOptions].prompts() == ["What is 2+2?"]
    # without the file: the command's own default (search samples at T = 0.8), the dataclass defaults elsewhere
    d = flags.SEARCH.build(_args("search", ["x"]))
    assert d[SamplingConfig].temperature == 0.8 and d[BudgetConfig] == BudgetConfig()
    assert flags.GENERATE.build(_args("generate", ["x"]))[SamplingConfig].temperature == 0.0


@pytest.mark.parametrize("text, message", [
    ("max_thinking_tokenz: 3\n", "unknown key 'max_thinking_tokenz'; did you mean 'max_thinking_tokens'?"),
    ("max_thinking_tokens: many\n", "max_thinking_tokens must be an integer, got 'many'"),
    ("json: 1\n", "json must be true or false, got 1"),
    ("temperature: [1, 2]\n", "temperature must be a number"),
    ("- a\n- b\n", "must be a mapping of settings"),
    ("a: [\n", "not a readable YAML file (line 2: "),
    ("batch_size: null\n", "batch_size may not be empty"),
])
def test_bad_config_files_are_one_sentence(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["generate", "x", "--config", str(path), "--model", "/no/such/model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttscale: error: --config ") and message in err and "Traceback" not in err


def test_config_file_values_are_checked_by_the_dataclass_too(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("min_thinking_tokens: 9\nmax_thinking_tokens: 4\n")
    assert main(["generate", "x", "--config", str(path), "--model", "/no/such/model"]) == 2
    assert "--min-thinking-tokens (9) is larger than --max-thinking-tokens (4)" in capsys.readouterr().err
    assert main(["generate", "x", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "--config" in capsys.readouterr().err


def test_eval_takes_a_config_file_too(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("dataset: synthetic\nmethod: [budget, majority]\nbudgets: [8, 16]\nn: [1, 2]\nlimit: 3\n")
    config = config_from_args(_args("eval", ["--config", str(path), "--limit", "2"]))
    assert config.methods == ("budget", "majority") and config.budgets == (8, 16) and config.limit == 2


def test_command_config_refuses_a_field_exposed_twice():
    @dataclasses.dataclass
    class A:
        temperature: float = 1.0

    with pytest.raises(TypeError, match="temperature is in both"):
        CommandConfig(A, SamplingConfig)


def test_every_registered_command_uses_a_command_config():
    """No command builds flags by hand: every leaf parser was filled by a CommandConfig (it sets ``_spec``)."""
    parser = build_parser()
    leaves = []

    def walk(p, path):
        subs = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs or path in (["eval"], ["curate"]):
            leaves.append((" ".join(path), p))
        for action in subs:
            for name, child in action.choices.items():
                walk(child, path + [name])

    walk(parser, [])
    names = {name for name, _ in leaves if name and name != "eval report"}
    assert names == {"generate", "search", "eval", "trace show", "view", "curate", *(f"curate {s}" for s in STAGES), "train sft", "recipe s1-mini", "serve",
                     *(f"bench {b}" for b in BENCHMARKS)}
    for name, p in leaves:
        if name in names:
            assert p.get_default("_spec") is not None, name


def test_commands_are_registered_not_discovered():
    """Commands are listed in ``flags.COMMANDS``, not found by scanning: only ``main.run_command`` imports by name, and
    every command module with a ``run`` is the runner of some parser (none is left unreachable)."""
    import pathlib

    import engine.cli.main as cli_main

    folder = pathlib.Path(cli_main.__file__).parent
    by_name = [p.name for p in folder.glob("*.py") if "importlib" in p.read_text(encoding="utf-8") or "__import__" in p.read_text(encoding="utf-8")]
    assert by_name == ["main.py"]
    runners = {p.get_default("func").partition(":")[0] for _, p in _leaf_parsers(build_parser()) if p.get_default("func")}
    modules = {f"engine.cli.{p.stem}" for p in folder.glob("*.py") if "\ndef run(" in p.read_text(encoding="utf-8")}
    assert modules == {"engine.cli.generate", "engine.cli.search", "engine.cli.eval", "engine.cli.trace", "engine.cli.view",
                       "engine.cli.curate", "engine.cli.serve"}
    assert modules <= runners


def _leaf_parsers(parser, path=()):
    """Every parser of the ``ttscale`` tree with its command path."""
    yield " ".join(path), parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, child in action.choices.items():
                yield from _leaf_parsers(child, (*path, name))


def test_every_command_names_a_runner_that_resolves():
    """The parser names each command's runner as ``module:function``; every one imports and is callable."""
    runners = {name: p.get_default("func") for name, p in _leaf_parsers(build_parser()) if p.get_default("func")}
    assert {"generate", "search", "eval", "eval report", "trace show", "view", "curate", "train sft", "recipe s1-mini", "serve",
            *(f"bench {b}" for b in BENCHMARKS)} <= set(runners)
    for name, func in runners.items():
        assert isinstance(func, str) and ":" in func, name
        assert callable(run_command(func)), name


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["generate", "--help"], ["search", "--help"], ["eval", "--help"],
                                  ["trace", "show", "--help"], ["bench", "budget", "--help"], ["generate", "--temperature", "x"]])
def test_help_and_refused_flags_import_no_torch(argv):
    """``--help``, ``--version`` and a flag argparse refuses answer from the torch-free parser: in a fresh interpreter,
    neither torch nor transformers is imported afterwards."""
    code = ("import sys, contextlib, io\nfrom engine.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            f"    status = main({argv!r})\n"
            "print(status, 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout.split()
    assert out == [("2" if argv[-1] == "x" else "0"), "False", "False"], out
