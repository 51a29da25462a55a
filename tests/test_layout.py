"""The house rules of the tree: tests mirror the source folders, and each source folder holds one concept."""

import pathlib
import re

from engine.cli.main import build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def _packages_with_code() -> set[str]:
    """Source packages (relative paths) that hold at least one module besides ``__init__.py``."""
    out = set()
    for init in ROOT.glob("*/**/__init__.py"):
        pkg = init.parent
        if pkg.parts[len(ROOT.parts)] in ("tests", ".venv", "build") or any(p.startswith(".") for p in pkg.relative_to(ROOT).parts):
            continue
        if any(m.name != "__init__.py" for m in pkg.glob("*.py")):
            out.add(str(pkg.relative_to(ROOT)))
    return out


def test_every_test_folder_mirrors_a_source_package():
    folders = {str(d.relative_to(TESTS)) for d in TESTS.rglob("*") if d.is_dir() and d.name != "__pycache__"}
    assert folders, "tests/ has no sub-folders"
    orphans = sorted(f for f in folders if not (ROOT / f / "__init__.py").is_file())
    assert orphans == [], f"test folders without a source package of the same path: {orphans}"


def test_every_source_package_with_code_has_its_tests():
    missing = sorted(p for p in _packages_with_code() if not any((TESTS / p).glob("test_*.py")))
    assert missing == [], f"source packages without tests/<same path>/test_*.py: {missing}"


def test_the_library_holds_no_benchmark_and_the_cli_is_one_package():
    inside = list((ROOT / "engine").rglob("bench*.py"))
    assert inside == [], "benchmarks live in benchmarks/speed, not in the library"
    assert (ROOT / "engine" / "cli" / "main.py").is_file() and not (ROOT / "engine" / "cli.py").exists()


def test_readme_shows_the_real_generate_usage(monkeypatch):
    """The README's "All generate flags" block is ``ttscale generate --help``'s usage at 120 columns, as printed."""
    monkeypatch.setenv("COLUMNS", "120")
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    usage = sub.choices["generate"].format_usage().strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("### All `generate` flags\n\n```\n", 1)[1].split("```", 1)[0].strip()
    assert block == usage


def test_readme_names_only_files_that_ship():
    """Every repository path the README names (``engine/...``, ``scripts/x.sh``, ``docs/...``, an image) exists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w./-])((?:engine|benchmarks|tests|scripts|docs|train|curation|\.ci)/[\w./-]*[\w/])", readme))
    named |= {m for m in re.findall(r"\]\(([^)#\s]+)\)", readme) if "://" not in m}
    named |= set(re.findall(r"`([\w-]+\.(?:toml|txt|cfg|py))`", readme)) & {"pyproject.toml", "constraints.txt", "setup.py"}
    assert len(named) > 20
    missing = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"the README names files that do not ship: {missing}"


def test_readme_layout_block_names_real_modules():
    """Each line of the README's layout block (``folder/  what · file.py · ...``) names files of that folder that exist."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Development", 1)[1].split("```", 2)[1]
    checked = 0
    for line in block.strip().splitlines():
        folders = [f for f in line.split("  ", 1)[0].split() if f.endswith("/")]
        if not folders:
            continue
        for name in re.findall(r"(?<![\w/])([\w]+\.(?:py|sh))\b", line):
            assert any((ROOT / f / name).exists() for f in folders), f"{name} is not in {' or '.join(folders)}"
            checked += 1
    assert checked > 30


def test_test_files_have_unique_basenames():
    """pytest imports test modules by basename (rootdir mode, no packages): two test files with one name break collection."""
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
