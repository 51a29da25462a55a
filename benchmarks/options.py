"""Every ``ttscale bench`` benchmark's flags, torch-free: one options dataclass per benchmark, the timing flags the
speed benchmarks share, and :data:`BENCHMARKS`, which ``ttscale bench`` registers (so ``ttscale bench budget --help``
needs neither torch nor math-verify).

Each benchmark module (``benchmarks/speed/<name>.py``, ``benchmarks/grading/extraction.py``) reads its flags through
the spec here and runs as ``ttscale bench <name>`` or ``python -m benchmarks.<package>.<module>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.curation import DecontamOptions
from engine.cli.args import CommandConfig
from engine.errors import ConfigError


@dataclass(frozen=True)
class TimingOptions:
    """The flags every benchmark shares: how many rounds, warm-up runs and threads, and JSON-only output."""

    repeats: int = field(default=3, metadata={"help": "timed rounds, competitor order alternating; the fastest counts, the median is shown"})
    warmup: int = field(default=1, metadata={"help": "untimed runs of each competitor first"})
    threads: int | None = field(default=None, metadata={"help": "torch intra-op threads (default: torch's)"})
    json: bool = field(default=False, metadata={"help": "print only the final JSON line"})


def command_config(options, repeats: int) -> CommandConfig:
    """The flags of one benchmark: its ``options`` dataclass, then :class:`TimingOptions` (``repeats`` as its default)."""
    return CommandConfig(options, TimingOptions, defaults={"repeats": repeats},
                         titles={options: "benchmark", TimingOptions: "timing"})


@dataclass(frozen=True)
class Benchmark:
    """One ``ttscale bench`` subcommand: its flags, the ``"module:function"`` that runs it, and its one-line help."""

    spec: CommandConfig
    run: str
    help: str


@dataclass(frozen=True)
class BudgetOptions:
    """What ``ttscale bench budget`` runs."""

    model: str = field(default="smollm2-135m", metadata={"help": "embedded name, local directory, GGUF file or hub id"})
    batch_sizes: tuple[int, ...] = field(default=(1, 16), metadata={"help": "batch sizes to measure"})
    num_ignore: int = field(default=4, metadata={"help": "continuations injected per row"})
    max_thinking_tokens: int = field(default=256, metadata={"help": "thinking cap"})
    max_answer_tokens: int = field(default=32, metadata={"help": "answer cap"})


@dataclass(frozen=True)
class KVCacheOptions:
    """What ``ttscale bench kv-cache`` runs."""

    model: str = field(default="smollm2-135m", metadata={"help": "embedded name, local directory, GGUF file or hub id"})
    n: int = field(default=16, metadata={"help": "branches forked from the prompt"})
    prompt: int = field(default=200, metadata={"help": "prompt length in tokens"})
    steps: int = field(default=32, metadata={"help": "decode steps (one token per branch each)"})
    seed: int = field(default=0, metadata={"help": "seed of the random prompt and fed tokens"})


@dataclass(frozen=True)
class SearchBenchOptions:
    """What ``ttscale bench search`` runs."""

    model: str = field(default="smollm2-135m", metadata={"help": "embedded name, local directory, GGUF file or hub id"})
    strategies: tuple[str, ...] = field(default=("beam", "dvts"), metadata={"help": "beam and/or dvts"})
    ns: tuple[int, ...] = field(default=(4, 16), metadata={"help": "N values (multiples of --beam-width)"})
    beam_width: int = field(default=4, metadata={"help": "M of beam search and DVTS"})
    problems: int = field(default=2, metadata={"help": "questions per run (the engine searches them together)"})
    max_steps: int = field(default=4, metadata={"help": "steps per branch"})
    max_step_tokens: int = field(default=32, metadata={"help": "token cap of one step"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature"})
    seed: int = field(default=0, metadata={"help": "random seed of both competitors"})


@dataclass(frozen=True)
class PRMMemoryOptions:
    """What ``ttscale bench prm-memory`` measures (exact counts: no timing flags)."""

    n: tuple[int, ...] = field(default=(4, 8, 16), metadata={"help": "candidate counts N (one run of both workloads each)"})
    question_tokens: int = field(default=100, metadata={"help": "question length in tokens (at least)"})
    protocol: str = field(default="rlhflow", metadata={"help": "PRM protocol of the stand-in", "choices": ["rlhflow", "math-shepherd"]})
    json: bool = field(default=False, metadata={"help": "print only the final JSON line"})


@dataclass(frozen=True)
class ServeBenchOptions:
    """What ``ttscale bench serve`` runs."""

    model: str = field(default="smollm2-135m", metadata={"help": "embedded name, local directory, GGUF file or hub id"})
    concurrency: tuple[int, ...] = field(default=(1, 8, 32), metadata={
        "help": "concurrent clients per level; 1 (the same requests one at a time) is the baseline and always runs"})
    requests: int = field(default=32, metadata={"help": "requests per level (the same set at every level)"})
    budgets: tuple[int, ...] = field(default=(16, 32, 48), metadata={"help": "max_thinking_tokens, cycled over the requests"})
    max_answer_tokens: int = field(default=16, metadata={"help": "answer cap of every request"})

    def __post_init__(self):
        for name in ("requests", "max_answer_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {v!r}")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise ConfigError(f"`concurrency` levels must be integers >= 1, got {list(self.concurrency)}")
        if not self.budgets or any(b < 1 for b in self.budgets):
            raise ConfigError(f"`budgets` must be integers >= 1, got {list(self.budgets)}")


@dataclass(frozen=True)
class ViewBenchOptions:
    """What ``ttscale bench view`` renders and opens in headless Chromium."""

    tokens: int = field(default=50_000, metadata={"help": "token records of the synthetic trace (one prompt)"})
    nodes: int = field(default=2_000, metadata={"help": "nodes of the synthetic DVTS search tree (root included)"})

    def __post_init__(self):
        for name in ("tokens", "nodes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {v!r}")


@dataclass(frozen=True)
class GradingOptions:
    """What ``ttscale bench grading`` runs (no model, no timing: true- and false-positive rates)."""

    math500: str | None = field(default=None, metadata={
        "help": "MATH-500 JSONL (its 'answer' field joins the corpus); default: built-in and synthetic answers only", "metavar": "FILE"})
    per_template: int = field(default=200, metadata={"help": "golds sampled per template (fixed seed)"})
    seed: int = field(default=0, metadata={"help": "seed of the per-template samples and the wrong answers"})
    out: str | None = field(default=None, metadata={"help": "also write the JSON result to this file", "metavar": "FILE"})
    json: bool = field(default=False, metadata={"help": "print only the final JSON line"})

    def __post_init__(self):
        if not isinstance(self.per_template, int) or isinstance(self.per_template, bool) or self.per_template < 1:
            raise ConfigError(f"`per_template` must be an integer >= 1, got {self.per_template!r}")


BUDGET = Benchmark(command_config(BudgetOptions, repeats=3), "benchmarks.speed.budget:main",
                   "budget forcing in one generate call vs plain generate vs s1's re-prefill loop")
SEARCH = Benchmark(command_config(SearchBenchOptions, repeats=1), "benchmarks.speed.search:main",
                   "beam search and DVTS on the prefix-sharing engine vs the reference's re-prefill loop")
KV_CACHE = Benchmark(command_config(KVCacheOptions, repeats=3), "benchmarks.speed.kv_cache:main",
                     "tree cache vs a DynamicCache batch that holds one copy of the prompt per row")
PRM_MEMORY = Benchmark(CommandConfig(PRMMemoryOptions, titles={PRMMemoryOptions: "benchmark"}), "benchmarks.speed.prm_memory:main",
                       "PRM prefix-cache memory for N candidates of one question: per-entry KV copies vs KVCacheManager")

GRADING = Benchmark(CommandConfig(GradingOptions, titles={GradingOptions: "benchmark"}), "benchmarks.grading.extraction:main",
                    "answer extraction graded on templated positives and negatives vs math-verify alone and s1's rule")

SERVE = Benchmark(command_config(ServeBenchOptions, repeats=1), "benchmarks.speed.serve:main",
                  "ttscale serve under C concurrent streaming clients vs the same requests one at a time")

VIEW = Benchmark(command_config(ViewBenchOptions, repeats=3), "benchmarks.speed.view:main",
                 "ttscale view pages of a 50,000-token trace and a 2,000-node tree: load and interaction times in Chromium")

DECONTAM = Benchmark(CommandConfig(DecontamOptions, titles={DecontamOptions: "benchmark"}), "benchmarks.curation.decontam:main",
                     "s1's 8-gram decontamination and exact / MinHash near dedup of a 59K-question pool")

# ``ttscale bench NAME``, in the order its help lists them.
BENCHMARKS = {"budget": BUDGET, "search": SEARCH, "kv-cache": KV_CACHE, "prm-memory": PRM_MEMORY, "serve": SERVE,
              "view": VIEW, "grading": GRADING, "decontam": DECONTAM}
