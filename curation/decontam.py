"""Decontamination against the evaluation sets, then exact and near deduplication (REFERENCE §1, s1K curation).

    index = load_eval_index(("math500", "aime24", "aime25", "gpqa-diamond", "mine.jsonl:problem"))
    kept = deduplicate(decontaminate(pool, index, drops.append), drops.append, DecontamConfig())

s1's rule: lower-case the text and collapse its whitespace (``curation.schema.normalise``), split it into words,
and drop a question that shares ANY word 8-gram with an evaluation question (reason ``contaminated``; the detail
names the evaluation set and the 8-gram). A question whose normalised text equals an evaluation question is
contaminated too, however short (s1's rule cannot see questions under 8 words). Only question texts are compared,
on both sides; a GPQA question is compared without its ``A) ... D)`` options.

The index is a dict from 8-gram (a tuple of words) to the evaluation set that holds it, built once. Tuples against
hashed ints, measured on the 59K-question benchmark (``benchmarks/curation/decontam.py``): equal lookup speed, and
tuples cannot collide and are their own detail, so tuples.

Then exact dedup: a question whose ``id`` (the hash of its normalised text) was seen is dropped (reason
``duplicate``, the detail names the kept question), so the first occurrence stays. Then near dedup with datasketch
MinHash LSH over word 5-shingles (reason ``near_duplicate``; the detail names the kept question and the estimated
Jaccard similarity). Why 5 words and 0.9: s1 dedups exactly only, and a math question with one number changed is a
different problem. On 5-shingles one changed word alters 5 shingles, so a 40-word question with one word changed
scores about 0.76 and stays; 0.9 catches copies that differ in spacing-free details (punctuation, a trailing
"(Give your answer in simplest form.)", a reworded clause of a long question). Because a long question with one
changed number can still pass 0.9, near duplicates must also write the same numbers and quoted literals (``"b"``,
``"rabbit"``) in the same order (``near_same_numbers``, on by default), and when both have reference answers, the same
answer: a change at the very end of a short question alters a single shingle ("... the words "puzzle", "bubble",
"lemon"?" against "... "rabbit"?" scores 0.85, estimated up to 0.91) yet asks another question. Candidates from the LSH are confirmed by their estimated similarity before
anything is dropped; the LSH bands are chosen so that 99% of the pairs at the threshold become candidates
(:func:`lsh_params`). Similarities are MinHash estimates: at 128 permutations their standard error is about 0.03
near 0.9, so a pair a little above or below the threshold may go either way.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from benchmarks.data.datasets import NAMED, format_choices, load_dataset_rows
from curation.schema import Drop, Question, normalise, question_id
from engine.answers import canonicalize
from engine.errors import ConfigError, TTScaleError
from engine.jsonl import iter_jsonl

STAGE_DECONTAM = "decontam"
STAGE_DEDUP = "dedup"
DEFAULT_EVAL_SETS = ("math500", "aime24", "aime25", "gpqa-diamond")  # s1: MATH500, GPQA Diamond, AIME (REFERENCE §1)
EVAL_TEXT_FIELDS = ("problem", "question")  # a local eval file's question field when none is named
# What makes two similar texts different problems: their numbers and quoted literals, in order.
_LITERAL = re.compile(r"\d+(?:\.\d+)?|\"[^\"\n]{1,40}\"|'[^'\n]{1,40}'|“[^”\n]{1,40}”")
LSH_RECALL = 0.99  # chance that a pair exactly at the threshold is looked at


@dataclass(frozen=True)
class DecontamConfig:
    """Decontamination and dedup settings (one ``ttscale curate`` flag each). Refuses out-of-range values (``ConfigError``)."""

    eval_sets: tuple[str, ...] = field(default=DEFAULT_EVAL_SETS, metadata={
        "help": "evaluation sets to decontaminate against: math500, aime24, aime25, gpqa-diamond or FILE.jsonl[:FIELD] "
                "(several allowed)", "flag": "--eval-set", "action": "append"})
    ngram: int = field(default=8, metadata={"help": "words per n-gram of the contamination rule (s1: 8)"})
    near_dedup: bool = field(default=True, metadata={"help": "drop near duplicates (MinHash LSH) after exact duplicates",
                                                     "negate": True})
    near_threshold: float = field(default=0.9, metadata={"help": "estimated Jaccard similarity at or above which a question is a near duplicate"})
    shingle: int = field(default=5, metadata={"help": "words per shingle of the near-duplicate similarity"})
    num_perm: int = field(default=128, metadata={"help": "MinHash permutations (more: finer similarity, 4 bytes per question each)"})
    near_same_numbers: bool = field(default=True, metadata={
        "help": "near duplicates must also write the same numbers and quoted literals in the same order, and have the same "
                "reference answer when both have one (a changed number is another problem)",
        "negate": True})

    def __post_init__(self):
        if not self.eval_sets:
            raise ConfigError("`eval_sets` is empty; name at least one evaluation set (math500, aime24, ...)")
        for name in ("ngram", "shingle"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {value!r}")
        if not isinstance(self.num_perm, int) or isinstance(self.num_perm, bool) or self.num_perm < 16:
            raise ConfigError(f"`num_perm` must be an integer >= 16, got {self.num_perm!r}")
        if not isinstance(self.near_threshold, (int, float)) or not 0 < self.near_threshold <= 1:
            raise ConfigError(f"`near_threshold` must be a number in (0, 1], got {self.near_threshold!r}")


# ─── the evaluation index ──────────────────────────────────────────────────────────────────────────────────────


def words(text: str) -> list[str]:
    """The words of the normalised text (lower-cased, whitespace split): what n-grams and shingles are made of."""
    return normalise(text).split()


def ngrams(tokens: list[str], n: int) -> Iterator[tuple[str, ...]]:
    """Every run of ``n`` consecutive tokens, as tuples, in order (none when there are fewer than ``n``)."""
    return zip(*(tokens[i:] for i in range(n)))


class EvalIndex:
    """Every word n-gram (and every whole normalised text) of the evaluation questions, mapped to its set's name.

    ``add(name, texts)`` indexes one set (the first set holding an n-gram names it); ``match(text)`` gives
    ``(set name, n-gram)`` for the first n-gram of ``text`` found, ``(set name, None)`` for a whole-text match,
    or ``None``. Refuses an n below 1 and a set name used twice.
    """

    def __init__(self, n: int = 8):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise TTScaleError(f"EvalIndex n={n!r}: the n-gram length must be an integer >= 1")
        self.n = n
        self.grams: dict[tuple[str, ...], str] = {}
        self.texts: dict[str, str] = {}  # question_id of an evaluation question -> its set
        self.sizes: dict[str, int] = {}  # set -> questions indexed

    @classmethod
    def from_texts(cls, sets: Mapping[str, Iterable[str]], n: int = 8) -> EvalIndex:
        """An index of ``{set name: question texts}`` (what tests and the benchmark build in-process)."""
        index = cls(n)
        for name, texts in sets.items():
            index.add(name, texts)
        return index

    def add(self, name: str, texts: Iterable[str]) -> None:
        """Index the question texts of one evaluation set; refuses a set already indexed and one with no questions."""
        if name in self.sizes:
            raise TTScaleError(f"evaluation set {name} is indexed twice; name each set once")
        count = 0
        for text in texts:
            count += 1
            self.texts.setdefault(question_id(text), name)
            for gram in ngrams(words(text), self.n):
                self.grams.setdefault(gram, name)
        if count == 0:
            raise TTScaleError(f"evaluation set {name} holds no questions; give a set with question text")
        self.sizes[name] = count

    def match(self, text: str, text_id: str | None = None) -> tuple[str, tuple[str, ...] | None] | None:
        """Where ``text`` meets the evaluation sets: ``(set, n-gram)``, ``(set, None)`` for equal text, or None.
        ``text_id`` is its ``question_id`` when the caller has it (a Question's ``id``)."""
        tokens = words(text)
        grams = self.grams
        if not grams.keys().isdisjoint(ngrams(tokens, self.n)):  # the fast path: one C-level scan, no hit
            for gram in ngrams(tokens, self.n):
                if gram in grams:
                    return grams[gram], gram
        name = self.texts.get(text_id or question_id(text))
        return (name, None) if name is not None else None


def eval_texts(spec: str) -> tuple[str, list[str]]:
    """(set name, question texts) of one evaluation set: a name ``benchmarks.data.datasets`` knows, or FILE.jsonl[:FIELD]."""
    if spec in NAMED:
        problems = load_dataset_rows(spec)  # local copy ($TTSCALE_DATA, ../shared/data) first, then the hub
        texts = []
        for p in problems:
            options = format_choices("", p.choices) if p.choices else ""
            texts.append(p.question[: -len(options)] if options and p.question.endswith(options) else p.question)
        return spec, texts
    path, _, field_name = spec.partition(".jsonl:")
    path = path + ".jsonl" if field_name else spec
    if not path.endswith(".jsonl"):
        raise TTScaleError(f"evaluation set {spec!r}: not one of {', '.join(NAMED)} nor a FILE.jsonl[:FIELD]; "
                           "name a known set or a JSONL file")
    texts = []
    for number, row in enumerate(iter_jsonl(os.path.expanduser(path), what=f"evaluation set {path}"), start=1):
        name = field_name or next((f for f in EVAL_TEXT_FIELDS if f in row), EVAL_TEXT_FIELDS[0])
        text = row.get(name)
        if not isinstance(text, str) or not text.strip():
            raise TTScaleError(f"evaluation set {path}, line {number}: no question text in field {name!r} "
                               f"(its fields are {', '.join(sorted(row))}); name the field as {path}:FIELD")
        texts.append(text)
    return path, texts


def load_eval_index(eval_sets: Iterable[str] = DEFAULT_EVAL_SETS, n: int = 8) -> EvalIndex:
    """The index of the named evaluation sets (see :func:`eval_texts` for the names), built once.

    Refuses, in one sentence, a set that cannot be read: unknown, not stored locally and not reachable on the hub
    (gated GPQA without a login), a missing file, a row without question text.
    """
    index = EvalIndex(n)
    for spec in eval_sets:
        name, texts = eval_texts(spec)
        index.add(name, texts)
    return index


def decontaminate(questions: Iterable[Question], index: EvalIndex, on_drop: Callable[[Drop], None]) -> Iterator[Question]:
    """The questions that share no n-gram (and no whole text) with the evaluation sets, in order; each other one goes
    to ``on_drop`` as reason ``contaminated`` with the set and the n-gram in the detail. Never reorders."""
    for q in questions:
        hit = index.match(q.question, q.id)
        if hit is None:
            yield q
            continue
        name, gram = hit
        detail = (f"{index.n}-gram '{' '.join(gram)}' of {name}" if gram is not None
                  else f"the same text as a question of {name}")
        on_drop(Drop(q.id, STAGE_DECONTAM, "contaminated", detail, q.source))


# ─── deduplication ─────────────────────────────────────────────────────────────────────────────────────────────


def shingles(text: str, k: int) -> set[str]:
    """The word ``k``-shingles of the normalised text (the whole text as one shingle when it has fewer words)."""
    tokens = words(text)
    if len(tokens) <= k:
        return {" ".join(tokens)}
    return {" ".join(g) for g in ngrams(tokens, k)}


def lsh_params(threshold: float, num_perm: int, recall: float = LSH_RECALL) -> tuple[int, int]:
    """``(bands, rows)`` of the LSH: the most rows per band (fewest false candidates) whose chance of making a pair
    at exactly ``threshold`` a candidate, ``1 - (1 - t**rows)**bands``, is at least ``recall``.

    datasketch's own choice for 0.9 and 128 permutations (5 bands of 25 rows, weighing false positives and negatives
    alike) makes only 31% of the pairs at Jaccard 0.9 candidates, and 80% at 0.95; this gives 12 bands of 10 rows:
    99.4% at 0.9, 29% at 0.7 (then refused by the estimate), 1% at 0.5.
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)  # 32-bit like datasketch's default sha1_hash32, ~4x cheaper; MinHash mixes it again


class NearDuplicates:
    """MinHash LSH over word shingles: ``check(q)`` gives ``(kept id, similarity)`` of the most similar question
    kept so far at or above the threshold, or None, in which case ``q`` is kept (indexed).

    Holds ``num_perm`` 4-byte hash values per kept question (512 bytes at 128) plus the LSH bands.
    """

    def __init__(self, threshold: float = 0.9, shingle: int = 5, num_perm: int = 128, same_numbers: bool = True):
        from datasketch import MinHash, MinHashLSH  # deferred: datasketch imports scipy (~0.4 s), only dedup needs it

        self.threshold, self.shingle, self.num_perm, self.same_numbers = threshold, shingle, num_perm, same_numbers
        self._MinHash = MinHash
        self._template = MinHash(num_perm=num_perm, hashfunc=_crc32)  # its permutations are shared by every sketch
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=lsh_params(threshold, num_perm))
        self.digests: dict[str, object] = {}  # kept id -> hash values (num_perm,) uint32
        self.numbers: dict[str, int] = {}  # kept id -> hash of its numbers and quoted literals in order
        self.answers: dict[str, str] = {}  # kept id -> its canonical reference answer (kept only when it has one)

    def sketch(self, text: str):
        """The MinHash of the text's shingles (permutations shared, so sketches compare)."""
        m = self._MinHash(num_perm=self.num_perm, hashfunc=_crc32, permutations=self._template.permutations,
                          scheme=self._template.scheme)
        m.update_batch(s.encode("utf-8") for s in shingles(text, self.shingle))
        return m

    def check(self, q: Question) -> tuple[str, float] | None:
        """The kept near duplicate of ``q`` and its estimated Jaccard similarity, or None (then ``q`` is indexed)."""
        m = self.sketch(q.question)
        numbers = hash(tuple(_LITERAL.findall(q.question)))
        answer = canonicalize(q.answer) if q.answer else ""
        best: tuple[str, float] | None = None
        for key in self.lsh.query(m):
            if self.same_numbers and (self.numbers[key] != numbers or (answer and self.answers.get(key, answer) != answer)):
                continue
            sim = float((self.digests[key] == m.hashvalues).mean())
            if sim >= self.threshold and (best is None or sim > best[1] or (sim == best[1] and key < best[0])):
                best = (key, sim)
        if best is None:
            self.lsh.insert(q.id, m, check_duplication=False)
            self.digests[q.id] = m.hashvalues
            self.numbers[q.id] = numbers
            if answer:
                self.answers[q.id] = answer
        return best


def deduplicate(questions: Iterable[Question], on_drop: Callable[[Drop], None],
                config: DecontamConfig | None = None) -> Iterator[Question]:
    """The first occurrence of every question, in order: exact duplicates (same ``id``) go to ``on_drop`` as
    ``duplicate``, then, with ``config.near_dedup``, near duplicates as ``near_duplicate`` (see the module docstring)."""
    config = config or DecontamConfig()
    seen: dict[str, str] = {}  # id -> how its first occurrence went (the detail a later copy gets)
    near = NearDuplicates(config.near_threshold, config.shingle, config.num_perm, config.near_same_numbers) \
        if config.near_dedup else None
    for q in questions:
        if q.id in seen:
            on_drop(Drop(q.id, STAGE_DEDUP, "duplicate", seen[q.id], q.source))
            continue
        hit = near.check(q) if near is not None else None
        if hit is not None:
            on_drop(Drop(q.id, STAGE_DEDUP, "near_duplicate", f"near duplicate of kept question {hit[0]} (estimated "
                         f"Jaccard {hit[1]:.2f} on word {config.shingle}-shingles)", q.source))
            seen[q.id] = f"same text as question {q.id}, itself a near duplicate of kept question {hit[0]}"
            continue
        seen[q.id] = f"same text as kept question {q.id} (from {q.source or 'the pool'})"
        yield q


def decontaminate_and_dedup(questions: Iterable[Question], config: DecontamConfig, on_drop: Callable[[Drop], None],
                            index: EvalIndex | None = None) -> Iterator[Question]:
    """Both steps in s1's order: decontamination against ``config.eval_sets`` (or a prebuilt ``index``), then dedup.
    The index is built before the first question is read, so an unreadable evaluation set is refused up front."""
    index = index if index is not None else load_eval_index(config.eval_sets, config.ngram)
    if index.n != config.ngram:
        raise TTScaleError(f"the evaluation index holds {index.n}-grams but ngram={config.ngram}; build it with the same n")
    return deduplicate(decontaminate(questions, index, on_drop), on_drop, config)
