# ruff: noqa: F811  (the browser fixtures are imported by name, then requested as parameters)
"""The viewer's pages in a real headless browser (Debian's Chromium via Playwright): each loads with no console
error and no request beyond its own file, and what it draws matches the data it was made from, element for element."""

import json

import pytest
from artefacts import made as shared_inputs
from browser import browser, page  # noqa: F401  (fixtures)

from benchmarks.eval.store import canonical_json
from engine.view.load import load_view
from engine.view.page import render_page


@pytest.fixture(scope="module")
def pages(tmp_path_factory, tokenizer):
    """Inputs made in-process and their pages (``ttscale view``'s output)."""
    d, made = shared_inputs(tmp_path_factory, tokenizer)
    lines = (d / "trace.jsonl").read_text().splitlines()
    (d / "cut.jsonl").write_text("\n".join(lines[:-3]) + "\n")
    for name, src in (("trace", "trace.jsonl"), ("tree", "tree.json"), ("eval", "eval"), ("curation", "cur"), ("cut", "cut.jsonl")):
        (d / f"{name}.html").write_text(render_page(load_view(str(d / src))))
    (d / "empty.html").write_text(render_page(None))
    return d, made


def opened(page, d, name, kind):
    requests = []
    page.page.on("request", lambda r: requests.append(r.url))
    page.open(str(d / f"{name}.html"), kind)
    assert page.problems() == [], f"console errors on the {name} page"
    assert all(u.startswith("file://") for u in requests) and len(requests) == 1, requests
    return page


def test_trace_page_has_one_span_per_token_and_marks_match(page, pages):
    d, made = pages
    p = opened(page, d, "trace", "trace")
    toks = [r for r in made["trace"] if r["type"] == "token" and r["prompt_index"] == 0]
    assert p.count("#tokens .t") == len(toks) == int(p.text("#token-count"))
    forced = [i for i, t in enumerate(toks) if t["source"] == "forced"]
    sups = [i for i, t in enumerate(toks) if "suppressed_end" in t]
    assert forced and sups, "the fixture trace must force tokens and suppress endings"
    got_forced = p.page.eval_on_selector_all("#tokens .t.f", "els => els.map(e => +e.dataset.i)")
    got_sup = p.page.eval_on_selector_all("#tokens .sup", "els => els.map(e => +e.dataset.i)")
    assert got_forced == forced and got_sup == sups and p.count("#tokens .t.s") == len(sups)
    texts = p.page.eval_on_selector_all("#tokens .t", "els => els.map(e => e.textContent)")
    assert [t.replace("↵", "").replace("→", "") for t in texts] == [t["text"] for t in toks]
    assert p.count("#tokens .phase") == 1 + sum(a["phase"] != b["phase"] for a, b in zip(toks, toks[1:]))
    # hover shows the top alternatives; a click pins them
    k = sups[0]
    p.page.hover(f'#tokens .t[data-i="{k}"]')
    tip = p.text("#tip")
    assert "suppressed ending" in tip and json.dumps(toks[k]["top"][0][1]) in tip
    p.page.click(f'#tokens .t[data-i="{k + 1}"]')
    assert f"#{k + 1}" in p.text("#detail")
    # entropy colouring switches classes, not the spans
    p.page.click("#mode-entropy")
    assert "mode-entropy" in p.page.get_attribute("#tokens", "class") and p.count("#tokens .t") == len(toks)
    bins = p.page.eval_on_selector_all("#tokens .t", "els => els.map(e => [...e.classList].find(c => /^e[0-9x]$/.test(c)))")
    assert bins == [f"e{min(9, int(t['entropy'] / 0.5))}" for t in toks]
    # the second prompt
    p.page.select_option("#prompt-select", "1")
    assert p.count("#tokens .t") == sum(1 for r in made["trace"] if r["type"] == "token" and r["prompt_index"] == 1)
    assert p.problems() == []


def test_a_trace_cut_short_is_drawn_with_a_visible_warning(page, pages):
    d, made = pages
    p = opened(page, d, "cut", "trace")
    p.page.select_option("#prompt-select", "1")
    assert "cut short" in p.text("#warnings") and p.page.is_visible("#cut-short")
    full = sum(1 for r in made["trace"] if r["type"] == "token" and r["prompt_index"] == 1)
    assert p.count("#tokens .t") == full - 3


def test_tree_page_draws_every_node_with_its_status(page, pages):
    d, made = pages
    p = opened(page, d, "tree", "tree")
    nodes = [n for n in made["tree"]["nodes"] if n["problem"] == 0]
    assert p.count("#tree circle.node") == len(nodes) == int(p.text("#node-count"))
    for status in ("kept", "pruned", "finished"):
        want = sum(n["status"] == status for n in nodes)
        assert p.count(f"#tree circle.node.{status}") == want
        if want:
            assert int(p.text(f"#count-{status}")) == want
    groups = {n["group"] for n in nodes if n["depth"] == 1}
    assert p.count("#tree rect.band") == len(groups) == 4  # DVTS: N/M subtrees
    prob = made["tree"]["problems"][0]
    byid = {n["id"]: n for n in nodes}
    path, at = [], prob["chosen"]
    while at is not None:
        path.append(at)
        at = byid[at]["parent"]
    onpath = p.page.eval_on_selector_all("#tree circle.onpath", "els => els.map(e => +e.dataset.id)")
    assert sorted(onpath) == sorted(path)
    assert p.text("#chosen-answer") == ("none" if prob["answer"] is None else str(prob["answer"]))
    assert p.count("#votes tr") - 1 == len(prob["answers"])
    # a click shows the branch's text, root to leaf
    leaf = byid[prob["completions"][-1]]
    p.page.click(f'#tree circle[data-id="{leaf["id"]}"]')
    steps = p.page.eval_on_selector_all("#branch .step-text", "els => els.map(e => e.textContent)")
    want, at = [], leaf
    while at["parent"] is not None:
        want.append(at["text"])
        at = byid[at["parent"]]
    assert steps == want[::-1] and f"branch to node {leaf['id']}" in p.text("#branch")
    p.page.select_option("#problem-select", "1")
    assert p.count("#tree circle.node") == sum(n["problem"] == 1 for n in made["tree"]["nodes"])
    assert p.problems() == []


def test_eval_page_points_are_the_settings_of_metrics_json(page, pages):
    d, made = pages
    p = opened(page, d, "eval", "eval")
    metrics = json.loads((d / "eval" / "metrics.json").read_text())
    want = sorted((s["method"], canonical_json(s["setting"])) for s in metrics["settings"])
    got = p.page.eval_on_selector_all(".pt", "els => els.map(e => [e.dataset.method, e.dataset.setting])")
    assert sorted(map(tuple, got)) == want
    assert p.count("#chart-sequential .pt") == sum(s["scaling"] == "sequential" for s in metrics["settings"])
    p.page.hover("#chart-parallel .pt")
    assert "accuracy" in p.text("#tip") and "95% CI" in p.text("#tip")
    p.page.click("#chart-sequential .pt")
    k = int(p.page.get_attribute("#chart-sequential .pt.sel", "data-k"))
    s = metrics["settings"][k]
    rows = [r for r in made["eval"] if r["method"] == s["method"] and r["setting"] == s["setting"]]
    assert p.count("#sample-table tr.sample") == len(rows) == s["problems"]
    assert p.count("#sample-table .ok") == sum(r["correct"] for r in rows)
    assert "<b>what</b>" in p.page.text_content("#sample-table") and p.count("#sample-table b") == 0  # a prompt's markup is shown as text, not run as HTML
    assert p.problems() == []


def test_curation_page_counts_every_stage_and_drop(page, pages):
    d, made = pages
    p = opened(page, d, "curation", "curation")
    stages = made["curation"]["stages"]
    assert p.count("#stages tr.stage") == len(stages)
    cells = p.page.eval_on_selector_all("#stages tr.stage", "els => els.map(e => [...e.cells].slice(0, 4).map(c => c.textContent))")
    assert cells == [[s["stage"], str(s["in"]), str(s["out"]), str(s["dropped"])] for s in stages]
    assert "figure 2" in p.text("#stages") and "not_selected 6" in p.text("#stages")


def test_the_empty_viewer_opens_files_in_the_page(page, pages):
    d, made = pages
    p = opened(page, d, "empty", "picker")
    p.page.set_input_files("#files", str(d / "trace.jsonl"))
    p.wait("trace")
    assert p.count("#tokens .t") == sum(1 for r in made["trace"] if r["type"] == "token" and r["prompt_index"] == 0)
    p.page.goto("file://" + str(d / "empty.html"))
    p.wait("picker")
    p.page.set_input_files("#files", [str(d / "eval" / "metrics.json"), str(d / "eval" / "samples.jsonl")])
    p.wait("eval")
    assert p.count(".pt") == len(json.loads((d / "eval" / "metrics.json").read_text())["settings"])
    p.page.goto("file://" + str(d / "empty.html"))
    p.wait("picker")
    p.page.set_input_files("#files", str(d / "cur" / "summary.md"))
    p.page.wait_for_selector("#open-error .error")
    assert "neither a trace" in p.text("#open-error")
    assert p.errors == []
