"""What ``ttscale view`` reads: the four kinds told apart by content, one-sentence errors for everything else,
warnings (not silence) for a trace cut short or torn, and a page whose embedded data cannot break out of its tag."""

import json
import os

import pytest
from artefacts import made as shared_inputs
from conftest import run_cli

from engine.errors import TTScaleError
from engine.view.load import load_view, split_generation
from engine.view.page import embed_json, render_page


@pytest.fixture(scope="module")
def made(tmp_path_factory, tokenizer):
    d, records = shared_inputs(tmp_path_factory, tokenizer)
    return {"dir": d, **records}


def test_each_kind_is_recognised_by_content(made):
    d = made["dir"]
    trace = load_view(str(d / "trace.jsonl"))
    assert trace.kind == "trace" and trace.warnings == []
    tokens = [r for r in made["trace"] if r["type"] == "token"]
    assert sum(len(p["tokens"]) for p in trace.data["prompts"]) == len(tokens) and len(trace.data["prompts"]) == 2
    assert all("entropy" in t and t["entropy"] >= 0 for p in trace.data["prompts"] for t in p["tokens"])
    tree = load_view(str(d / "tree.json"))
    assert tree.kind == "tree" and len(tree.data["nodes"]) == len(made["tree"]["nodes"]) and tree.warnings == []
    ev = load_view(str(d / "eval"))
    assert ev.kind == "eval" and len(ev.data["samples"]) == len(made["eval"])
    assert len(ev.data["metrics"]["settings"]) == 5
    assert load_view(str(d / "eval" / "metrics.json")).kind == "eval"  # a run's file stands for its directory
    cur = load_view(str(d / "cur"))
    assert cur.kind == "curation" and cur.data["report"]["stages"] == made["curation"]["stages"]
    assert load_view(str(d / "cur" / "report.json")).kind == "curation"


def test_eval_samples_split_thinking_from_answer(made):
    ev = load_view(str(made["dir"] / "eval"))
    first = ev.data["samples"][0]
    assert first["thinking"].startswith("thinking about") and first["answer"].startswith("\nFinal Answer:")
    assert split_generation("a</think>b", None) == ("a", "b") and split_generation("plain", None) == ("", "plain")


def test_the_tree_records_the_search_outcome(made):
    prob = made["tree"]["problems"][0]
    assert {"strategy", "answer", "votes", "answers", "chosen", "completions"} <= set(prob)
    nodes = {n["id"]: n for n in made["tree"]["nodes"]}
    chosen = nodes[prob["chosen"]]
    assert chosen["status"] == "finished" and prob["chosen"] in prob["completions"]
    assert sum(a["count"] for a in prob["answers"]) == len(prob["completions"])
    assert sorted(i for a in prob["answers"] for i in a["nodes"]) == sorted(prob["completions"])
    assert any(prob["chosen"] in a["nodes"] for a in prob["answers"])


def test_a_trace_cut_short_or_torn_is_shown_with_a_warning(made, tmp_path):
    lines = (made["dir"] / "trace.jsonl").read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:-5]) + "\n" + lines[-5][:20])  # four records gone, then a torn line
    view = load_view(str(cut))
    assert any("cut short" in w for w in view.warnings) and any("torn line" in w for w in view.warnings)
    assert any(p.get("cut_short") for p in view.data["prompts"])


def put(d, name, content):
    """Write ``content`` (text, bytes, or None for a directory) under ``d``; returns the path of the top entry."""
    path = d / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return d / name.split("/")[0]


NODE = {"id": 0, "parent": None, "problem": 0, "depth": 0, "text": "", "status": "root"}


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jsonl", "no such file or directory"),
    (lambda d: put(d, "empty", None), "the directory is empty"),
    (lambda d: put(d, "other/x.txt", "hi"), "neither an eval run directory"),
    (lambda d: put(d, "e.json", ""), "the file is empty"),
    (lambda d: put(d, "t.txt", "hello\nworld\n"), "not something ttscale view shows"),
    (lambda d: put(d, "o.json", '{"a": 1}'), "not something ttscale view shows"),
    (lambda d: put(d, "rows.jsonl", '{"question": "q"}\n'), "not something ttscale view shows"),
    (lambda d: put(d, "b.bin", b"\xff\xfe\x00\x01"), "not UTF-8 text"),
    (lambda d: put(d, "tr.json", json.dumps({"problems": [{"root": 0}], "nodes": [{"id": 0}]})), "node 0 has no parent"),
    (lambda d: put(d, "ts.json", json.dumps({"problems": [{"root": 0}], "nodes": [{**NODE, "status": "weird"}]})), "status 'weird'"),
    (lambda d: put(d, "tp.json", json.dumps({"problems": [{"root": 0}], "nodes": [NODE, {**NODE, "id": 1, "parent": 7}]})),
     "names parent 7"),
    (lambda d: put(d, "tq.json", json.dumps({"problems": [], "nodes": []})), "without problems"),
    (lambda d: put(d, "tk.jsonl", '{"type": "token", "prompt_index": 0}\n'), "a token record without"),
    (lambda d: put(d, "c/report.json", '{"rows": 1}'), "no 'stages' list"),
    (lambda d: put(d, "c2/report.json", "{"), "not a JSON curation report"),
])
def test_bad_input_is_one_sentence(tmp_path, make, message):
    with pytest.raises(TTScaleError, match=message) as info:
        load_view(str(make(tmp_path)))
    assert "\n" not in str(info.value)


def test_the_embedded_data_cannot_end_its_script_element():
    text = embed_json({"t": "</script><script>alert(1)</script>\u2028"})
    assert "<" not in text and "\u2028" not in text and json.loads(text)["t"].startswith("</script>")
    assert "</script" not in render_page(None).split("<script>", 1)[1].rsplit("</script>", 1)[0]


def test_the_command_writes_a_page_beside_the_input(made, capsys, tmp_path):
    code, _, err = run_cli(capsys, "view", str(made["dir"] / "trace.jsonl"))
    page = made["dir"] / "trace.html"
    assert code == 0 and page.exists() and str(page) in err
    html = page.read_text()
    assert "ttscale-data" in html and "http://" not in html.split("<body>", 1)[1] and "https://" not in html
    code, _, err = run_cli(capsys, "view", str(made["dir"] / "eval"), "--out", str(tmp_path / "e.html"))
    assert code == 0 and (tmp_path / "e.html").exists() and os.path.exists(made["dir"] / "eval" / "metrics.json")


@pytest.mark.parametrize("argv, message", [
    (["view", "/no/such/file.jsonl"], "no such file or directory"),
    (["view", "x.jsonl", "--out", "page.txt"], "must end in .html"),
    (["view", "{d}", "--out", "/no/such/dir/p.html"], "the folder /no/such/dir does not exist"),
    (["view"], "the following arguments are required: FILE_OR_DIR"),
])
def test_the_command_refuses_bad_input_in_one_sentence(capsys, tmp_path, argv, message):
    code, out, err = run_cli(capsys, *[a.replace("{d}", str(tmp_path)) for a in argv])
    assert code != 0 and message in err and "Traceback" not in err
