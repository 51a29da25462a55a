"""``ttscale train sft``: s1-style supervised fine-tuning on TRL (``train/sft.py``) from the command line.

    ttscale train sft --model smollm2-135m --data runs/curate-demo --output-dir runs/sft --max-length 4096

Flags are the fields of :class:`train.config.SFTOptions` (s1's hyper-parameters as defaults); ``--config FILE.yaml``
takes any of them. The output directory is checked before anything loads.
"""

from __future__ import annotations

import os
import sys

from engine.cli.common import check_output_dir
from engine.cli.flags import TRAIN_SFT
from engine.errors import TTScaleError
from train.config import SFTOptions
from train.sft import train_sft


def run_sft(args) -> int:
    """``ttscale train sft``: check the flags, the data path (when it is local) and the output directory, then train
    and say where the model and its log are. Refuses what :func:`train.sft.train_sft` refuses (an output directory that
    already holds a training log, checked before any model loads)."""
    opts = TRAIN_SFT.build(args)[SFTOptions]
    check_output_dir(opts.output_dir, "--output-dir")
    local = opts.data.startswith((".", "/", "~")) or opts.data.endswith(".jsonl")  # else maybe a hub id (owner/name)
    if local and not os.path.exists(os.path.expanduser(opts.data)):
        raise TTScaleError(f"--data {opts.data}: no such file or directory; give a curation output directory, a .jsonl file or a hub id")
    result = train_sft(opts, progress=True)
    print(f"ttscale: trained {result['steps']} steps on {result['examples']} examples (final loss {result['train_loss']:.4f}); "
          f"model in {result['output_dir']} (ttscale generate --model {result['output_dir']}), log {result['log']}", file=sys.stderr)
    return 0
