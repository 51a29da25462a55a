"""What an s1-style SFT run does: :class:`SFTOptions` (every future ``ttscale train`` flag) with s1's hyper-parameters.

    options = SFTOptions(model="Qwen/Qwen2.5-32B-Instruct", data="simplescaling/s1K", output_dir="ckpt/s1")
    options.accumulation(processes=16)   -> 1   (global batch 16 = per-device batch 1 x 16 processes)

REFERENCE §1 "SFT": lr 1e-5, 5 epochs, global batch 16, 5% warm-up then cosine to 0, AdamW β=(0.9, 0.95), weight
decay 1e-4, bf16, block size 32768, no packing, gradient checkpointing. Pure planning: no model, no files.

Fields in :data:`RUN_ONLY` (where it is written, checkpoint cadence, resuming, the progress bar) do not change what
is learned; every other field does, and :meth:`SFTOptions.first_difference` names the first one that differs from
a recorded run, so a resume with other settings is refused (``train/sft.py`` records a run in ``train_options.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from engine.errors import ConfigError
from engine.formats import FORMATS

S1_MAX_LENGTH = 32768  # s1's block size (s1.1 used 20000); TRL's own default of 1024 would cut most of s1K
# Fields that do not change what is learned: not compared when a run is resumed.
RUN_ONLY = ("output_dir", "save_steps", "save_total_limit", "resume", "progress")


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass(frozen=True)
class SFTOptions:
    """Everything that decides an SFT run; each field is one ``ttscale train`` flag (STYLE §9).

    Refuses (one sentence each, naming the field) a missing model, data source or output directory, an unknown
    thinking format, a non-positive learning rate, epoch count, batch, global batch, ``max_length`` or save interval,
    a warm-up ratio outside [0, 1), betas outside [0, 1), a negative weight decay or checkpoint limit, a global batch
    that the per-device batch does not divide, a non-positive LoRA rank or alpha, a LoRA dropout outside [0, 1) and
    empty LoRA target modules.
    """

    model: str = field(default="", metadata=_help("model to fine-tune: embedded name, local dir, .gguf file or hub id (as --model everywhere)"))
    data: str = field(default="", metadata=_help("training data: a curation output directory (OUT or OUT/dataset), a hub dataset (simplescaling/s1K, simplescaling/s1K-1.1, GAIR/LIMO) or a .jsonl file"))
    output_dir: str = field(default="", metadata=_help("where the fine-tuned model (safetensors + tokenizer) and train_log.jsonl are written"))
    format: str = field(default="s1", metadata=_help("thinking format of the assistant turn, shared with inference: " + ", ".join(FORMATS), choices=list(FORMATS)))
    answer_prefix: str = field(default="Answer: ", metadata=_help("text between the answer separator and the attempt (s1: 'Answer: ')"))
    fields: str | None = field(default=None, metadata=_help("column mapping, e.g. question=problem,thinking=trace,answer=attempt (default: detected from the columns)"))
    split: str = field(default="train", metadata=_help("split of a hub dataset"))
    learning_rate: float = field(default=1e-5, metadata=_help("peak learning rate (s1: 1e-5)"))
    epochs: float = field(default=5.0, metadata=_help("training epochs (s1: 5)"))
    max_steps: int = field(default=-1, metadata=_help("stop after this many optimizer steps (-1: run all epochs)"))
    global_batch: int = field(default=16, metadata=_help("examples per optimizer step over all processes, reached by gradient accumulation (s1: 16)"))
    batch_size: int = field(default=1, metadata=_help("examples per device per forward pass (s1: 1)"))
    warmup_ratio: float = field(default=0.05, metadata=_help("fraction of the steps spent warming up linearly; cosine decay to 0 after (s1: 0.05)"))
    adam_beta1: float = field(default=0.9, metadata=_help("AdamW beta1 (s1: 0.9)"))
    adam_beta2: float = field(default=0.95, metadata=_help("AdamW beta2 (s1: 0.95)"))
    weight_decay: float = field(default=1e-4, metadata=_help("AdamW weight decay (s1: 1e-4)"))
    dtype: str = field(default="auto", metadata=_help("auto (bf16 on GPU, fp32 on CPU), bfloat16 or float32", choices=["auto", "bfloat16", "float32"]))
    gradient_checkpointing: bool = field(default=True, metadata=_help(
        "keep every activation instead of recomputing them in the backward pass (faster, more memory; s1: recompute)",
        flag="--no-gradient-checkpointing", negate=True))
    max_length: int = field(default=S1_MAX_LENGTH, metadata=_help(f"longest tokenised example (s1: {S1_MAX_LENGTH}); longer ones are refused unless --truncate"))
    truncate: bool = field(default=False, metadata=_help("cut examples longer than --max-length instead of refusing them (s1 found truncation at 4096 cost 20 points on AIME24)"))
    seed: int = field(default=42, metadata=_help("seed of the data order and any initialisation"))
    save_steps: int | None = field(default=None, metadata=_help(
        "also save a checkpoint (OUTPUT/checkpoint-N: weights, optimizer, scheduler, RNG states) every N optimizer steps, "
        "for --resume (default: only the final model)"))
    save_total_limit: int = field(default=2, metadata=_help("checkpoints to keep, the oldest deleted first (0: keep every one)"))
    resume: bool = field(default=False, metadata=_help(
        "continue the run in --output-dir from its last checkpoint, with the same data order; refused when it holds no "
        "checkpoint or was started with other training options"))
    progress: bool = field(default=True, metadata=_help(
        "no progress bar (default: the Trainer's tqdm bar on stderr)", flag="--no-progress", negate=True))
    lora: bool = field(default=False, metadata=_help(
        "train LoRA adapters through peft instead of the full model; OUTPUT gets the merged model, OUTPUT/adapter the "
        "adapter. LoRA usually needs a higher --learning-rate than s1's full-model 1e-5 (often 1e-4 to 2e-4), which "
        "is not changed for you"))
    lora_rank: int = field(default=16, metadata=_help("LoRA rank r (with --lora)"))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha; the update is scaled by alpha / rank (with --lora)"))
    lora_dropout: float = field(default=0.05, metadata=_help("dropout on the LoRA input (with --lora)"))
    lora_target_modules: str = field(default="all-linear", metadata=_help(
        "modules that get adapters: all-linear (every linear layer but the output head) or comma-separated names, "
        "e.g. q_proj,v_proj (with --lora)"))

    def __post_init__(self):
        for name in ("model", "data", "output_dir"):
            if not str(getattr(self, name) or "").strip():
                raise ConfigError(f"`{name}` is missing; give a value")
        if self.format not in FORMATS:
            raise ConfigError(f"`format` {self.format!r} is unknown; use one of {', '.join(FORMATS)}")
        if self.dtype not in ("auto", "bfloat16", "float32"):
            raise ConfigError(f"`dtype` {self.dtype!r} is unknown; use auto, bfloat16 or float32")
        for name in ("learning_rate", "epochs"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"`{name}` must be positive; got {getattr(self, name)}")
        for name in ("global_batch", "batch_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"`{name}` must be a positive integer; got {value!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"`max_steps` must be positive or -1 (all epochs); got {self.max_steps}")
        if self.save_steps is not None and self.save_steps <= 0:
            raise ConfigError(f"`save_steps` must be positive; got {self.save_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"`warmup_ratio` must be in [0, 1); got {self.warmup_ratio}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"`{name}` must be in [0, 1); got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ConfigError(f"`weight_decay` must not be negative; got {self.weight_decay}")
        if self.global_batch % self.batch_size:
            raise ConfigError(f"`global_batch` {self.global_batch} is not a multiple of `batch_size` {self.batch_size}; choose sizes that divide")
        if not isinstance(self.save_total_limit, int) or isinstance(self.save_total_limit, bool) or self.save_total_limit < 0:
            raise ConfigError(f"`save_total_limit` must be a non-negative integer (0: keep every checkpoint); got {self.save_total_limit!r}")
        if not isinstance(self.lora_rank, int) or isinstance(self.lora_rank, bool) or self.lora_rank <= 0:
            raise ConfigError(f"`lora_rank` must be a positive integer; got {self.lora_rank!r}")
        if not isinstance(self.lora_alpha, int) or isinstance(self.lora_alpha, bool) or self.lora_alpha <= 0:
            raise ConfigError(f"`lora_alpha` must be a positive integer; got {self.lora_alpha!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"`lora_dropout` must be in [0, 1); got {self.lora_dropout}")
        if not self.lora_targets():
            raise ConfigError(f"`lora_target_modules` {self.lora_target_modules!r} names no module; give all-linear or names such as q_proj,v_proj")

    def accumulation(self, processes: int = 1) -> int:
        """Gradient-accumulation steps that make ``global_batch`` from ``batch_size`` on ``processes`` processes.

        Refuses (``ConfigError`` on ``global_batch``) a global batch that batch × processes does not divide.
        """
        per_step = self.batch_size * max(1, int(processes))
        if self.global_batch % per_step:
            raise ConfigError(f"`global_batch` {self.global_batch} is not a multiple of `batch_size` × processes = {per_step}; "
                              "choose a global batch that divides")
        return self.global_batch // per_step

    def lora_targets(self) -> str | list[str]:
        """``peft.LoraConfig.target_modules`` of ``lora_target_modules``: ``"all-linear"`` as is, else the list of names."""
        text = str(self.lora_target_modules or "").strip()
        return text if text == "all-linear" else [name.strip() for name in text.split(",") if name.strip()]

    def first_difference(self, recorded: dict) -> str | None:
        """The first field outside :data:`RUN_ONLY` whose value differs from ``recorded`` (a run's options as JSON,
        ``dataclasses.asdict`` after a JSON round trip), or None when every training option matches. A field the
        record lacks (written before the field existed) counts as its default; the ``lora_*`` settings count only
        when either run trains LoRA."""
        lora = self.lora or recorded.get("lora", False)
        for f in fields(self):
            if f.name in RUN_ONLY or (f.name.startswith("lora_") and not lora):
                continue
            before = recorded.get(f.name, f.default)
            if before != getattr(self, f.name):
                return f.name
        return None
