"""The house rules of the tree: tests mirror the source folders, and each source folder holds one concept."""

import pathlib

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
