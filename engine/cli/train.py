"""``ttscale train sft``: s1-style supervised fine-tuning on TRL (``train/sft.py``) from the command line.

    ttscale train sft --model smollm2-135m --data runs/curate-demo --output-dir runs/sft --max-length 4096 --save-steps 50
    ttscale train sft ...the same flags... --resume      # after a kill: continue from the last checkpoint
    ttscale train sft ... --lora --learning-rate 2e-4     # LoRA adapters (peft); OUTPUT holds the merged model

Flags are the fields of :class:`train.config.SFTOptions` (s1's hyper-parameters as defaults); ``--config FILE.yaml``
takes any of them. The output directory (and, with ``--resume``, its checkpoint and recorded options) is checked
before anything loads. The Trainer's progress bar goes to stderr unless ``--no-progress``; then stderr holds only
``ttscale:`` lines.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from engine.cli.common import check_output_dir
from engine.cli.flags import TRAIN_SFT
from engine.errors import TTScaleError
from train.config import SFTOptions
from train.sft import train_sft

_S1_RATE = next(f.default for f in dataclasses.fields(SFTOptions) if f.name == "learning_rate")


def run_sft(args) -> int:
    """``ttscale train sft``: check the flags, the data path (when it is local) and the output directory, then train
    and say where the model, its log and curves are. With ``--lora`` at s1's full-model learning rate, says once that
    LoRA usually wants a higher one (the rate is not changed). Refuses what :func:`train.sft.train_sft` refuses (an
    output directory of another run, a resume without a checkpoint or with other options: checked before any model
    loads)."""
    opts = TRAIN_SFT.build(args)[SFTOptions]
    check_output_dir(opts.output_dir, "--output-dir")
    local = opts.data.startswith((".", "/", "~")) or opts.data.endswith(".jsonl")  # else maybe a hub id (owner/name)
    if local and not os.path.exists(os.path.expanduser(opts.data)):
        raise TTScaleError(f"--data {opts.data}: no such file or directory; give a curation output directory, a .jsonl file or a hub id")
    if opts.lora and opts.learning_rate == _S1_RATE:
        print(f"ttscale: note: --lora at s1's full-model learning rate {_S1_RATE:g}; LoRA usually needs about 10x more "
              "(e.g. --learning-rate 2e-4)", file=sys.stderr)
    result = train_sft(opts)
    resumed = f"resumed from {os.path.basename(result['resumed_from'])}, " if result["resumed_from"] else ""
    ran = f"mean loss {result['train_loss']:.4f}" if result["steps_run"] else "nothing left to train"
    print(f"ttscale: trained {result['steps']} steps on {result['examples']} examples ({resumed}{ran}); "
          f"model in {result['output_dir']} (ttscale generate --model {result['output_dir']}), log {result['log']}, "
          f"curves {result['curves']}" + (f", adapter {result['adapter']}" if result["adapter"] else ""), file=sys.stderr)
    return 0
