"""SFT examples: records from curation output, a hub dataset or JSONL, as chat examples with an assistant-only loss.

    records = load_records("out/")                          # [{"question", "thinking", "answer"}, ...]
    messages = to_messages(records[0], get_format("s1"))    # user turn + assistant turn in the thinking format
    dataset, report = build_dataset(records, tokenizer, get_format("s1"), max_length=32768)

The assistant turn is ``think_start + thinking + cap_prefix + think_end + answer_sep + answer_prefix + answer``; for
the ``s1`` format that is s1's ``<|im_start|>think\\n{trace}\\n<|im_start|>answer\\nAnswer: {attempt}`` (REFERENCE §1).

The loss mask is built here, not by TRL: TRL 1.16's ``assistant_only_loss`` needs ``{% generation %}`` markers, and
for templates without them (SmolLM2's ChatML) its patcher refuses ("patching is not supported for this template").
:func:`tokenize_example` renders the prompt with the generation prompt and the whole conversation, checks that the
first is a prefix of the second, labels every later token up to and including the end-of-turn token, and drops
what the template adds after it (ChatML's trailing newline). The result is a pre-tokenised dataset (``input_ids``,
``labels``) that ``SFTTrainer`` uses as is. Long examples are never cut silently (:func:`check_lengths`).
"""

from __future__ import annotations

import json
import os

from curation.output import DATASET
from engine.errors import TTScaleError
from engine.formats import ThinkingFormat, end_of_turn_ids

# Columns of the known sources, tried in order: (question, thinking, answer).
KNOWN_COLUMNS = (
    ("question", "thinking_trajectories", "attempt"),                 # s1K, curation output
    ("question", "deepseek_thinking_trajectory", "deepseek_attempt"),  # s1K-1.1
    ("question", "thinking", "answer"),                               # JSONL
    ("question", "solution", None),                                   # LIMO: the solution is the whole response
)
IGNORE = -100


def parse_fields(spec: str | None) -> dict[str, str] | None:
    """``question=problem,thinking=trace,answer=attempt`` as a dict; refuses unknown keys and malformed pairs."""
    if not spec:
        return None
    mapping = {}
    for part in spec.split(","):
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or key not in ("question", "thinking", "answer") or not column:
            raise TTScaleError(f"--fields {spec!r}: write question=COL,thinking=COL[,answer=COL]")
        mapping[key] = column
    if "question" not in mapping or "thinking" not in mapping:
        raise TTScaleError(f"--fields {spec!r} needs at least question= and thinking=")
    return mapping


def _columns(names, mapping: dict[str, str] | None, where: str) -> tuple[str, str, str | None]:
    names = set(names)
    if mapping:
        wanted = [mapping["question"], mapping["thinking"], mapping.get("answer")]
        missing = [c for c in wanted if c is not None and c not in names]
        if missing:
            raise TTScaleError(f"{where} has no column {missing[0]!r} (columns: {', '.join(sorted(names))}); fix --fields")
        return wanted[0], wanted[1], wanted[2]
    for q, t, a in KNOWN_COLUMNS:
        if q in names and t in names and (a is None or a in names):
            return q, t, a
    raise TTScaleError(f"{where} has none of the known column sets (s1K question/thinking_trajectories/attempt, s1K-1.1 "
                       f"deepseek_thinking_trajectory/deepseek_attempt, question/thinking/answer, LIMO question/solution; "
                       f"it has {', '.join(sorted(names))}); pass --fields")


def _first(value):
    """s1K's ``thinking_trajectories`` is a list of strings with one trace per question: its first item."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _records(rows, names, mapping, where) -> list[dict]:
    q, t, a = _columns(names, mapping, where)
    out = []
    for i, row in enumerate(rows):
        question, thinking = row.get(q), _first(row.get(t))
        answer = _first(row.get(a)) if a else ""
        if not isinstance(question, str) or not question.strip() or not isinstance(thinking, str) or not thinking.strip():
            raise TTScaleError(f"{where} row {i} has an empty {q!r} or {t!r}; remove the row or fix the data")
        out.append({"question": question, "thinking": thinking, "answer": answer if isinstance(answer, str) else ""})
    if not out:
        raise TTScaleError(f"{where} has no rows; give a non-empty data source")
    return out


def load_records(source: str, fields: str | None = None, split: str = "train") -> list[dict]:
    """Records ``{"question", "thinking", "answer"}`` from a curation output directory, a ``.jsonl`` file or a hub id.

    A directory is a curation output (``OUT`` holding ``dataset/``) or a ``datasets.save_to_disk`` directory itself;
    a hub id is loaded with ``datasets.load_dataset`` (``split``). A list value (s1K's ``thinking_trajectories``)
    gives its first item. Columns are detected (s1K, s1K-1.1, LIMO, or
    question/thinking/answer) unless ``fields`` maps them. Refuses a missing path, unreadable JSONL lines, unknown
    columns, empty questions or thinking, and an empty source.
    """
    import datasets  # deferred: loading datasets costs a second and only data loading needs it

    path = os.path.expanduser(source)
    mapping = parse_fields(fields)
    if path.endswith(".jsonl"):
        if not os.path.isfile(path):
            raise TTScaleError(f"--data {source}: no such file; give an existing .jsonl path")
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise TTScaleError(f"--data {source} line {n} is not JSON ({err.msg}); fix the line") from None
        names = set().union(*(r.keys() for r in rows)) if rows else set()
        return _records(rows, names, mapping, f"--data {source}")
    if os.path.isdir(path):
        inner = os.path.join(path, DATASET)
        target = inner if os.path.isdir(inner) else path
        try:
            data = datasets.load_from_disk(target)
        except FileNotFoundError:
            raise TTScaleError(f"--data {source} is neither a curation output (with {DATASET}/) nor a saved dataset; give one") from None
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise TTScaleError(f"--data {source} has no split {split!r} (splits: {', '.join(data)}); pass --split")
            data = data[split]
        return _records(data, data.column_names, mapping, f"--data {source}")
    if os.path.exists(path) or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise TTScaleError(f"--data {source}: not a directory, a .jsonl file or a hub id (owner/name); give one of them")
    data = datasets.load_dataset(source, split=split)  # a hub dataset: the only place that downloads
    return _records(data, data.column_names, mapping, f"--data {source}")


def assistant_text(record: dict, fmt: ThinkingFormat, answer_prefix: str = "Answer: ") -> str:
    """The assistant turn of one record in format ``fmt``: start, thinking, delimiter, separator, answer.

    A record without an answer (LIMO, whose solution is the whole response) gets no delimiter and no answer: its
    thinking is the response. The thinking gets ``fmt.cap_prefix`` before the delimiter unless it already ends so.
    """
    thinking, answer = record["thinking"], record.get("answer") or ""
    if not answer.strip():
        return thinking
    if fmt.cap_prefix and not thinking.endswith(fmt.cap_prefix):
        thinking += fmt.cap_prefix
    return fmt.think_start + thinking + fmt.think_end + fmt.answer_sep + answer_prefix + answer


def to_messages(record: dict, fmt: ThinkingFormat, answer_prefix: str = "Answer: ") -> list[dict]:
    """A conversational example: the question as the user turn and :func:`assistant_text` as the assistant turn."""
    return [{"role": "user", "content": record["question"]},
            {"role": "assistant", "content": assistant_text(record, fmt, answer_prefix)}]


def _ids(tokenizer, messages, add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    if hasattr(out, "keys") and "input_ids" in out:  # transformers 5 may return a BatchEncoding
        out = out["input_ids"]
    return list(out)


def tokenize_example(tokenizer, messages: list[dict]) -> dict:
    """``input_ids`` and ``labels`` of one conversation, the labels -100 everywhere but on the assistant turn.

    The prompt (every turn before the last, with the generation prompt) must tokenise to a prefix of the whole
    conversation; the last turn's tokens are labelled through its end-of-turn token, and anything the template
    adds after that token is dropped. Refuses a tokenizer without a chat template and a template whose prompt is
    not a prefix of the conversation (the loss mask would be wrong).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise TTScaleError("the tokenizer has no chat template; train from an instruct model or set tokenizer.chat_template")
    prompt = _ids(tokenizer, messages[:-1], add_generation_prompt=True)
    full = _ids(tokenizer, messages, add_generation_prompt=False)
    if full[: len(prompt)] != prompt:
        raise TTScaleError("the chat template renders the prompt differently inside the whole conversation, so the "
                           "assistant-only loss mask cannot be placed; use a prefix-preserving chat template")
    ends = set(end_of_turn_ids(tokenizer))
    completion = full[len(prompt):]
    cut = next((i + 1 for i in range(len(completion) - 1, -1, -1) if completion[i] in ends), len(completion))
    completion = completion[:cut]
    return {"input_ids": prompt + completion, "labels": [IGNORE] * len(prompt) + completion}


def check_lengths(lengths: list[int], max_length: int, truncate: bool) -> dict:
    """How many examples exceed ``max_length``: ``{"examples", "too_long", "longest", "truncated"}``.

    Refuses, in one sentence with the count, the longest length and the fix, any example longer than
    ``max_length`` unless ``truncate`` is set (then ``truncated`` says how many will be cut).
    """
    too_long = sum(n > max_length for n in lengths)
    longest = max(lengths, default=0)
    if too_long and not truncate:
        raise TTScaleError(f"{too_long} of {len(lengths)} examples are longer than max_length {max_length} tokens (the "
                           f"longest has {longest}); raise --max-length to at least {longest} or pass --truncate to cut them")
    return {"examples": len(lengths), "too_long": too_long, "longest": longest, "truncated": too_long if truncate else 0}


def build_dataset(records: list[dict], tokenizer, fmt: ThinkingFormat, max_length: int, truncate: bool = False,
                  answer_prefix: str = "Answer: "):
    """A pre-tokenised ``datasets.Dataset`` (``input_ids``, ``labels``) and the length report of :func:`check_lengths`.

    With ``truncate`` the long examples keep their first ``max_length`` tokens; an example left with no labelled
    token is refused (its prompt alone fills ``max_length``). Refuses what :func:`tokenize_example` and
    :func:`check_lengths` refuse.
    """
    import datasets  # deferred: see load_records

    rows = [tokenize_example(tokenizer, to_messages(r, fmt, answer_prefix)) for r in records]
    report = check_lengths([len(r["input_ids"]) for r in rows], max_length, truncate)
    for i, row in enumerate(rows):
        if len(row["input_ids"]) > max_length:
            row["input_ids"], row["labels"] = row["input_ids"][:max_length], row["labels"][:max_length]
            if all(x == IGNORE for x in row["labels"]):
                raise TTScaleError(f"example {i}: its prompt alone fills max_length {max_length}, so no answer token "
                                   "would be trained; raise --max-length")
    return datasets.Dataset.from_list(rows), report
