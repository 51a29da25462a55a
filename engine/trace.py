"""The token-level trace: JSONL written by ``ttscale generate --trace FILE`` and rendered by ``ttscale trace show``.

One ``generation`` record per prompt (prompt, format, budget, sampling, result summary), then one ``token``
record per generated token::

    {"type": "token", "prompt_index": 0, "position": 17, "id": 33359, "text": "Wait",
     "phase": "thinking", "kind": "thinking", "source": "forced", "reason": "min_budget",
     "prob": 0.0012, "entropy": 0.71, "top": [[1, "<|im_start|>", 0.83], ...],
     "suppressed_end": {"id": 1, "text": "<|im_start|>", "p_end": 0.86}}

``phase`` is the phase the token was produced in; ``kind`` is what it counts as (thinking, delimiter, answer,
end). ``source`` is ``sampled`` or ``forced``; ``reason`` says why a token was forced (``min_budget``,
``ignore``, ``max_budget``, ``delimiter``, ``end_of_turn``, ``max_answer``) or that the model chose to end
(``model_end``). ``prob`` is the probability the model's final distribution gave the token, forced or not;
``entropy`` (nats) and ``top`` (the k likeliest tokens as ``[id, text, p]``) describe that same distribution.
``suppressed_end`` marks the first injected token where an attempt to end thinking was replaced, with the
probability the model had put on ending there.
"""

from __future__ import annotations

from engine.errors import TTScaleError
from engine.jsonl import JsonlStats, read_jsonl, write_jsonl_atomic

REASON_LABELS = {"min_budget": "min", "ignore": "ignore", "max_budget": "cap", "delimiter": "delim",
                 "end_of_turn": "eot→delim", "max_answer": "answer cap"}


def write_trace(path: str, results) -> int:
    """Write every result's trace records to ``path`` as JSONL (atomically); returns the number of records written.

    Refuses results that were generated without ``trace=True`` (before writing anything) and a missing folder.
    """
    if any(res.trace is None for res in results):
        raise TTScaleError("these results carry no trace; generate with trace=True (CLI: --trace FILE)")
    return write_jsonl_atomic(path, (rec for res in results for rec in res.trace))


HEADER_FIELDS = ("prompt_index", "prompt", "thinking_tokens", "answer_tokens", "waits_injected", "forced_stop", "finish_reason")
TOKEN_FIELDS = ("prompt_index", "position", "id", "text", "phase", "kind", "source", "reason")


def read_trace(path: str, stats: JsonlStats | None = None) -> list[dict]:
    """Read a trace file and check every record's shape.

    Refuses a missing file, a line that is not a JSON object, a record whose ``type`` is not ``generation`` or
    ``token``, a record missing one of its fields, and token records of a prompt that has no header — each in one
    sentence naming the file and the record. A trace cut short (fewer token records than its header's
    ``generated_tokens``) is read; :func:`render_trace` says so in that prompt's header. ``stats`` (optional) tells
    whether a torn last line was left out.
    """
    records = read_jsonl(path, what="trace file", hint="was it written by ttscale --trace?", stats=stats)
    heads = set()
    for n, rec in enumerate(records, 1):
        kind = rec.get("type")
        if kind not in ("generation", "token"):
            why = "it has no 'type' field" if kind is None else f"its type is {kind!r}"
            raise TTScaleError(f"trace file {path}, record {n}: not a ttscale trace record ({why}); was it written by ttscale --trace?")
        needed = HEADER_FIELDS if kind == "generation" else TOKEN_FIELDS
        missing = [f for f in needed if f not in rec]
        if missing:
            raise TTScaleError(f"trace file {path}, record {n}: a {kind} record without {', '.join(missing)}; the file was edited "
                               "or written by another tool, so regenerate it with --trace")
        if kind == "generation":
            heads.add(rec["prompt_index"])
        elif rec["prompt_index"] not in heads:
            raise TTScaleError(f"trace file {path}, record {n}: a token of prompt {rec['prompt_index']} before (or without) "
                               "that prompt's generation record; regenerate the trace with --trace")
    return records


class _Paint:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text


def render_trace(records: list[dict], color: bool = True, prompt_index: int | None = None, show_top: bool = False) -> str:
    """The trace as terminal text: forced tokens in «brackets» (yellow) with their reason, suppressed endings as
    ``⟂[end p=0.86]`` (red), delimiters dim, thinking and answer in separate blocks. Refuses an unknown prompt index.
    """
    paint = _Paint(color)
    heads = [r for r in records if r["type"] == "generation"]
    if prompt_index is not None:
        heads = [h for h in heads if h["prompt_index"] == prompt_index]
        if not heads:
            raise TTScaleError(f"--prompt-index {prompt_index}: the trace has no such prompt")
    out = []
    for head in heads:
        idx = head["prompt_index"]
        toks = [r for r in records if r["type"] == "token" and r["prompt_index"] == idx]
        out.append(paint(f"━━ prompt {idx}: {head['prompt']}", "1"))
        forced = f" · forced {head['forced_tokens']} tok" if isinstance(head.get("forced_tokens"), int) else ""
        out.append(f"   thinking {head['thinking_tokens']} tok · answer {head['answer_tokens']} tok{forced} · "
                   f"waits {head['waits_injected']} · forced stop {head['forced_stop']} · finish {head['finish_reason']}")
        expected = head.get("generated_tokens")
        if isinstance(expected, int) and len(toks) != expected:
            out.append(paint(f"   ⚠ trace cut short: {len(toks)} of this prompt's {expected} token records are in the file; "
                             "the counts above are the generation's, the text below is partial", "31"))
        parts, phase = [], None
        for t in toks:
            if t["phase"] != phase:
                phase = t["phase"]
                parts.append(paint(f"\n── {phase} ──\n", "36"))
            if "suppressed_end" in t:
                s = t["suppressed_end"]
                parts.append(paint(f"⟂[end {s['text']!r} p={s['p_end']:.2f}]", "31"))
            text = t["text"]
            if t["source"] == "forced":
                label = REASON_LABELS.get(t["reason"], t["reason"])
                shown = text.replace("\n", "\\n")  # a forced newline stays visible inside its brackets
                parts.append(paint(f"«{shown}»", "33") + paint(f"{{{label}}}", "2"))
            elif t["kind"] in ("delimiter", "end"):
                parts.append(paint(text, "2"))
            else:
                parts.append(text)
            if show_top and t.get("top"):
                alts = ", ".join(f"{a[1]!r}:{a[2]:.2f}" for a in t["top"][:3])
                parts.append(paint(f"[p={t['prob']:.2f}; {alts}]", "2"))
        out.append("".join(parts))
        out.append("")
    return "\n".join(out)
