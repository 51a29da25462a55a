"""What ``ttscale recipe s1-mini`` does: :class:`S1MiniOptions`, the whole s1 recipe in miniature, sized for a 2-core CPU.

    options = S1MiniOptions(out="runs/s1-mini")
    options.pool_sources()   -> ["synthetic:arith:2 limit=200 seed=1", "synthetic:arith:3 ...", "synthetic:arith:4 ..."]
    options.eval_settings()  -> budgets 16 32 64 128 and num_ignore 0 1 2 on 100 held-out arith:3 problems

The recipe (``train/recipe.py``): curate synthetic arithmetic questions whose traces the programmatic teacher
(``curation/teacher.py``) writes step by step, with planted slips fixed after "Wait"; fine-tune the model on them with
``train_sft``; evaluate the base and the fine-tuned model with budget forcing over the thinking budgets and over
``num_ignore`` (forced "Wait"s) on held-out problems; report s1's Control / Scaling / Performance for both and draw
accuracy against thinking tokens. Where it departs from s1's numbers (a learning rate for a 135M model, answers
without restated work), the field's help says why. Pure planning: no model, no files; torch-free (the CLI's flags).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from benchmarks.data.synthetic import MAX_DIFFICULTY, parse_name
from benchmarks.eval.config import check_sweep
from curation.select import METHODS as SELECT_METHODS
from engine.errors import ConfigError, TTScaleError
from engine.formats import FORMATS


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


RECIPES = ("s1-mini",)
# Fields that change no result (where the run lives, how it shows progress): a resumed run may differ in them.
NOT_RESULTS = ("out", "progress")


@dataclass(frozen=True)
class S1MiniOptions:
    """Every setting of the s1-mini recipe; each field is one ``ttscale recipe s1-mini`` flag (STYLE §9).

    Refuses (one sentence each, naming the field) a missing output directory, an unknown format, tasks that are not
    synthetic arithmetic, non-positive sizes, budgets or caps, an empty or repeated sweep, a negative ``num_ignore``,
    a slip rate outside [0, 1] and a global batch the batch does not divide (through :class:`~train.config.SFTOptions`
    when the run builds it).
    """

    out: str = field(default="", metadata=_help("run directory: curation, fine-tuned model, both evaluations and the report (an existing run is resumed)", metavar="DIR"))
    model: str = field(default="smollm2-135m", metadata=_help("the base model: embedded name, local dir, .gguf file or hub id"))
    format: str = field(default="s1", metadata=_help("thinking format of training and evaluation (s1's delimiters by default)", choices=list(FORMATS)))
    train_tasks: tuple[str, ...] = field(default=("synthetic:arith:2", "synthetic:arith:3", "synthetic:arith:4"), metadata=_help(
        "synthetic tasks of the question pool (synthetic:arith:K, K operations)", flag="--train-task", action="append"))
    pool_per_task: int = field(default=200, metadata=_help("questions generated per training task"))
    pool_seed: int = field(default=1, metadata=_help("seed of the training questions (the held-out problems use --eval-seed)"))
    slip_rate: float = field(default=0.25, metadata=_help("chance that a teacher step states a wrong value first, then 'Wait' and the fix"))
    check_rate: float = field(default=0.5, metadata=_help(
        "chance that a teacher trace ends with 'Wait, let me check: ...' (confirming, or catching a slip of the last step): "
        "without it 'Wait' only ever follows a wrong value, and a forced 'Wait' makes the model change a right answer"))
    k: int = field(default=300, metadata=_help("training questions to select (s1K: 1000)"))
    select: str = field(default="random", metadata=_help(
        "selection: random, or diverse / longest (s1's length-weighted rules; here they pick the slip-heaviest traces)",
        choices=list(SELECT_METHODS)))
    learning_rate: float = field(default=1e-4, metadata=_help("peak learning rate (s1: 1e-5 for a 32B model on 1,000 long traces; a 135M model on a few hundred short ones needs more)"))
    epochs: float = field(default=3.0, metadata=_help("training epochs (s1: 5)"))
    global_batch: int = field(default=16, metadata=_help("examples per optimizer step (s1: 16)"))
    batch_size: int = field(default=8, metadata=_help("examples per forward pass (s1: 1; short traces fit 8)"))
    lora: bool = field(default=False, metadata=_help("train LoRA adapters instead of the whole model"))
    eval_set: str = field(default="synthetic:arith:3", metadata=_help("held-out problems (a synthetic arith task; every training question is decontaminated against them)"))
    eval_problems: int = field(default=100, metadata=_help("held-out problems evaluated"))
    eval_seed: int = field(default=0, metadata=_help("seed of the held-out problems"))
    budgets: tuple[int, ...] = field(default=(16, 32, 64, 128), metadata=_help("thinking budgets of the budget-forcing sweep (at least four for s1's Scaling)"))
    num_ignore: tuple[int, ...] = field(default=(0, 1, 2), metadata=_help("numbers of suppressed ends of thinking ('Wait') to sweep"))
    ignore_cap: int = field(default=256, metadata=_help("thinking cap of the --num-ignore settings: room for the re-check a forced 'Wait' starts (at 128 it cut the check mid-line and the forced answer took the last value written)"))
    max_answer_tokens: int = field(default=12, metadata=_help("answer cap of every evaluation generation"))
    batch: int = field(default=16, metadata=_help("problems per generate call in the evaluations and the difficulty filter"))
    seed: int = field(default=0, metadata=_help("seed of the slips, the selection and the training order"))
    progress: bool = field(default=True, metadata=_help("no progress bars", flag="--no-progress", negate=True))

    def __post_init__(self):
        for name in ("train_tasks", "budgets", "num_ignore"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple([value] if isinstance(value, (str, int)) else value))
        if not str(self.out or "").strip():
            raise ConfigError("`out` is missing; give the run directory")
        if self.format not in FORMATS:
            raise ConfigError(f"`format` {self.format!r} is unknown; use one of {', '.join(FORMATS)}")
        if not self.train_tasks:
            raise ConfigError("`train_tasks` is empty; give at least one synthetic:arith:K task")
        for spec in (*self.train_tasks, self.eval_set):
            name = "eval_set" if spec == self.eval_set else "train_tasks"
            try:
                task, _ = parse_name(spec)
            except TTScaleError:
                task = None
            if task != "arith":
                raise ConfigError(f"`{name}` {spec!r} is not a synthetic arithmetic task; write synthetic:arith:K "
                                  f"(K operations, 1 to {MAX_DIFFICULTY['arith']})")
        for name in ("pool_per_task", "k", "global_batch", "batch_size", "eval_problems", "ignore_cap",
                     "max_answer_tokens", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"`{name}` must be a positive integer; got {value!r}")
        check_sweep("budgets", self.budgets, 1)
        check_sweep("num_ignore", self.num_ignore, 0)
        for name in ("slip_rate", "check_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"`{name}` must be in [0, 1]; got {getattr(self, name)}")
        for name in ("learning_rate", "epochs"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"`{name}` must be positive; got {getattr(self, name)}")
        if self.global_batch % self.batch_size:
            raise ConfigError(f"`global_batch` {self.global_batch} is not a multiple of `batch_size` {self.batch_size}; choose sizes that divide")
        if self.select not in SELECT_METHODS:
            raise ConfigError(f"`select` {self.select!r} is unknown; use {', '.join(SELECT_METHODS)}")

    def pool_sources(self) -> list[str]:
        """The curation pool's source specs, one per training task."""
        return [f"{task} limit={self.pool_per_task} seed={self.pool_seed}" for task in self.train_tasks]

    def results_settings(self) -> dict:
        """The settings that decide the run's results (all but where it lives and how it shows progress)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k not in NOT_RESULTS}
