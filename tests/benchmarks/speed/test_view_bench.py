"""``ttscale bench view`` at tiny sizes in headless Chromium: the JSON line's shape and that the pages show what was
generated (speed itself is not asserted here). Skips without Chromium, except in CI, where it fails."""

import json
from collections import Counter

from conftest import need_browser

from benchmarks.speed.view import synth_trace, synth_tree
from engine.cli.main import main
from engine.trace import HEADER_FIELDS


def test_bench_view_at_tiny_sizes(capsys):
    need_browser("the browser benchmark test")
    assert main(["bench", "view", "--tokens", "300", "--nodes", "40", "--repeats", "1", "--warmup", "0", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert list(result) == ["benchmark", "config", "versions", "device", "timing", "figures"]
    assert result["benchmark"] == "view" and result["config"]["tokens"] == 300 and result["config"]["nodes"] == 40
    assert result["timing"]["warmup"] == 0 and result["timing"]["repeats"] == 1
    assert result["device"]["browser"].startswith("chromium ")
    fig = result["figures"]
    assert fig["target_ms"] == 2000 and isinstance(fig["pass"], bool)
    trace, tree = fig["trace"], fig["tree"]
    assert trace["tokens"] == trace["spans"] == 300 and trace["counts_match"] and trace["interactions_ok"]
    assert tree["nodes"] == tree["circles"] == 40 and tree["counts_match"] and tree["interactions_ok"]
    assert set(trace["interactions"]) == {"mode_entropy", "mode_prob", "hover", "pin"}
    assert set(tree["interactions"]) == {"click", "hover"}
    for page in (trace, tree):
        assert 0 < page["load_ms"]["median"] <= page["load_ms"]["max"] and len(page["load_ms"]["runs"]) == 1
        assert page["bare_load_ms"]["median"] > 0 and page["ratio_to_bare"] > 0
        assert page["ratio_to_target"] == round(page["load_ms"]["median"] / 2000, 3)
        assert page["html_mib"] > page["bare_html_mib"] > 0
        assert page["pass"] == (page["opens_in_time"] and page["responsive"])
        for times in page["interactions"].values():
            assert 0 <= times["median_ms"] <= times["median_frame_ms"] <= times["max_frame_ms"]
    assert fig["pass"] == (trace["pass"] and tree["pass"])


def test_synthetic_inputs_have_what_the_benchmark_claims():
    records = synth_trace(300)
    head, toks = records[0], records[1:]
    assert head["type"] == "generation" and all(f in head for f in HEADER_FIELDS) and head["generated_tokens"] == 300
    assert [t["position"] for t in toks] == list(range(300)) and all(len(t["top"]) == 5 for t in toks)
    assert [t["phase"] for t in toks] == sorted(t["phase"] for t in toks)[::-1]  # thinking, then answer
    assert sum("suppressed_end" in t for t in toks) == head["waits_injected"] > 0
    assert Counter(t["kind"] for t in toks)["delimiter"] == 3 and toks[-1]["kind"] == "end"
    tree = synth_tree(40)
    assert len(tree.nodes) == 40
    tree.check()
    statuses = Counter(n.status for n in tree.nodes)
    assert statuses["root"] == 1 and statuses["kept"] and statuses["pruned"] and statuses["finished"]
    outcome = tree.problems[0]
    assert {"strategy", "n", "beam_width", "answer", "votes", "answers", "chosen", "completions"} <= set(outcome)
    assert outcome["chosen"] in outcome["completions"] and all(tree[c].status == "finished" for c in outcome["completions"])


def test_bench_view_refuses_before_any_work(capsys, monkeypatch):
    assert main(["bench", "view", "--tokens", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ttscale: error: --tokens must be an integer >= 1, got 0"
    monkeypatch.setenv("TTSCALE_CHROMIUM", "/nonexistent/chromium")
    assert main(["bench", "view", "--tokens", "5", "--nodes", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ttscale: error: ttscale bench view needs ") and len(err.splitlines()) == 1
