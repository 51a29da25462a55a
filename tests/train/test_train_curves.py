"""train.curves: loss and learning rate vs step as a two-panel PNG from train_log.jsonl; bad logs refused in one sentence."""

import json
import math

import pytest

from engine.errors import TTScaleError
from train.curves import plot_curves, read_log

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _log(path, rows, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return str(path)


def test_the_curves_are_a_png_of_both_panels(tmp_path):
    import matplotlib.image

    rows = [{"step": k, "epoch": k / 4, "loss": 3.0 / k, "learning_rate": 1e-3 * (1 + math.cos(math.pi * k / 8)) / 2,
             "grad_norm": 1.0} for k in range(1, 9)]
    png = str(tmp_path / "train_curves.png")
    assert plot_curves(_log(tmp_path / "log.jsonl", rows, tail='{"step": 9, "lo'), png) == png  # a torn last line is skipped
    data = open(png, "rb").read()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (600, 700)  # figsize (7, 6) at 100 dpi
    assert image[..., :3].std() > 0.05  # drawn on, not a blank canvas


def test_a_log_without_learning_rates_still_plots_the_loss(tmp_path):
    png = tmp_path / "c.png"
    plot_curves(_log(tmp_path / "log.jsonl", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "learning_rate": None}]), str(png))
    assert png.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("text, message", [
    ("", "holds no logged steps"),
    ("\n\n", "holds no logged steps"),
    ('{"step": 1, "loss": 2.0}\nnot json\n{"step": 3, "loss": 1.0}\n', "line 2: not valid JSON"),
    ('[1, 2]\n', "not an object"),
    ('{"step": 1, "learning_rate": 0.1}\n', "row 1: needs a numeric step and loss"),
    ('{"step": "one", "loss": 2.0}\n', "row 1: needs a numeric step and loss"),
    ('{"step": 1, "loss": NaN}\n', "row 1: needs a numeric step and loss"),
])
def test_bad_logs_are_refused_in_one_sentence(tmp_path, text, message):
    path = tmp_path / "log.jsonl"
    path.write_text(text)
    with pytest.raises(TTScaleError, match=message) as err:
        plot_curves(str(path), str(tmp_path / "c.png"))
    assert str(err.value).count(". ") == 0 and not (tmp_path / "c.png").exists()


def test_a_missing_log_or_png_folder_is_refused(tmp_path):
    with pytest.raises(TTScaleError, match="no such file"):
        read_log(str(tmp_path / "nope.jsonl"))
    log = _log(tmp_path / "log.jsonl", [{"step": 1, "loss": 2.0}])
    with pytest.raises(TTScaleError, match="does not exist"):
        plot_curves(log, str(tmp_path / "no" / "c.png"))
