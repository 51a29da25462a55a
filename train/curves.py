"""Training curves: :func:`plot_curves` draws loss and learning rate against the optimizer step from ``train_log.jsonl``.

    plot_curves("ckpt/train_log.jsonl", "ckpt/train_curves.png")   # two panels, one PNG; returns the PNG path

:func:`read_log` is the one reader of the log (the rows ``train/sft.py`` appends: ``step``, ``epoch``, ``loss``,
``learning_rate``, ``grad_norm``), with :mod:`engine.jsonl`'s torn-line policy. The figure uses matplotlib's object
API on the Agg canvas: no pyplot state, no display, no global backend switch.
"""

from __future__ import annotations

import math
import os

from engine.errors import TTScaleError
from engine.jsonl import read_jsonl


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_log(log_path: str) -> list[dict]:
    """The rows of a training log, each with a numeric ``step`` and ``loss`` (``learning_rate`` may be missing).

    Refuses, in one sentence, a missing file, a line that is not a JSON object (a torn last line is skipped), a row
    without a finite numeric ``step`` and ``loss``, and a log with no rows.
    """
    rows = read_jsonl(log_path, what="train log", hint="it is the train_log.jsonl that ttscale train sft writes")
    for number, row in enumerate(rows, 1):
        if not (_number(row.get("step")) and _number(row.get("loss"))):
            raise TTScaleError(f"train log {log_path}, row {number}: needs a numeric step and loss, got {row}; "
                               "give the train_log.jsonl that ttscale train sft writes")
    if not rows:
        raise TTScaleError(f"train log {log_path} holds no logged steps; plot it after at least one optimizer step")
    return rows


def plot_curves(log_path: str, png_path: str) -> str:
    """Write ``png_path``: training loss (top) and learning rate (bottom) against the optimizer step, from ``log_path``.

    Returns ``png_path``. Refuses what :func:`read_log` refuses and a folder for the PNG that does not exist.
    """
    rows = read_log(log_path)
    folder = os.path.dirname(os.path.abspath(png_path))
    if not os.path.isdir(folder):
        raise TTScaleError(f"{png_path}: the folder {folder} does not exist; create it or give another path")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is heavy, only the figure needs it
    from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch

    steps = [row["step"] for row in rows]
    rates = [(row["step"], row["learning_rate"]) for row in rows if _number(row.get("learning_rate"))]
    fig = Figure(figsize=(7, 6), dpi=100)
    FigureCanvasAgg(fig)
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True)
    loss_ax.plot(steps, [row["loss"] for row in rows], marker="." if len(rows) < 50 else None, color="tab:blue")
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title(f"SFT training curves ({len(rows)} logged steps)")
    loss_ax.grid(alpha=0.3)
    if rates:
        lr_ax.plot([s for s, _ in rates], [r for _, r in rates], color="tab:orange")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("optimizer step")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    return png_path
