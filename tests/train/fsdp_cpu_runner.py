"""Test helper, never shipped: ``ttscale ARGS`` with accelerate's GPU-only FSDP gate lifted, to run fsdp.yaml on CPU.

    accelerate launch --config_file train/accelerate/fsdp.yaml tests/train/fsdp_cpu_runner.py train sft ...

accelerate 1.15 turns ``ACCELERATE_USE_FSDP`` into ``DistributedType.FSDP`` only for GPU-like process groups; on CPU
the state stays ``MULTI_CPU`` and the Trainer wraps the model in DDP. torch's ``fully_shard`` itself runs on CPU over
gloo, so this runner sets the state to FSDP after accelerate built it (keeping the plugin across the singleton's
re-initialisations) and lets ``train.launch.check_launch`` see the processes as GPUs. Everything else — the YAML,
accelerate's FSDP2 preparation, the Trainer, ``train sft`` — is the real code. Each process prints the class of the
model the Trainer trained (``FSDPLlamaForCausalLM`` when sharded) when it saves.
"""

import os
import sys

import accelerate.state
import transformers
from accelerate.utils import DistributedType

import train.sft
from engine.cli.main import main
from train.launch import check_launch, read_launch

_state_init = accelerate.state.AcceleratorState.__init__
_save_model = transformers.Trainer.save_model


def _fsdp_state_init(self, *args, **kwargs):
    _state_init(self, *args, **kwargs)
    if os.environ.get("ACCELERATE_USE_FSDP") == "true" and self.distributed_type in (DistributedType.MULTI_CPU, DistributedType.FSDP):
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = kwargs.get("fsdp_plugin") or getattr(self, "fsdp_plugin", None)


def _save_model_saying_what(self, *args, **kwargs):
    print(f"fsdp_cpu_runner: saving {type(self.model_wrapped).__name__}", file=sys.stderr)
    return _save_model(self, *args, **kwargs)


accelerate.state.AcceleratorState.__init__ = _fsdp_state_init
transformers.Trainer.save_model = _save_model_saying_what
train.sft.check_launch = lambda options: check_launch(options, cuda_devices=read_launch().local_processes)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
