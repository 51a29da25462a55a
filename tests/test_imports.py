"""The project's import graph, built from the source: no cycles, and no first-party import hidden inside a function.

A cycle is what an import inside a function used to paper over (datasets <-> synthetic, eval <-> eval_methods, the
CLI and its command modules). Imports inside functions are allowed only for a third-party package, and only with a
comment on that line saying why it is deferred (an optional or heavy dependency).
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "benchmarks", "train", "curation")


def _modules() -> dict[str, pathlib.Path]:
    """Every first-party module name and its file (``engine/cli/__init__.py`` is ``engine.cli``)."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(tree: ast.AST, modules: dict) -> list[tuple[str, int, bool]]:
    """(first-party target, line, inside a function) for every import statement of a module."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name in modules:
                        found.append((alias.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    target = sub if sub in modules else child.module
                    if target in modules:
                        found.append((target, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t, _, _ in _imports(ast.parse(path.read_text(encoding="utf-8")), modules) if t != name}
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_the_real_edges():
    graph = _graph()
    assert "engine.cli.flags" in graph["engine.cli.main"]               # the parser: every command's flags
    assert "engine.cli.flags" in graph["engine.cli.generate"]           # a runner reads its flags from there
    assert "benchmarks.data.problem" in graph["benchmarks.data.synthetic"]
    assert len(graph) > 40


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_no_first_party_import_inside_a_function():
    modules = _modules()
    hidden = [f"{path.relative_to(ROOT)}:{line} imports {target}"
              for name, path in modules.items()
              for target, line, inside in _imports(ast.parse(path.read_text(encoding="utf-8")), modules) if inside]
    assert hidden == []


def test_deferred_third_party_imports_say_why():
    bare = []
    for path in _modules().values():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and "#" not in lines[inner.lineno - 1]:
                        bare.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {lines[inner.lineno - 1].strip()}")
    assert bare == []
