"""The diversity stage: every question gets one MSC2020 domain in ``metadata["domain"]`` (REFERENCE §1).

    for q in classify_domains(questions, DiversityConfig()):            # offline: no model
        q.metadata["domain"]   -> {"code": "11", "name": "Number theory", "method": "subject", "detail": "subject 'Number Theory'"}
    classify_domains(questions, DiversityConfig(method="llm"), engine=ThinkingEngine..., cache=StageCache(...))

Three ways to a code, tried in this order:

1. ``subject`` — the dataset's own subject field (``metadata["subject"]``, ``metadata["type"]``, or the last part of a
   source such as ``simplescaling/openaimath/Number Theory``), looked up in :data:`curation.domains.SUBJECT_CODES`.
   On by default (``use_subject``); s1 itself ignored subjects and classified everything with an LLM.
2. ``llm`` — s1's way (``method="llm"``): the model is shown the codes and their titles and asked for the one code;
   greedy, batched through :class:`engine.engine.ThinkingEngine` (thinking allowed, capped); the first valid code
   in its answer is taken. Results are cached per question through ``cache`` (any object with ``get(id)`` and
   ``put(id, value)`` or ``__setitem__``, such as a dict or a stage cache opened with :func:`llm_settings`), so a
   rerun asks nothing twice. An answer with no valid code (a refusal, a code outside the list) falls back to 3,
   or drops the question with ``unclassified="drop"``.
3. ``keywords`` — an offline text classifier (:class:`KeywordClassifier`): weighted keyword patterns per code
   (:data:`curation.domains.KEYWORDS`), highest total wins, ``fallback_code`` when nothing matches.

This module imports no model library: the caller builds the engine (``ThinkingEngine.from_config``). Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from curation.domains import KEYWORDS, domain_codes, domain_name, domain_record, subject_code
from curation.schema import Drop, Question
from engine.errors import ConfigError, TTScaleError
from engine.logits.budget_state import BudgetConfig
from engine.logits.sampling import SamplingConfig

if TYPE_CHECKING:  # the engine is passed in, never built here (it would import torch)
    from engine.engine import ThinkingEngine

STAGE = "diversity"
METHODS = ("offline", "llm")
UNCLASSIFIED = ("keywords", "drop")
PROMPT_VERSION = 1  # bump when the prompt's wording changes: cached answers of another wording are not reused

_CODE = re.compile(r"(?<!\d)(\d{2})(?!\d)")
_HOLD = 64  # the stage holds at most this many batches' worth of questions to keep the input order


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass(frozen=True)
class DiversityConfig:
    """How the diversity stage labels questions; each field maps to one flag of ``ttscale curate`` (STYLE §9).

    Refuses an unknown method, code set or ``unclassified`` action, a fallback code outside the code set, empty
    subject keys and non-positive batch size or token caps.
    """

    method: str = field(default="offline", metadata=_help(
        "offline (subject field, else keywords; no model) or llm (s1: a model picks the code)", choices=list(METHODS)))
    use_subject: bool = field(default=True, metadata=_help(
        "label a question by its dataset's subject field when it has a known one (s1 did not: set false to reproduce it)"))
    subject_keys: tuple[str, ...] = field(default=("subject", "type"), metadata=_help(
        "metadata fields that may hold the subject, in order (the source's last '/' part is tried after them)"))
    codes: str = field(default="s1", metadata=_help("codes a classifier may answer: s1 (61, as s1) or msc2020 (all 63)",
                                                    choices=["s1", "msc2020"]))
    fallback_code: str = field(default="12", metadata=_help(
        "keyword classifier: code of a question no keyword matches (12, Field theory and polynomials: most such MATH questions are equations)"))
    model: str = field(default="smollm2-135m", metadata=_help("llm: the classifying model (s1 used Claude 3.5 Sonnet)"))
    batch_size: int = field(default=8, metadata=_help("llm: questions per generate call"))
    max_thinking_tokens: int = field(default=256, metadata=_help("llm: thinking cap before the code is asked for"))
    max_answer_tokens: int = field(default=16, metadata=_help("llm: answer cap (the code and a few words)"))
    unclassified: str = field(default="keywords", metadata=_help(
        "llm: what to do with an answer holding no valid code: keywords (label it offline) or drop",
        choices=list(UNCLASSIFIED)))

    def __post_init__(self):
        if isinstance(self.subject_keys, str):
            object.__setattr__(self, "subject_keys", (self.subject_keys,))
        else:
            object.__setattr__(self, "subject_keys", tuple(self.subject_keys))
        if self.method not in METHODS:
            raise ConfigError(f"`method` {self.method!r} is unknown; use offline or llm")
        if self.unclassified not in UNCLASSIFIED:
            raise ConfigError(f"`unclassified` {self.unclassified!r} is unknown; use keywords or drop")
        try:
            allowed = domain_codes(self.codes)
        except TTScaleError:
            raise ConfigError(f"`codes` {self.codes!r} is unknown; use s1 or msc2020") from None
        if self.fallback_code not in allowed:
            raise ConfigError(f"`fallback_code` {self.fallback_code!r} is not one of the {self.codes} codes; "
                              "give a two-digit MSC2020 code such as 12")
        if not self.subject_keys or any(not isinstance(k, str) or not k for k in self.subject_keys):
            raise ConfigError("`subject_keys` must be non-empty field names (e.g. subject type)")
        for name in ("batch_size", "max_thinking_tokens", "max_answer_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {v!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("`model` is empty; name the classifying model (an embedded name, a directory or a hub id)")

    @property
    def allowed_codes(self) -> tuple[str, ...]:
        """The codes of :attr:`codes`."""
        return domain_codes(self.codes)


# ------------------------------------------------------------------------------------------- subject field
def question_subject(question: Question, keys: Iterable[str] = ("subject", "type")) -> str | None:
    """The question's subject as its dataset names it: the first non-empty string among ``metadata[key]`` for
    ``keys``, else the last ``/`` part of ``question.source`` (s1's ``source_type`` convention,
    ``simplescaling/openaimath/Algebra``); None when there is neither. Refuses nothing."""
    for key in keys:
        value = question.metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if "/" in question.source:
        tail = question.source.rstrip("/").rsplit("/", 1)[-1].strip()
        return tail or None
    return None


# ------------------------------------------------------------------------------------------- keyword classifier
class KeywordClassifier:
    """The offline text classifier: the sum of the weights of each code's patterns found in the lower-cased text;
    the highest sum wins, ties go to the code listed first in the table, and ``fallback`` is returned when no
    pattern matches. Only codes in ``codes`` are scored.

        >>> KeywordClassifier().classify("What is the remainder when 2^100 is divided by 7?")
        ('11', 'keywords: remainder')

    Refuses a fallback outside ``codes``, a table code that is not MSC2020 and a pattern that does not compile.
    """

    def __init__(self, table: dict[str, tuple[tuple[str, float], ...]] | None = None,
                 codes: Iterable[str] | None = None, fallback: str = "12"):
        table = KEYWORDS if table is None else table
        allowed = set(domain_codes("msc2020") if codes is None else codes)
        if fallback not in allowed:
            raise TTScaleError(f"keyword classifier fallback {fallback!r} is not among the allowed codes; pick one of them")
        self.fallback = fallback
        self._table: list[tuple[str, list[tuple[re.Pattern, float, str]]]] = []
        for code, patterns in table.items():
            domain_name(code)  # refuses a code that is not MSC2020
            if code not in allowed:
                continue
            compiled = []
            for pattern, weight in patterns:
                try:
                    compiled.append((re.compile(pattern), float(weight), pattern))
                except re.error as exc:
                    raise TTScaleError(f"keyword pattern {pattern!r} of code {code} does not compile ({exc}); fix the table") from exc
            self._table.append((code, compiled))

    def scores(self, text: str) -> dict[str, tuple[float, list[str]]]:
        """Every code with at least one match: (total weight, the matched texts)."""
        low = text.lower()
        out = {}
        for code, patterns in self._table:
            hits = [(w, m.group(0)) for rx, w, _ in patterns if (m := rx.search(low))]
            if hits:
                out[code] = (sum(w for w, _ in hits), [h for _, h in hits])
        return out

    def classify(self, text: str) -> tuple[str, str]:
        """(code, evidence): the best-scoring code and the words that decided it, or the fallback."""
        scores = self.scores(text)
        if not scores:
            return self.fallback, "keywords: none matched, fallback"
        best = max(scores.values(), key=lambda s: s[0])[0]
        code = next(c for c, (s, _) in scores.items() if s == best)  # table order breaks ties
        return code, "keywords: " + ", ".join(dict.fromkeys(h.strip() for h in scores[code][1]))


# ------------------------------------------------------------------------------------------- LLM classifier
def classification_prompt(question: str, codes: Iterable[str]) -> str:
    """The user prompt of the LLM classifier: the question, then one ``NN Title`` line per code, then the request
    for the single most relevant code (s1 asked the same of Claude, ending on the code)."""
    lines = "\n".join(f"{c} {domain_name(c)}" for c in codes)
    return ("Classify the question below into the one Mathematics Subject Classification (MSC2020) domain it "
            "belongs to. If it touches several, choose the most relevant.\n\n"
            f"## Question\n{question}\n\n## Domains\n{lines}\n\n"
            "Answer with the two-digit code of the domain only.")


def parse_code(answer: str, codes: Iterable[str]) -> str | None:
    """The first two-digit number in ``answer`` that is one of ``codes`` (``"Code: 11 (Number theory)"`` -> ``"11"``);
    None for a refusal, an empty answer or codes outside the list. Refuses nothing."""
    allowed = set(codes)
    for m in _CODE.finditer(answer or ""):
        if m.group(1) in allowed:
            return m.group(1)
    return None


def llm_settings(config: DiversityConfig) -> dict:
    """Everything that changes an LLM classification, for a stage cache's settings: the model, the codes, the
    prompt's version and text hash, the budget and greedy decoding. Refuses nothing."""
    template = classification_prompt("{question}", config.allowed_codes)
    return {"stage": STAGE, "model": config.model, "codes": config.codes, "prompt_version": PROMPT_VERSION,
            "prompt_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest()[:16],
            "max_thinking_tokens": config.max_thinking_tokens, "max_answer_tokens": config.max_answer_tokens,
            "sampling": "greedy"}


def _cache_put(cache, key: str, value: dict) -> None:
    put = getattr(cache, "put", None)
    if callable(put):
        put(key, value)
    else:
        cache[key] = value


class LLMClassifier:
    """Asks ``engine`` (a :class:`engine.engine.ThinkingEngine`) for each question's code, greedy, ``batch_size``
    questions per generate call; answers are read from and written to ``cache`` by question id.

    ``classify(questions)`` returns one ``{"code": str | None, "answer": str}`` per question, in order (code None:
    no valid code in the answer). Refuses an engine without ``generate``.
    """

    def __init__(self, engine: "ThinkingEngine", config: DiversityConfig, cache=None):
        if not callable(getattr(engine, "generate", None)):
            raise TTScaleError(f"the LLM classifier needs a ThinkingEngine (an object with generate), got {type(engine).__name__}")
        self.engine, self.config, self.cache = engine, config, cache
        self.budget = BudgetConfig(max_thinking_tokens=config.max_thinking_tokens, max_answer_tokens=config.max_answer_tokens)
        self.calls = 0  # generate calls made (a cached question costs none)

    def classify(self, questions: list[Question]) -> list[dict]:
        """One result per question (see the class docstring); only questions missing from the cache are generated."""
        out: list[dict | None] = [self._cached(q) for q in questions]
        todo = [i for i, r in enumerate(out) if r is None]
        size = self.config.batch_size
        for at in range(0, len(todo), size):
            part = todo[at: at + size]
            prompts = [classification_prompt(questions[i].question, self.config.allowed_codes) for i in part]
            results = self.engine.generate(prompts, self.budget, SamplingConfig(), batch_size=size)
            self.calls += 1
            for i, res in zip(part, results):
                answer = res.answer if isinstance(res.answer, str) else ""
                out[i] = {"code": parse_code(answer, self.config.allowed_codes), "answer": answer}
                if self.cache is not None:
                    _cache_put(self.cache, questions[i].id, out[i])
        return out

    def _cached(self, q: Question) -> dict | None:
        if self.cache is None:
            return None
        hit = self.cache.get(q.id)
        return dict(hit) if isinstance(hit, dict) and "answer" in hit else None


# ------------------------------------------------------------------------------------------- the stage
def classify_domains(questions: Iterable[Question], config: DiversityConfig | None = None,
                     engine: "ThinkingEngine | None" = None, cache=None,
                     record: Callable[[Drop], None] | None = None) -> Iterator[Question]:
    """Label every question with ``metadata["domain"]`` (module docstring: subject, then llm or keywords) and yield
    it, in input order. With ``method="llm"`` questions are sent ``batch_size`` at a time; with
    ``unclassified="drop"`` a question whose answer holds no valid code is not yielded and ``record`` gets its
    :class:`Drop` (reason ``unclassified``). Refuses ``method="llm"`` without an engine.
    """
    config = config or DiversityConfig()
    if config.method == "llm" and engine is None:
        raise TTScaleError("the diversity stage with method llm needs the classifying model: pass engine= (a ThinkingEngine), "
                           "or use method offline")
    keywords = KeywordClassifier(codes=config.allowed_codes, fallback=config.fallback_code)
    llm = LLMClassifier(engine, config, cache) if config.method == "llm" else None
    pending: list[tuple[Question, bool]] = []   # (question, waits for the LLM), kept in input order

    def flush() -> Iterator[Question]:
        asked = [q for q, waits in pending if waits]
        answers = dict(zip((q.id for q in asked), llm.classify(asked))) if asked else {}
        for q, waits in pending:
            if waits and not _label_from_llm(q, answers[q.id], config, keywords, record):
                continue
            yield q
        pending.clear()

    for q in questions:
        subject = question_subject(q, config.subject_keys) if config.use_subject else None
        code = subject_code(subject) if subject else None
        if code is not None and code in config.allowed_codes:
            q.metadata["domain"] = domain_record(code, "subject", f"subject {subject!r}")
            pending.append((q, False))
        elif llm is None:
            code, why = keywords.classify(q.question)
            q.metadata["domain"] = domain_record(code, "keywords", why)
            pending.append((q, False))
        else:
            pending.append((q, True))
        waiting = sum(waits for _, waits in pending)
        if waiting == 0 or waiting >= config.batch_size or len(pending) >= _HOLD * config.batch_size:
            yield from flush()           # nothing to wait for, a full batch, or too many labelled ones held back
    yield from flush()


def _label_from_llm(q: Question, result: dict, config: DiversityConfig, keywords: KeywordClassifier,
                    record: Callable[[Drop], None] | None) -> bool:
    """Store the LLM's code, or the fallback's; False when the question is dropped."""
    shown = json.dumps(result["answer"][:80], ensure_ascii=False)
    if result["code"] is not None:
        q.metadata["domain"] = domain_record(result["code"], "llm", f"{config.model} answered {shown}")
        return True
    if config.unclassified == "drop":
        if record is not None:
            record(Drop(q.id, STAGE, "unclassified", f"{config.model} answered {shown}, which holds no valid code", q.source))
        return False
    code, why = keywords.classify(q.question)
    q.metadata["domain"] = domain_record(code, "keywords", f"{config.model} answered {shown} (no valid code); {why}")
    return True


def config_dict(config: DiversityConfig) -> dict:
    """The configuration as the manifest stores it."""
    d = asdict(config)
    d["subject_keys"] = list(config.subject_keys)
    return d
