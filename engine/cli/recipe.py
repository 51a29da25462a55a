"""``ttscale recipe s1-mini``: the s1 recipe in miniature (``train/recipe.py``) from the command line.

    ttscale recipe s1-mini --out runs/s1-mini                     # curate, SFT, evaluate base and SFT, report
    ttscale recipe s1-mini --out runs/s1-mini --epochs 2 --k 200  # any setting of S1MiniOptions as a flag

Flags are :class:`train.recipe_config.S1MiniOptions`; ``--config FILE.yaml`` takes any of them. The options and the
run directory are checked before any model loads; the table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import sys

from engine.cli.flags import RECIPE_S1_MINI
from train.recipe import check_run_dir, paths, run_s1_mini, summary_markdown
from train.recipe_config import S1MiniOptions


def run_s1_mini_command(args) -> int:
    """``ttscale recipe s1-mini``: check the options and the run directory, run (or resume) the recipe, print the
    table and say where the figure is. Refuses what :func:`train.recipe.run_s1_mini` refuses."""
    options = RECIPE_S1_MINI.build(args)[S1MiniOptions]
    check_run_dir(options)
    results = run_s1_mini(options)
    sys.stdout.write(summary_markdown(results))
    p = paths(options.out)
    print(f"ttscale: figure {p['figure']}, results {p['results']}, table {p['summary']}", file=sys.stderr)
    return 0
