"""What an evaluation runs: :class:`EvalConfig` (every ``ttscale eval`` flag), its sweeps, and the units of work.

    config = EvalConfig(dataset="synthetic", limit=30, methods=("budget", "majority"), budgets=(16, 32, 64), n=(1, 4, 16))
    method_settings(config, "budget")   -> [{"max_thinking_tokens": 16}, {"max_thinking_tokens": 32}, ...]
    plan_units(config, problems)        -> the units ``benchmarks.eval.runner`` shards and runs

Pure planning: no model, no files. The runner (``runner.py``) and the executors (``methods.py``) both import it.
"""


from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields

from benchmarks.eval.store import PARALLEL_METHODS, SEQUENTIAL_METHODS, canonical_json, row_key
from engine.errors import ConfigError, TTScaleError
from engine.formats import FormatConfig
from engine.search.prm_protocols import PROTOCOLS

POOLED = ("majority", "best-of-n", "weighted")          # share one pool of max(N) samples per problem
STEPWISE = ("beam", "dvts")                              # one search per N
DERIVED = ("compute-optimal",)                           # rows built from the other parallel methods' rows
METHODS = SEQUENTIAL_METHODS + PARALLEL_METHODS             # PARALLEL_METHODS ends with compute-optimal
SCORED = ("best-of-n", "weighted", "beam", "dvts")       # need a PRM or verifier
CLASSES = ("short", "long")
DEFAULT_BUDGETS = (128, 256, 512)
DEFAULT_STEPS = (1, 2, 4)
DEFAULT_N = (1, 4, 16)
EVAL_SCHEMA = 1  # bump when rows of the same configuration would change meaning


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


def check_sweep(name: str, values: tuple, least: int, empty_hint: str = "") -> None:
    """Refuse (``ConfigError`` naming the field ``name``) an empty sweep, a value that is not an integer >= ``least``
    and a value listed twice; ``empty_hint`` ends the empty-sweep sentence."""
    if not values:
        raise ConfigError(f"`{name}` is empty; give at least one value{empty_hint}")
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ConfigError(f"`{name}` value {v!r} must be an integer >= {least}")
    if len(set(values)) != len(values):
        raise ConfigError(f"`{name}` lists a value twice ({' '.join(map(str, values))}); give each once")


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides an evaluation's rows; each field is one ``ttscale eval`` flag (STYLE §9).

    Sweeps left at None take their defaults when planned (``method_settings``); an explicitly empty sweep is refused.
    Refuses (one sentence each) a missing dataset, no or unknown methods, empty or non-positive sweeps, beam / DVTS
    N that M does not divide, compute-optimal without a scored pool, and non-positive caps and batch sizes.
    """

    dataset: str = field(default="", metadata=_help("math500, aime24, aime25, gpqa-diamond, synthetic[:task[:K]] or a .jsonl path"))
    limit: int | None = field(default=None, metadata=_help("evaluate the first K problems"))
    fields: str | None = field(default=None, metadata=_help("field mapping for a .jsonl file: question=problem,answer=answer[,id=...][,choices=...]"))
    methods: tuple[str, ...] = field(default=("budget",), metadata=_help(
        "methods to run (several allowed): " + ", ".join(METHODS), flag="--method"))
    budgets: tuple[int, ...] | None = field(default=None, metadata=_help(
        f"thinking-token budgets for budget forcing, token-conditional and rejection sampling (default {' '.join(map(str, DEFAULT_BUDGETS))})"))
    force_min: bool = field(default=False, metadata=_help("budget forcing: also set the minimum to the budget (thinking lasts exactly B tokens; 'Wait' replaces earlier ends)"))
    num_ignore: tuple[int, ...] | None = field(default=None, metadata=_help(
        "budget forcing: numbers of ignored ends of thinking ('Wait') to sweep; alone, they replace the --budgets sweep"))
    ignore_cap: int | None = field(default=None, metadata=_help("thinking cap of the --num-ignore settings (default: none, only --max-new-tokens)"))
    steps: tuple[int, ...] | None = field(default=None, metadata=_help(
        f"step-conditional: step counts N of 'Think for up to N steps.' (default {' '.join(map(str, DEFAULT_STEPS))})"))
    classes: tuple[str, ...] = field(default=CLASSES, metadata=_help("class-conditional: prompt classes, short and/or long"))
    n: tuple[int, ...] | None = field(default=None, metadata=_help(
        f"parallel methods: numbers of samples / beams N (default {' '.join(map(str, DEFAULT_N))})"))
    beam_width: int = field(default=4, metadata=_help("beam / DVTS: M (beam keeps N/M, DVTS runs N/M subtrees of M)"))
    max_steps: int = field(default=8, metadata=_help("parallel methods: steps per sample; the last runs to its end"))
    max_step_tokens: int = field(default=64, metadata=_help("parallel methods: token cap of one step"))
    temperature: float = field(default=0.8, metadata=_help("sampling temperature of the parallel methods (search-and-learn: 0.8)"))
    top_p: float = field(default=1.0, metadata=_help("top-p of the parallel methods"))
    top_k: int = field(default=0, metadata=_help("top-k of the parallel methods (0 = off)"))
    rejection_temperature: float = field(default=1.0, metadata=_help("rejection sampling temperature (s1: 1.0)"))
    max_tries: int = field(default=8, metadata=_help("rejection sampling: samples drawn per problem before giving up"))
    max_answer_tokens: int = field(default=256, metadata=_help("answer cap of every generation"))
    max_new_tokens: int = field(default=1024, metadata=_help("overall cap of generations that no thinking budget bounds (baselines, --num-ignore without --ignore-cap)"))
    parallel_max_thinking: int | None = field(default=None, metadata=_help("thinking cap of each parallel sample (budget forcing inside search)"))
    prm: str | None = field(default=None, metadata=_help("scorer for best-of-n / weighted / beam / dvts: PRM model, or module:function with --prm-protocol verifier (default: the policy itself)"))
    prm_protocol: str = field(default="rlhflow", metadata=_help(", ".join(PROTOCOLS) + " or verifier"))
    pilot_n: int = field(default=4, metadata=_help("compute-optimal: samples of the pool whose mean PRM score bins the problems"))
    batch_size: int = field(default=16, metadata=_help("problems per generate call (sequential methods); part of the configuration since batches change numerics"))
    search_batch: int = field(default=4, metadata=_help("problems per search (parallel methods)"))
    seed: int = field(default=0, metadata=_help("seed of the synthetic problems, GPQA's choice order and every sampled unit"))
    model: str = field(default="smollm2-135m", metadata=_help("policy model"))
    dtype: str = field(default="auto", metadata=_help("model dtype"))
    quantization: str | None = field(default=None, metadata=_help("bitsandbytes quantisation"))
    format: str = field(default="auto", metadata=_help("thinking format: auto (chosen from the tokenizer, as generate does), s1, think-tags or custom"))
    think_start: str | None = field(default=None, metadata=_help("string that opens thinking"))
    think_end: str | None = field(default=None, metadata=_help("end-of-thinking delimiter"))
    template: str = field(default="auto", metadata=_help("prompt style"))
    system: str | None = field(default=None, metadata=_help("system message"))

    def __post_init__(self):
        for name in ("methods", "budgets", "num_ignore", "steps", "classes", "n"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple([value] if isinstance(value, (str, int)) else value))
        if not str(self.dataset or "").strip():
            raise ConfigError("`dataset` is missing; give math500, aime24, aime25, gpqa-diamond, synthetic or a path to a .jsonl file")
        if not self.methods:
            raise ConfigError(f"`methods` is empty; give at least one of {', '.join(METHODS)}")
        for m in self.methods:
            if m not in METHODS:
                raise ConfigError(f"`methods` {m!r} is unknown; use one of {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"`methods` lists a method twice ({', '.join(self.methods)}); give each once")
        for name, values, least in (("budgets", self.budgets, 1), ("num_ignore", self.num_ignore, 0),
                                    ("steps", self.steps, 1), ("n", self.n, 1)):
            if values is not None:
                check_sweep(name, values, least, " (or leave it unset for its default)")
        if not self.classes or any(c not in CLASSES for c in self.classes):
            raise ConfigError(f"`classes` {' '.join(self.classes) or '(empty)'}: use short and/or long")
        for flag, value, least in (("`beam_width`", self.beam_width, 1), ("`max_steps`", self.max_steps, 1),
                                   ("`max_step_tokens`", self.max_step_tokens, 1), ("`max_tries`", self.max_tries, 1),
                                   ("`max_answer_tokens`", self.max_answer_tokens, 1), ("`max_new_tokens`", self.max_new_tokens, 1),
                                   ("`pilot_n`", self.pilot_n, 1), ("`batch_size`", self.batch_size, 1),
                                   ("`search_batch`", self.search_batch, 1), ("`ignore_cap`", self.ignore_cap, 1),
                                   ("`parallel_max_thinking`", self.parallel_max_thinking, 1), ("`limit`", self.limit, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
                raise ConfigError(f"{flag} must be an integer >= {least}, got {value!r}")
        FormatConfig(self.format, self.think_start, self.think_end, self.template, self.system).thinking_format()  # refuses a bad format now
        for name in ("temperature", "top_p", "rejection_temperature"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v or v in (float("inf"), float("-inf")):
                raise ConfigError(f"`{name}` must be a finite number, got {v!r}")
        if self.temperature <= 0 and any(m in PARALLEL_METHODS for m in self.methods):
            raise ConfigError(f"`temperature` {self.temperature}: parallel methods draw different samples, so it must be > 0 (0.8 is search-and-learn's)")
        if self.rejection_temperature <= 0 and "rejection" in self.methods:
            raise ConfigError(f"`rejection_temperature` {self.rejection_temperature}: rejection sampling needs a temperature > 0 (s1 uses 1.0)")
        for m in STEPWISE:
            if m in self.methods:
                bad = [k for k in self.ns if k % self.beam_width]
                if bad:
                    raise ConfigError(f"`n` {bad[0]} is not a multiple of `beam_width` {self.beam_width}, which {m} needs "
                                      f"(it keeps N/M candidates per step); drop it or choose a `beam_width` that divides every N")
        if "compute-optimal" in self.methods:
            if not any(m in self.methods for m in ("best-of-n", "weighted")):
                raise ConfigError("`methods` compute-optimal bins problems by the PRM scores of a pilot drawn from the best-of-n / "
                                  "weighted pool, so add best-of-n or weighted to `methods`")
            if self.pilot_n > max(self.ns):
                raise ConfigError(f"`pilot_n` {self.pilot_n} is larger than the largest `n` {max(self.ns)}; the pilot is the first "
                                  "samples of the pool, so lower it or add a larger N")

    # ---- resolved sweeps ---------------------------------------------------------------------------------------
    @property
    def ns(self) -> tuple[int, ...]:
        """The N values, sorted (default 1 4 16)."""
        return tuple(sorted(self.n if self.n is not None else DEFAULT_N))

    def to_dict(self) -> dict:
        """The configuration as stored in ``config.json`` and fingerprinted: every field, plus the planned settings
        of every method (so that two spellings of the same work are the same configuration, and two different plans
        never are). Holds no output path, device or process count."""
        d = asdict(self)
        for k in ("budgets", "num_ignore", "steps", "n"):
            d.pop(k)
        d["methods"] = list(self.methods)
        d["classes"] = list(self.classes)
        d["plan"] = {m: method_settings(self, m) for m in self.methods}
        d["eval_schema"] = EVAL_SCHEMA
        return d


def method_settings(config: EvalConfig, method: str) -> list[dict]:
    """The settings a method is swept over, in order; each becomes one point of the figure.

    budget: ``max_thinking_tokens`` (and ``min_thinking_tokens`` with --force-min) per budget, then ``num_ignore``
    (with ``max_thinking_tokens`` = --ignore-cap) per ignore count; token-conditional and rejection: the *asked*
    ``max_thinking_tokens``; step-conditional: ``steps``; class-conditional: ``class``; parallel: ``n`` (beam / DVTS
    also ``m``). Refuses an unknown method.
    """
    budgets = config.budgets if config.budgets is not None else DEFAULT_BUDGETS
    if method == "budget":
        out = []
        if config.budgets is not None or config.num_ignore is None:
            out += [{"max_thinking_tokens": b, **({"min_thinking_tokens": b} if config.force_min else {})} for b in budgets]
        for k in config.num_ignore or ():
            out.append({"num_ignore": k, **({"max_thinking_tokens": config.ignore_cap} if config.ignore_cap else {})})
        return out
    if method in ("token-conditional", "rejection"):
        return [{"max_thinking_tokens": b} for b in budgets]
    if method == "step-conditional":
        return [{"steps": s} for s in (config.steps if config.steps is not None else DEFAULT_STEPS)]
    if method == "class-conditional":
        return [{"class": c} for c in config.classes]
    if method in POOLED or method in DERIVED:
        return [{"n": k} for k in config.ns]
    if method in STEPWISE:
        return [{"n": k, "m": config.beam_width} for k in config.ns]
    raise TTScaleError(f"--method {method!r} is unknown; use one of {', '.join(METHODS)}")


# ------------------------------------------------------------------------------------------------- units
@dataclass(frozen=True)
class Unit:
    """A piece of work that is run as a whole: ``kind`` (the executor), the problems of one batch, and the
    (method, setting) pairs it writes one row for per problem. ``index`` numbers the batch within its sweep point."""

    kind: str
    problems: tuple
    outputs: tuple                 # ((method, setting), ...)
    index: int

    def keys(self) -> list[tuple[str, str, str]]:
        """The store keys of every row this unit writes."""
        return [row_key(p.id, m, s) for p in self.problems for m, s in self.outputs]

    def seed(self, base: int) -> int:
        """A seed fixed by the run seed, the unit's kind, outputs and batch: independent of sharding and resumes."""
        text = f"{base}|{self.kind}|{canonical_json([[m, s] for m, s in self.outputs])}|{self.index}"
        return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)

    def cost(self) -> int:
        """Generations this unit makes (a pool of max(N) samples per problem, N per problem for beam / DVTS, one per
        problem otherwise): the progress bar's unit, so that its ETA weighs a pool of 16 samples as 16."""
        if self.kind == "pool":
            return len(self.problems) * max(s["n"] for _, s in self.outputs)
        if self.kind in STEPWISE:
            return len(self.problems) * self.outputs[0][1]["n"]
        return len(self.problems)

    def label(self) -> str:
        """``budget max_thinking_tokens=64`` or ``pool n=1,4,16``: for the progress bar."""
        if self.kind == "pool":
            return "pool " + "/".join(dict.fromkeys(m for m, _ in self.outputs))
        m, s = self.outputs[0]
        return f"{m} " + ",".join(f"{k}={v}" for k, v in sorted(s.items()))


def _chunks(items: list, size: int) -> list[tuple]:
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


def plan_units(config: EvalConfig, problems: list) -> list[Unit]:
    """Every unit of the run, in a fixed order that depends only on the configuration and the problems.

    Sequential methods: one unit per (setting, batch of ``batch_size`` problems). Majority, best-of-n and weighted:
    one ``pool`` unit per batch of ``search_batch`` problems, serving all three at every N (the first n of max(N)
    samples). Beam and DVTS: one unit per (N, batch). Compute-optimal has no units (its rows are derived at the end).
    """
    units = []
    for method in config.methods:
        if method in SEQUENTIAL_METHODS:
            for s in method_settings(config, method):
                units += [Unit(method, c, ((method, s),), i) for i, c in enumerate(_chunks(problems, config.batch_size))]
        elif method in STEPWISE:
            for s in method_settings(config, method):
                units += [Unit(method, c, ((method, s),), i) for i, c in enumerate(_chunks(problems, config.search_batch))]
    pooled = [m for m in POOLED if m in config.methods]
    if pooled:
        outputs = tuple((m, s) for m in pooled for s in method_settings(config, m))
        units += [Unit("pool", c, outputs, i) for i, c in enumerate(_chunks(problems, config.search_batch))]
    return units


def config_fields() -> list:
    """The dataclass fields of :class:`EvalConfig` (the CLI builds one flag from each)."""
    return list(fields(EvalConfig))
