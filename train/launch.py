"""How a training run was launched: what ``accelerate launch`` asked for, checked against the machine before any model loads.

    accelerate launch --config_file train/accelerate/ddp.yaml -m engine.cli train sft --model M --data D --output-dir OUT
    read_launch()                  -> Launch(processes=2, local_processes=2, distributed="ddp", mixed_precision="no", ...)
    check_launch(options, cuda=False)   # refuses, in one sentence, what this machine cannot run

The distribution settings live in the accelerate YAMLs of ``train/accelerate/`` (``single.yaml``, ``ddp.yaml``,
``fsdp.yaml``); ``accelerate launch`` turns them into environment variables (``ACCELERATE_USE_FSDP``,
``FSDP_VERSION``, ``ACCELERATE_MIXED_PRECISION``, ``WORLD_SIZE``, ...) that the Trainer's ``Accelerator`` reads.
:func:`read_launch` reads the same variables (pure: no torch, no accelerate import); :func:`check_launch` refuses
the combinations that would fail late or, worse, run as something else:

- FSDP without CUDA. accelerate 1.15 turns ``ACCELERATE_USE_FSDP`` into FSDP only for GPU-like process groups
  (``AcceleratorState.__init__`` in ``accelerate/state.py`` checks ``distributed_type in [MULTI_GPU, ...]``); on a
  CPU machine the Trainer's state is ``MULTI_CPU`` and the model is silently wrapped in ``DistributedDataParallel``
  over gloo instead (torch's own ``fully_shard`` does run on CPU over gloo; accelerate never calls it there).
- FSDP's own activation checkpointing together with the trainer's gradient checkpointing (transformers refuses the
  pair only after the model has loaded).
- DeepSpeed asked for without the ``deepspeed`` package.
- Mixed precision from the launcher that ``train sft`` would not honour: bf16 without a GPU or against
  ``dtype`` float32, and fp16 or fp8 at all (``train sft`` trains in bf16 on GPU or fp32).
- One process on a machine with several GPUs (the Trainer would use ``nn.DataParallel`` and multiply the global
  batch by the GPU count), and more processes on this machine than it has GPUs.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Mapping

from engine.errors import TTScaleError
from train.config import SFTOptions

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accelerate")
CONFIGS = ("single", "ddp", "fsdp")  # train/accelerate/<name>.yaml


def config_path(name: str) -> str:
    """The path of a shipped accelerate config (``single``, ``ddp`` or ``fsdp``); refuses any other name."""
    if name not in CONFIGS:
        raise TTScaleError(f"accelerate config {name!r} is not shipped; use one of {', '.join(CONFIGS)}")
    return os.path.join(CONFIG_DIR, f"{name}.yaml")


def _flag(env: Mapping[str, str], name: str) -> bool:
    return str(env.get(name, "false")).strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Launch:
    """What the launcher asked for: process counts, the distribution (``none``, ``ddp``, ``fsdp``, ``deepspeed``),
    the launcher's mixed precision and, for FSDP, its version, state-dict type and activation checkpointing."""

    processes: int = 1
    local_processes: int = 1
    distributed: str = "none"
    mixed_precision: str = "no"
    fsdp_version: int | None = None
    fsdp_state_dict_type: str | None = None
    fsdp_activation_checkpointing: bool = False


def read_launch(env: Mapping[str, str] | None = None) -> Launch:
    """The :class:`Launch` that ``env`` (default ``os.environ``) describes, read the way accelerate reads it.

    Refuses nothing: an absent variable is its accelerate default (one process, no distribution, no mixed precision).
    """
    env = os.environ if env is None else env
    processes = max(1, int(env.get("WORLD_SIZE", "1") or 1))
    local = max(1, int(env.get("LOCAL_WORLD_SIZE", processes) or processes))
    fsdp = _flag(env, "ACCELERATE_USE_FSDP")
    if fsdp:
        distributed = "fsdp"
    elif _flag(env, "ACCELERATE_USE_DEEPSPEED"):
        distributed = "deepspeed"
    else:
        distributed = "ddp" if processes > 1 else "none"
    return Launch(
        processes=processes,
        local_processes=local,
        distributed=distributed,
        mixed_precision=str(env.get("ACCELERATE_MIXED_PRECISION", "no") or "no").lower(),
        fsdp_version=int(env.get("FSDP_VERSION", "1")) if fsdp else None,
        fsdp_state_dict_type=env.get("FSDP_STATE_DICT_TYPE") if fsdp else None,
        fsdp_activation_checkpointing=fsdp and _flag(env, "FSDP_ACTIVATION_CHECKPOINTING"),
    )


def _cuda_devices() -> int:
    import torch  # deferred: keeps `import train.launch` torch-free for the CLI's --help

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_launch(options: SFTOptions, env: Mapping[str, str] | None = None, cuda_devices: int | None = None) -> Launch:
    """The :class:`Launch` of ``env`` (default ``os.environ``) once it is known to run ``options`` on this machine.

    ``cuda_devices`` is the number of CUDA GPUs (default: asked of torch). Refuses, in one sentence each: FSDP
    without CUDA (accelerate would silently run DDP), LoRA under FSDP, FSDP's ``fsdp_activation_checkpointing`` together with
    ``gradient_checkpointing``, DeepSpeed without the ``deepspeed`` package, launcher mixed precision fp16/fp8, or
    bf16 without CUDA or against ``dtype`` float32, one undistributed process seeing several CUDA GPUs, and more
    processes on this machine than CUDA GPUs.
    """
    launch = read_launch(env)
    gpus = _cuda_devices() if cuda_devices is None else cuda_devices
    if launch.distributed == "fsdp" and not gpus:
        raise TTScaleError("accelerate launch asked for FSDP, which accelerate runs only on CUDA GPUs (on this machine it "
                           "would silently train plain DDP instead); use --config_file train/accelerate/ddp.yaml here, "
                           "or fsdp.yaml on a machine with GPUs")
    if launch.distributed == "fsdp" and options.lora:
        raise TTScaleError("--lora under FSDP is not supported (merging sharded adapters into the model is untested); "
                           "launch LoRA with --config_file train/accelerate/ddp.yaml, or drop --lora")
    if launch.fsdp_activation_checkpointing and options.gradient_checkpointing:
        raise TTScaleError("FSDP's fsdp_activation_checkpointing and gradient checkpointing (on by default) cannot both be "
                           "on; pass --no-gradient-checkpointing or set fsdp_activation_checkpointing: false")
    if launch.distributed == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise TTScaleError("accelerate launch asked for DeepSpeed, which is not installed; pip install deepspeed or "
                           "launch with --config_file train/accelerate/ddp.yaml or fsdp.yaml")
    precision = launch.mixed_precision
    if precision not in ("no", "bf16"):
        raise TTScaleError(f"accelerate launch asked for {precision} mixed precision, which train sft does not use "
                           "(bf16 on GPU, fp32 on CPU, chosen by --dtype); launch with --mixed_precision no")
    if precision == "bf16" and not gpus:
        raise TTScaleError("accelerate launch asked for bf16 mixed precision, which needs a GPU; launch with "
                           "--mixed_precision no (the shipped configs do) to train in fp32 on CPU")
    if precision == "bf16" and options.dtype == "float32":
        raise TTScaleError("accelerate launch asked for bf16 mixed precision but --dtype is float32; drop one of the two "
                           "(--mixed_precision no, or --dtype auto)")
    if launch.distributed == "none" and gpus > 1:
        raise TTScaleError(f"train sft in one process sees {gpus} CUDA GPUs, which the Trainer would drive through "
                           f"nn.DataParallel with a global batch {gpus} times --global-batch; launch with --config_file "
                           "train/accelerate/ddp.yaml (one process per GPU) or single.yaml (GPU 0), or set CUDA_VISIBLE_DEVICES")
    if gpus and launch.local_processes > gpus:
        raise TTScaleError(f"accelerate launch started {launch.local_processes} processes on a machine with {gpus} "
                           f"CUDA GPU(s); pass --num_processes {gpus} (or fewer)")
    return launch
