"""Benchmark: ``ttscale view`` pages of a long trace and a large search tree, opened in headless Chromium.

    ttscale bench view [--tokens 50000] [--nodes 2000] [--repeats 3] [--warmup 1] [--json]
    (or: python -m benchmarks.speed.view --json)

The requirement measured: a 50,000-token trace and a tree of 2,000 nodes open in under 2 seconds and stay
responsive. Both inputs are synthesised (seeded, pure Python, no model) in the files ``ttscale generate --trace``
and ``ttscale search --tree`` write: one prompt's ``generation`` header and ``--tokens`` token records (thinking,
a forced ``Wait`` with its suppressed ending every 2,000 tokens, the delimiter, the answer, the end token; each with
prob, entropy and 5 alternatives), and a DVTS-like tree of ``--nodes`` nodes built through
:class:`~engine.search.tree.SearchTree` (subtrees of M=4, kept / pruned / duplicate / finished, step scores, the
problem's outcome). Each goes through ``load_view`` and ``render_page`` to one HTML file.

Every round opens four fresh pages (order alternating, the harness's interleaving): the trace viewer, the same trace
text as a bare ``<pre>``, the tree viewer and the tree's node texts as a bare list. The load time of a page is
``performance.now()`` once it has drawn and laid out (a requestAnimationFrame, then a timeout): the viewer's
``window.ttscaleView.renderMs``, and the same clock in the bare pages, so ``ratio_to_bare`` is what the viewer costs
over the browser merely showing the text. On each viewer page, interactions are timed in the page: synchronous
dispatch plus a forced layout (``ms``) and up to the next frame (``frame_ms``): trace: colour by entropy, back to
probability, hover the middle token, click it to pin; tree: click the chosen leaf (its branch fills the panel), hover
a node. A page passes when its slowest load is under 2,000 ms and its slowest interaction frame under 100 ms (the
RAIL response budget). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import html
import os
import platform
import random
import statistics
import sys
import tempfile

from benchmarks import options
from benchmarks.speed import harness
from engine.errors import TTScaleError
from engine.jsonl import write_jsonl_atomic
from engine.search.select import outcome
from engine.search.tree import SearchTree
from engine.trace import HEADER_FIELDS
from engine.view.browser import CHROMIUM_ARGS, require_browser
from engine.view.load import load_view
from engine.view.page import render_page

SPEC = options.VIEW.spec
SEED = 0
TARGET_MS = 2000.0        # the requirement: open in under 2 seconds
INTERACTION_TARGET_MS = 100.0  # RAIL: a response within 100 ms feels immediate
LOAD_TIMEOUT_MS = 120_000
WAIT_EVERY = 2000
BEAM_WIDTH, SUBTREES, MAX_STEPS = 4, 16, 40
PIECES = [" the", " we", " so", " is", " of", " to", " and", " that", " x", " y", " =", " +", " -", " *", " 2", " 3",
          " 7", " 12", " 42", ",", ".", " Let", " me", " check", " compute", " square", " root", " sum", " terms",
          " hence", " then", " equation", " gives", " value", " not", " right", "\n", "\n\n", " Therefore", " answer",
          " \\frac{1}{2}", " $", "$", " <b>", " &"]
END, DELIM = "<|im_end|>", ["<|im_start|>", "answer", "\n"]
STEP_WORDS = ["Multiply both sides by 3", "so x = 14", "Substitute back into the first equation", "the sum is 42",
              "Check: 14 * 3 = 42", "Factor the quadratic", "the roots are 2 and 7", "Simplify the fraction"]
ANSWERS = ["42", "14", "7", None]

TRACE_JS = """async () => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const time = async (act) => { const t0 = performance.now(); act(); void document.body.offsetHeight;
    const ms = performance.now() - t0; await frame(); return { ms, frame_ms: performance.now() - t0 }; };
  const spans = document.querySelectorAll("#tokens .t"), mid = spans[spans.length >> 1];
  mid.scrollIntoView({ block: "center" });
  await frame();
  const r = mid.getBoundingClientRect(), at = { bubbles: true, clientX: r.left + 1, clientY: r.top + 1 };
  const out = { spans: spans.length, times: {} };
  out.times.mode_entropy = await time(() => document.getElementById("mode-entropy").click());
  const entropy = document.getElementById("tokens").classList.contains("mode-entropy");
  out.times.mode_prob = await time(() => document.getElementById("mode-prob").click());
  out.times.hover = await time(() => mid.dispatchEvent(new MouseEvent("mouseover", at)));
  const tip = document.getElementById("tip");
  out.times.pin = await time(() => mid.dispatchEvent(new MouseEvent("click", at)));
  const detail = document.getElementById("detail");
  out.ok = entropy && tip.style.display === "block" && tip.textContent.includes("#" + mid.dataset.i) &&
    !detail.hidden && detail.textContent.includes("#" + mid.dataset.i);
  return out;
}"""

TREE_JS = """async (chosen) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const time = async (act) => { const t0 = performance.now(); act(); void document.body.offsetHeight;
    const ms = performance.now() - t0; await frame(); return { ms, frame_ms: performance.now() - t0 }; };
  const circles = document.querySelectorAll("#tree circle.node[data-id]");
  const leaf = document.querySelector(`#tree circle.node[data-id="${chosen}"]`) || circles[circles.length >> 1];
  leaf.scrollIntoView({ block: "center", inline: "center" });
  await frame();
  const r = leaf.getBoundingClientRect(), at = { bubbles: true, clientX: r.left + 2, clientY: r.top + 2 };
  const out = { circles: circles.length, times: {} };
  out.times.click = await time(() => leaf.dispatchEvent(new MouseEvent("click", at)));
  const branch = document.getElementById("branch").textContent;
  out.times.hover = await time(() => leaf.dispatchEvent(new MouseEvent("mouseover", at)));
  const tip = document.getElementById("tip");
  out.ok = branch.includes("branch to node " + leaf.dataset.id) && tip.style.display === "block" &&
    tip.textContent.includes("node " + leaf.dataset.id);
  return out;
}"""

BARE_DONE = ("<script>requestAnimationFrame(() => setTimeout(() => { window.ttscaleView = "
             "{kind: 'bare', ready: true, renderMs: performance.now()}; }, 0));</script>")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's flags: the fields of :class:`~benchmarks.options.ViewBenchOptions` and the timing flags."""
    SPEC.add_to(p)


# ----------------------------------------------------------------------------------------------- synthetic inputs


def _top(rng: random.Random, tid: int, text: str, p: float) -> list:
    """Five alternatives ``[id, text, p]``, likeliest first, the token itself among them with probability ``p``."""
    rest = [rng.random() for _ in range(4)]
    scale = (1 - p) * rng.uniform(0.5, 0.95) / sum(rest)
    alts = [[100 + k, PIECES[k], round(w * scale, 6)] for k, w in zip(rng.sample(range(len(PIECES)), 4), rest)]
    return sorted(alts + [[tid, text, round(p, 6)]], key=lambda a: -a[2])


def synth_trace(tokens: int, seed: int = SEED) -> list[dict]:
    """One prompt's trace records as ``ttscale generate --trace`` writes them: the header, then ``tokens`` token
    records (thinking with a forced ``Wait`` every 2,000 tokens, or every fifth of a shorter trace, the delimiter, the
    answer, the end token)."""
    rng = random.Random(seed)
    think_end = int(tokens * 0.9)
    delim_end = min(think_end + len(DELIM), tokens - 1)
    every = max(2, min(WAIT_EVERY, tokens // 5))   # a short trace still gets its Waits
    ids = {t: 100 + k for k, t in enumerate(PIECES + DELIM + [END, "Wait"])}
    recs, counts = [], {"thinking": 0, "answer": 0, "forced": 0, "waits": 0}
    for pos in range(tokens):
        sup = None
        if pos == tokens - 1:
            text, phase, kind, source, reason = END, "answer", "end", "sampled", "model_end"
        elif pos >= delim_end:
            text, phase, kind, source, reason = rng.choice(PIECES), "answer", "answer", "sampled", None
        elif pos >= think_end:
            first = pos == think_end
            text, phase, kind = DELIM[pos - think_end], "thinking", "delimiter"
            source, reason = ("sampled", "model_end") if first else ("forced", "delimiter")
        elif pos % every == every - 1:
            text, phase, kind, source, reason = "Wait", "thinking", "thinking", "forced", "min_budget"
            sup = {"id": ids[DELIM[0]], "text": DELIM[0], "p_end": round(rng.uniform(0.5, 0.95), 6)}
        else:
            text, phase, kind, source, reason = rng.choice(PIECES), "thinking", "thinking", "sampled", None
        p = rng.uniform(0.0005, 0.05) if source == "forced" else rng.random() ** 0.3
        rec = {"type": "token", "prompt_index": 0, "position": pos, "id": ids[text], "text": text, "phase": phase,
               "kind": kind, "source": source, "reason": reason, "prob": round(p, 6),
               "entropy": round(0.05 + rng.uniform(0, 4) * (1 - p), 6), "top": _top(rng, ids[text], text, p)}
        if sup:
            rec["suppressed_end"] = sup
            counts["waits"] += 1
        counts["answer" if phase == "answer" else "thinking"] += 1
        counts["forced"] += source == "forced"
        recs.append(rec)
    head = {"type": "generation", "prompt_index": 0, "prompt": "What is 6 * 7? Think step by step.",
            "thinking_tokens": counts["thinking"], "answer_tokens": counts["answer"], "waits_injected": counts["waits"],
            "forced_stop": False, "finish_reason": "stop", "forced_tokens": counts["forced"],
            "budget": {"min_thinking_tokens": tokens, "num_ignore": counts["waits"]},
            "sampling": {"temperature": 0.7, "top_p": 0.95, "seed": seed}, "generated_tokens": tokens}
    assert all(f in head for f in HEADER_FIELDS)
    return [head] + recs


def synth_tree(nodes: int, seed: int = SEED) -> SearchTree:
    """A DVTS-like search of one problem with exactly ``nodes`` nodes (root included): up to 16 subtrees (more
    started while nodes remain) of M=4 children per step, the best kept (or finished), the rest pruned or duplicate, step scores on every node, and the outcome the
    searcher records (strategy, n, beam_width, answer, votes, answers, chosen, completions)."""
    rng = random.Random(seed)
    tree = SearchTree()
    root = tree.add_root("What is 6 * 7?", list(range(1, 41)), "<|im_start|>user\nWhat is 6 * 7?<|im_end|>\n")
    live: dict[int, int] = {}
    groups, subtrees = 0, min(SUBTREES, max(1, nodes // 40))   # a small tree still goes a few steps deep
    while len(tree.nodes) < nodes:
        if not live:
            live = {g: root.id for g in range(groups, groups + subtrees)}
            groups += subtrees
        for g, parent in list(live.items()):
            room = nodes - len(tree.nodes)
            if room == 0:
                break
            up = tree[parent]
            kids, dups = [], set()
            for k in range(min(BEAM_WIDTH, room)):
                dup = k > 0 and rng.random() < 0.1   # the same text as the group's first candidate
                text = kids[0].text if dup else f"## Step {up.depth + 1}: " + ". ".join(rng.sample(STEP_WORDS, 3)) + ".\n\n"
                kid = tree.add(parent, [rng.randrange(1000, 30000) for _ in range(rng.randint(20, 80))], text, "delimiter", group=g)
                kid.step_scores = list(kids[0].step_scores) if dup else (up.step_scores or []) + [round(rng.random(), 4)]
                kid.score = kid.step_scores[-1]
                kids.append(kid)
                if dup:
                    dups.add(kid.id)
            best = max((n for n in kids if n.id not in dups), key=lambda n: n.score)
            for kid in kids:
                if kid is not best:
                    tree.mark(kid.id, "duplicate" if kid.id in dups else "pruned")
            if best.depth >= MAX_STEPS or rng.random() < 0.05:
                best.end = "length" if best.depth >= MAX_STEPS else "stop"
                tree.mark(best.id, "finished")
                del live[g]
            else:
                tree.mark(best.id, "kept")
                live[g] = best.id
    for parent in live.values():   # cut off by the node count: the branch ends where it stands
        if parent != root.id:
            tree[parent].end = "length"
            tree.mark(parent, "finished")
    tree.check()
    _outcome(tree, rng, groups)
    return tree


def _outcome(tree: SearchTree, rng: random.Random, groups: int) -> None:
    """The problem's outcome fields, as engine/search/searcher.py's ``_result`` records them."""
    comps = sorted((n for n in tree.nodes if n.status == "finished"), key=lambda n: -n.score)
    o = outcome([rng.choice(ANSWERS) for _ in comps], [n.score for n in comps], "weighted")
    tree.set_outcome(0, [n.id for n in comps], o, strategy="dvts", n=groups * BEAM_WIDTH, beam_width=BEAM_WIDTH)


def _bare(title: str, body: str) -> str:
    """A page with nothing but ``body`` and the viewer's drawn-and-laid-out signal."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n"
            f"<body>\n{body}\n{BARE_DONE}\n</body></html>\n")


def build_pages(folder: str, tokens: int, nodes: int) -> dict:
    """Write the trace and the tree, render them through ``load_view`` / ``render_page``, and the bare pages; returns
    ``{name: path}`` plus what was generated (``tokens``, ``nodes``, ``chosen``) and the sizes in MiB."""
    records = synth_trace(tokens)
    trace_path = os.path.join(folder, "trace.jsonl")
    write_jsonl_atomic(trace_path, records)
    tree = synth_tree(nodes)
    tree_path = os.path.join(folder, "tree.json")
    tree.write(tree_path)
    pages = {
        "trace": render_page(load_view(trace_path)),
        "trace_bare": _bare("trace", "<pre>" + html.escape("".join(r["text"] for r in records[1:])) + "</pre>"),
        "tree": render_page(load_view(tree_path)),
        "tree_bare": _bare("tree", "<ol>" + "".join(f"<li><pre>{html.escape(n.text)}</pre></li>" for n in tree.nodes) + "</ol>"),
    }
    out = {"paths": {}, "tokens": len(records) - 1, "nodes": len(tree.nodes), "chosen": tree.problems[0]["chosen"],
           "mib": {"trace_jsonl": os.path.getsize(trace_path) / 2**20, "tree_json": os.path.getsize(tree_path) / 2**20}}
    for name, text in pages.items():
        out["paths"][name] = path = os.path.join(folder, name + ".html")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        out["mib"][name + "_html"] = os.path.getsize(path) / 2**20
    return out


# ----------------------------------------------------------------------------------------------- in the browser


def open_page(chromium, path: str, probe: str | None = None, arg=None) -> dict:
    """Open ``path`` in a fresh context (1280x900), wait until it has drawn; ``{"load_ms"}`` plus what ``probe`` (an
    in-page function) returned. Refuses a page that raised an error or never drew (in one sentence)."""
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("file://" + os.path.abspath(path))
        try:
            page.wait_for_function("window.ttscaleView && window.ttscaleView.ready", timeout=LOAD_TIMEOUT_MS)
        except Exception as exc:  # Playwright's TimeoutError; the page's own errors say more
            raise TTScaleError(f"{os.path.basename(path)} did not draw within {LOAD_TIMEOUT_MS // 1000} s: "
                               f"{errors[:1] or exc}") from None
        out = {"load_ms": page.evaluate("window.ttscaleView.renderMs")}
        if probe:
            out.update(page.evaluate(probe, arg))
        if errors:
            raise TTScaleError(f"{os.path.basename(path)} raised in the browser: {errors[0]}")
        return out
    finally:
        ctx.close()


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "max": round(max(values), 2), "runs": [round(v, 2) for v in values]}


def _figures(runs: dict, viewer: str, built: dict, made: str, count_key: str) -> dict:
    """One viewer page's figures: what was generated (``made``) and counted in the page (``count_key``), loads, the
    bare page's, the ratios, interactions, and pass / fail."""
    loads = [r["load_ms"] for r in runs[viewer]]
    bare = [r["load_ms"] for r in runs[viewer + "_bare"]]
    inter = {name: {"median_ms": round(statistics.median(r["times"][name]["ms"] for r in runs[viewer]), 2),
                    "median_frame_ms": round(statistics.median(r["times"][name]["frame_ms"] for r in runs[viewer]), 2),
                    "max_frame_ms": round(max(r["times"][name]["frame_ms"] for r in runs[viewer]), 2)}
             for name in runs[viewer][0]["times"]}
    slowest = max(i["max_frame_ms"] for i in inter.values())
    return {made: built[made], count_key: runs[viewer][-1][count_key],
            "counts_match": all(r[count_key] == built[made] for r in runs[viewer]),
            "interactions_ok": all(r["ok"] for r in runs[viewer]),
            "html_mib": round(built["mib"][viewer + "_html"], 3), "bare_html_mib": round(built["mib"][viewer + "_bare_html"], 3),
            "load_ms": _spread(loads), "bare_load_ms": _spread(bare),
            "ratio_to_bare": round(statistics.median(loads) / statistics.median(bare), 3),
            "ratio_to_target": round(statistics.median(loads) / TARGET_MS, 3),
            "interactions": inter, "slowest_interaction_frame_ms": slowest,
            "opens_in_time": max(loads) < TARGET_MS, "responsive": slowest < INTERACTION_TARGET_MS,
            "pass": max(loads) < TARGET_MS and slowest < INTERACTION_TARGET_MS}


def bench(tokens: int, nodes: int, repeats: int, warmup: int) -> dict:
    """Synthesise and render both inputs, open every page ``warmup`` times untimed and ``repeats`` times timed (order
    alternating per round); the envelope with each viewer page's figures. Refuses a missing Playwright or Chromium
    before any work, and a page that raises or never draws."""
    sync_playwright, path = require_browser("ttscale bench view")
    with tempfile.TemporaryDirectory(prefix="ttscale-bench-view-") as folder:
        built = build_pages(folder, tokens, nodes)
        p = built["paths"]
        loads = {"trace": lambda b: open_page(b, p["trace"], TRACE_JS),
                 "trace_bare": lambda b: open_page(b, p["trace_bare"]),
                 "tree": lambda b: open_page(b, p["tree"], TREE_JS, built["chosen"]),
                 "tree_bare": lambda b: open_page(b, p["tree_bare"])}
        runs: dict[str, list[dict]] = {name: [] for name in loads}
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
            try:
                version = chromium.version
                for _ in range(warmup):
                    for load in loads.values():
                        load(chromium)
                for r in range(repeats):
                    for name in harness.round_order(list(loads), r):
                        runs[name].append(loads[name](chromium))
                        print(f"bench view: {name}: {runs[name][-1]['load_ms']:.0f} ms", file=sys.stderr, flush=True)
            finally:
                chromium.close()
    trace = _figures(runs, "trace", built, "tokens", "spans")
    tree = _figures(runs, "tree", built, "nodes", "circles")
    figures = {"target_ms": TARGET_MS, "interaction_target_ms": INTERACTION_TARGET_MS, "trace": trace, "tree": tree,
               "input_mib": {k: round(built["mib"][k], 3) for k in ("trace_jsonl", "tree_json")},
               "pass": trace["pass"] and tree["pass"]}
    config = {"tokens": tokens, "nodes": nodes, "seed": SEED, "viewport": [1280, 900], "browser": "chromium headless"}
    device = {"type": "browser", "browser": f"chromium {version}", "threads": os.cpu_count(),
              "cpu": platform.processor() or platform.machine()}
    timing = {**harness.timing_block(warmup, repeats), "statistic": "median (max beside it) of fresh page loads"}
    return harness.envelope("view", config, device, timing, figures)


def print_table(result: dict, out=None) -> None:
    """One row per viewer page: load median / max, the bare page's, the ratio, the slowest interaction, pass."""
    out = out or sys.stdout
    print(f"{'page':>6} {'count':>7} {'MiB':>6} {'load ms':>8} {'max':>8} {'bare ms':>8} {'×bare':>6} {'interact':>9} pass", file=out)
    for name in ("trace", "tree"):
        f = result["figures"][name]
        count = f.get("spans", f.get("circles"))
        print(f"{name:>6} {count:7d} {f['html_mib']:6.2f} {f['load_ms']['median']:8.0f} {f['load_ms']['max']:8.0f} "
              f"{f['bare_load_ms']['median']:8.0f} {f['ratio_to_bare']:6.2f} {f['slowest_interaction_frame_ms']:9.1f} {f['pass']}",
              file=out)


def main(args) -> int:
    """``ttscale bench view``: check the flags and the browser (before any work), run, print the table and the JSON line."""
    SPEC.build(args, only=(options.ViewBenchOptions,))
    args = harness.namespace(args)
    harness.check_timing_args(args)
    result = bench(args.tokens, args.nodes, args.repeats, args.warmup)
    return harness.finish(result, args.json, print_table)


if __name__ == "__main__":
    sys.exit(harness.run_main(__doc__, add_arguments, main))
