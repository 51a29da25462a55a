"""Every command's flags, torch-free: the option dataclasses, their :class:`~engine.cli.args.CommandConfig` specs and
the ``add_<command>(subparsers)`` functions that register them.

Building the whole ``ttscale`` parser imports only this module, the config dataclasses it names (``ModelConfig``,
``FormatConfig``, ``BudgetConfig``, ``SamplingConfig``, ``SearchConfig``, ``EvalConfig``, the benchmarks' options)
and argparse — never torch or transformers — so ``ttscale --help`` and ``ttscale generate --help`` answer at once.
A parser's ``func`` default names the function that runs the command as ``"module:function"``;
:func:`engine.cli.main.main` imports that module only when the command runs (``tests/engine/cli`` checks that every
name resolves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from benchmarks.eval.config import DEFAULT_BUDGETS, DEFAULT_N, METHODS, EvalConfig
from benchmarks.options import BENCHMARKS
from curation.schema import STAGES
from engine.cli.args import CommandConfig
from engine.cli.common import PromptOptions
from engine.errors import ConfigError
from engine.formats import FormatConfig
from engine.logits.budget_state import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.model_config import ModelConfig
from engine.search.config import SearchConfig
from engine.search.prm_protocols import PROTOCOLS
from engine.serve.options import ServeOptions
from train.config import SFTOptions
from train.recipe_config import RECIPES, S1MiniOptions

# ─── generate ──────────────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class GenerateOptions:
    """How ``generate`` batches and what it writes."""

    batch_size: int = field(default=8, metadata={"help": "prompts per generate call"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "overall cap (default: thinking cap + answer cap + forced text)"})
    json: bool = field(default=False, metadata={"help": "one JSON object per prompt"})
    trace: str | None = field(default=None, metadata={"help": "write a token-level JSONL trace", "metavar": "FILE"})

    def __post_init__(self):
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be an integer >= 1, got {self.batch_size!r}")
        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise ConfigError(f"`max_new_tokens` must be an integer >= 1 (or unset), got {self.max_new_tokens!r}")


GENERATE = CommandConfig(PromptOptions, ModelConfig, FormatConfig, BudgetConfig, SamplingConfig, GenerateOptions,
                     titles={PromptOptions: "prompts", ModelConfig: "model", FormatConfig: "thinking format",
                             BudgetConfig: "budget forcing", SamplingConfig: "sampling", GenerateOptions: "output"},
                     skip={BudgetConfig: ("answer_without_budget",)})  # always on here; --no-answer-on-end-of-turn stops it


def add_generate(sub) -> None:
    """Register ``generate`` on the ``ttscale`` subcommands."""
    g = sub.add_parser("generate", help="budget-forced generation", description="Generate with s1 budget forcing in one generate call.")
    GENERATE.add_to(g)
    g.set_defaults(func="engine.cli.generate:run")


# ─── search ───────────────────────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class SearchOptions:
    """The scorer of ``search`` and what it writes."""

    prm: str | None = field(default=None, metadata={
        "help": "PRM model (hub id, directory, embedded name); default: the policy model itself under --prm-protocol", "metavar": "P"})
    prm_protocol: str = field(default="rlhflow", metadata={"help": ", ".join(PROTOCOLS)})
    verifier: str | None = field(default=None, metadata={
        "help": "programmatic step verifier instead of a PRM, e.g. engine.search.verifiers:arithmetic", "metavar": "MODULE:FUNCTION"})
    max_kv_tokens: int | None = field(default=None, metadata={
        "help": "cap on KV-cache tokens; fewer problems are searched together so the worst case fits (default: no cap)"})
    json: bool = field(default=False, metadata={"help": "one JSON object per prompt"})
    tree: str | None = field(default=None, metadata={"help": "write the whole search tree (every node, kept or pruned) as JSON",
                                                     "metavar": "FILE"})

    def __post_init__(self):
        if self.max_kv_tokens is not None and (not isinstance(self.max_kv_tokens, int) or self.max_kv_tokens < 1):
            raise ConfigError(f"`max_kv_tokens` must be an integer >= 1 (or unset for no cap), got {self.max_kv_tokens!r}")
        if self.prm is not None and self.verifier is not None:
            raise ConfigError("`prm` and `verifier` both given; score with a PRM model or with a verifier, not both")
        if self.verifier is None and self.prm_protocol not in PROTOCOLS:
            raise ConfigError(f"`prm_protocol` {self.prm_protocol!r} is unknown; use one of {', '.join(PROTOCOLS)}, "
                              "or `verifier` module:function for a programmatic checker")


SEARCH = CommandConfig(PromptOptions, SearchConfig, SearchOptions, ModelConfig, FormatConfig, BudgetConfig, SamplingConfig,
                     defaults={"temperature": 0.8}, skip={BudgetConfig: ("answer_without_budget",)},
                     titles={PromptOptions: "prompts", SearchConfig: "search", SearchOptions: "scorer and output", ModelConfig: "model",
                             FormatConfig: "thinking format", BudgetConfig: "budget forcing", SamplingConfig: "sampling"})


def add_search(sub) -> None:
    """Register ``search`` on the ``ttscale`` subcommands."""
    p = sub.add_parser(
        "search", help="search with a process reward model: best-of-n, majority, weighted, beam, dvts",
        description="Test-time search over a prefix-sharing KV cache (REFERENCE §3). Without --prm or --verifier the "
                    "policy model itself scores steps under the rlhflow protocol (a stand-in sharing its weights; no "
                    "PRM weights ship offline). The system prompt defaults to search-and-learn's step-by-step prompt.")
    SEARCH.add_to(p)
    p.set_defaults(func="engine.cli.search:run")


# ─── eval ─────────────────────────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class EvalOptions:
    """Where ``eval`` writes and whether it shows progress (neither changes the rows)."""

    out: str | None = field(default=None, metadata={"help": "output directory (created; an existing one is resumed)", "metavar": "DIR"})
    progress: bool = field(default=True, metadata={"help": "no progress bar", "flag": "--no-progress", "negate": True})

    def __post_init__(self):
        if not self.out:
            raise ConfigError("`out` is missing; give the directory to write samples.jsonl and the report into")


# The policy model and its format are EvalConfig fields (they decide the rows); ModelConfig adds how it is placed.
EVAL = CommandConfig(EvalConfig, ModelConfig, EvalOptions, skip={ModelConfig: ("model", "dtype", "quantization")},
                     titles={EvalConfig: "evaluation (benchmarks.eval.config.EvalConfig)", ModelConfig: "model placement",
                             EvalOptions: "output"})


def add_eval(sub) -> None:
    """Register ``eval`` (and ``eval report``) on the ``ttscale`` subcommands."""
    p = sub.add_parser(
        "eval", help="evaluate test-time scaling methods on a benchmark (accuracy vs thinking tokens and vs N)",
        description="Run methods swept over their compute knob on a benchmark; write samples.jsonl, metrics.json, "
                    "scaling.png and summary.md into --out. A killed run started again with the same --out resumes "
                    "where it stopped. Sharded over processes by `accelerate launch` (on CPU: "
                    "`accelerate launch --multi_gpu --num_processes 2 -m engine.cli eval ...`, or torchrun).",
        epilog=f"methods: {', '.join(METHODS)}. Defaults: --budgets {' '.join(map(str, DEFAULT_BUDGETS))}, "
               f"--n {' '.join(map(str, DEFAULT_N))}. Redraw a report: ttscale eval report DIR")
    EVAL.add_to(p)
    p.set_defaults(func="engine.cli.eval:run", eval_command=None)
    rsub = p.add_subparsers(dest="eval_command", metavar="report DIR")
    r = rsub.add_parser("report", help="redraw metrics.json, scaling.png and summary.md from DIR/samples.jsonl",
                        description="Redraw a run's report from its rows; with --regrade, grade every row again with the "
                                    "current grader first and list what changed (DIR/regrade.json).")
    r.add_argument("dir", metavar="DIR", help="the --out directory of a ttscale eval run")
    r.add_argument("--regrade", action="store_true", help="grade the stored generations again with the current grader "
                                                          "(parallel rows re-vote over their stored samples), then redraw")
    r.set_defaults(func="engine.cli.eval:run_report")


# ─── trace ────────────────────────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class TraceShowOptions:
    """What ``trace show`` renders."""

    file: str = field(default="", metadata={"help": "trace JSONL written by --trace", "positional": True, "nargs": None, "metavar": "FILE"})
    prompt_index: int | None = field(default=None, metadata={"help": "show only this prompt of the trace"})
    top: bool = field(default=False, metadata={"help": "show each token's probability and top alternatives"})
    no_color: bool = field(default=False, metadata={"help": "plain text even on a terminal"})

    def __post_init__(self):
        if self.prompt_index is not None and self.prompt_index < 0:
            raise ConfigError(f"`prompt_index` must be >= 0, got {self.prompt_index}")


TRACE = CommandConfig(TraceShowOptions, titles={TraceShowOptions: "display"})


def add_trace(sub) -> None:
    """Register ``trace`` (and ``trace show``) on the ``ttscale`` subcommands."""
    t = sub.add_parser("trace", help="inspect a token-level trace")
    tsub = t.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    ts = tsub.add_parser("show", help="render a trace with forced tokens and suppressed endings marked")
    TRACE.add_to(ts)
    ts.set_defaults(func="engine.cli.trace:run")


# ─── view ─────────────────────────────────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class ViewOptions:
    """What ``view`` reads and where it writes the page."""

    path: str = field(default="", metadata={"help": "a trace .jsonl (--trace), a search tree .json (--tree), or an eval / curation "
                                                    "output directory", "positional": True, "nargs": None, "metavar": "FILE_OR_DIR"})
    out: str | None = field(default=None, metadata={"help": "the HTML file to write (default: FILE_OR_DIR with .html, or "
                                                            "DIR/view.html for a directory)", "metavar": "PAGE.html"})

    def __post_init__(self):
        if self.out is not None and not self.out.endswith((".html", ".htm")):
            raise ConfigError(f"`out` {self.out!r} must end in .html: the page is one self-contained HTML file")

    def page_path(self) -> str:
        """Where the page goes: ``out``, else beside the input (``trace.jsonl`` -> ``trace.html``, ``DIR/view.html``)."""
        if self.out:
            return self.out
        if os.path.isdir(self.path):
            return os.path.join(self.path, "view.html")
        return os.path.splitext(self.path)[0] + ".html"


VIEW = CommandConfig(ViewOptions, titles={ViewOptions: "view"})


def add_view(sub) -> None:
    """Register ``view`` on the ``ttscale`` subcommands."""
    v = sub.add_parser("view", help="turn a trace, a search tree or an eval / curation run into one self-contained HTML page",
                       description="Write one HTML page (no network needed to open it) showing a token-level trace, a search "
                                   "tree, an eval run's scaling curves and samples, or a curation report.")
    VIEW.add_to(v)
    v.set_defaults(func="engine.cli.view:run")


# ─── bench ────────────────────────────────────────────────────────────────────────────────────────────────────────────

def add_bench(sub) -> None:
    """Register ``bench`` and one subcommand per benchmark of :data:`benchmarks.options.BENCHMARKS`."""
    p = sub.add_parser("bench", help="run a benchmark (ends with one JSON line)")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, b in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=b.help, description=b.help)
        b.spec.add_to(bp)
        bp.set_defaults(func=b.run)


# ─── curate ────────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CurateOptions:
    """Where ``curate`` works and the settings most runs change; every other setting is a section of ``--config``."""

    out: str | None = field(default=None, metadata={"help": "run directory (created; an existing one is resumed)", "metavar": "DIR"})
    sources: tuple[str, ...] = field(default=(), metadata={
        "help": "pool source, added to the config's: NAME [fields=...] [limit=N] [seed=S] (hub id, .jsonl/.parquet, synthetic[:task])",
        "flag": "--source", "action": "append"})
    eval_sets: tuple[str, ...] = field(default=(), metadata={
        "help": "evaluation set to decontaminate against, replacing the config's (math500, aime24, aime25, gpqa-diamond, FILE.jsonl[:FIELD])",
        "flag": "--eval-set", "action": "append"})
    k: int | None = field(default=None, metadata={"help": "questions to select (default: the config's select.k, 1000 as s1K)"})
    progress: bool = field(default=True, metadata={"help": "no progress bars", "flag": "--no-progress", "negate": True})

    def __post_init__(self):
        if not self.out:
            raise ConfigError("`out` is missing; give the run directory (stages, caches and the dataset are written there)")
        if self.k is not None and (not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1):
            raise ConfigError(f"`k` must be an integer >= 1, got {self.k!r}")


CURATE = CommandConfig(CurateOptions, titles={CurateOptions: "run"}, sections=STAGES)


def add_curate(sub) -> None:
    """Register ``curate`` (the whole pipeline) and ``curate STAGE`` (one stage) on the ``ttscale`` subcommands."""
    p = sub.add_parser(
        "curate", help="build an s1K-style dataset: pool, decontaminate, traces, quality, difficulty, diversity, select",
        description="Run the s1K curation pipeline into --out (each stage's kept and dropped questions, caches, then the "
                    "dataset in s1K's columns, report and manifest). --config FILE.yaml holds a section per stage "
                    f"({', '.join(STAGES)}) with that stage's settings. A killed run started again resumes.",
        epilog="one stage alone: ttscale curate STAGE --out DIR --config FILE.yaml (it reads the previous stage's output in DIR)")
    CURATE.add_to(p)
    p.set_defaults(func="engine.cli.curate:run", curate_stage=None)
    ssub = p.add_subparsers(dest="curate_stage", metavar="STAGE")
    for stage in STAGES:
        sp = ssub.add_parser(stage, help=f"run only the {stage} stage", description=f"Run only the {stage} stage of the pipeline.")
        CURATE.add_to(sp)
        sp.set_defaults(func="engine.cli.curate:run")


# ─── train ─────────────────────────────────────────────────────────────────────────────────────────────────────

TRAIN_SFT = CommandConfig(SFTOptions, titles={SFTOptions: "supervised fine-tuning (s1's defaults)"})


def add_train(sub) -> None:
    """Register ``train`` (and ``train sft``) on the ``ttscale`` subcommands."""
    t = sub.add_parser("train", help="fine-tune a model: s1-style SFT on TRL")
    tsub = t.add_subparsers(dest="train_command", metavar="ACTION", required=True)
    sp = tsub.add_parser("sft", help="supervised fine-tuning with a loss on the assistant turn only (TRL's SFTTrainer)",
                         description="Fine-tune on reasoning traces in the thinking format inference uses, with s1's "
                                     "hyper-parameters as defaults; long examples are refused unless --truncate.")
    TRAIN_SFT.add_to(sp)
    sp.set_defaults(func="engine.cli.train:run_sft")


# ─── recipe ────────────────────────────────────────────────────────────────────────────────────────────────────

RECIPE_S1_MINI = CommandConfig(S1MiniOptions, titles={S1MiniOptions: "s1-mini (curate, SFT, evaluate base and SFT)"})


def add_recipe(sub) -> None:
    """Register ``recipe`` (and ``recipe s1-mini``) on the ``ttscale`` subcommands."""
    r = sub.add_parser("recipe", help="a whole recipe in one command: " + ", ".join(RECIPES))
    rsub = r.add_subparsers(dest="recipe_command", metavar="RECIPE", required=True)
    sp = rsub.add_parser("s1-mini", help="s1 in miniature on a CPU: curate synthetic traces, SFT, budget-forced eval of base and SFT",
                         description="Curate synthetic arithmetic questions with step-by-step teacher traces (slips fixed "
                                     "after 'Wait'), fine-tune the model on them, then evaluate the base and the fine-tuned "
                                     "model with budget forcing over thinking budgets and num_ignore on held-out problems; "
                                     "writes s1's Control / Scaling / Performance, a figure and a table into --out. "
                                     "A killed run started again resumes.")
    RECIPE_S1_MINI.add_to(sp)
    sp.set_defaults(func="engine.cli.recipe:run_s1_mini_command")


# ─── serve ────────────────────────────────────────────────────────────────────────────────────────────────────

SERVE = CommandConfig(ServeOptions, ModelConfig, FormatConfig, SamplingConfig,
                      titles={ServeOptions: "server", ModelConfig: "model", FormatConfig: "thinking format",
                              SamplingConfig: "defaults for requests that leave sampling out"})


def add_serve(sub) -> None:
    """Register ``serve`` on the ``ttscale`` subcommands."""
    p = sub.add_parser(
        "serve", help="an OpenAI-compatible server with thinking budgets, continuous batching and streaming",
        description="Serve /v1/chat/completions, /v1/completions, /v1/models, /health and /metrics. Every request "
                    "carries its own budget (min_thinking_tokens, max_thinking_tokens or vLLM's thinking_token_budget, "
                    "num_ignore, ignore_str, final_answer_str, max_answer_tokens) and may ask for a search; requests "
                    "that arrive together decode together. Binds to 127.0.0.1 unless --host says otherwise.")
    SERVE.add_to(p)
    p.set_defaults(func="engine.cli.serve:run")


# The commands, in the order ``ttscale --help`` lists them.
COMMANDS = (add_generate, add_search, add_eval, add_trace, add_view, add_curate, add_train, add_recipe, add_serve, add_bench)
