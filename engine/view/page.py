"""One self-contained HTML page: the viewer's stylesheet and script inlined, the data embedded as JSON.

    html = render_page(load_view("trace.jsonl"))     # a page that opens offline, from disk
    html = render_page(None)                         # the empty viewer: open files in the page (ttscale serve /view)

Nothing is fetched when the page opens: no CDN, no font, no image. The data sits in
``<script id="ttscale-data" type="application/json">`` with every ``<`` written as ``\\u003c``, so no text in a
trace (``</script>`` included) can end the element early. ``<script id="ttscale-config">`` carries what the page
needs from Python for files opened in it: the thinking delimiters of the known formats.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from functools import cache
from html import escape

from engine.errors import TTScaleError
from engine.formats import FORMATS
from engine.view.load import View

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


@cache
def asset(name: str) -> str:
    """The text of one shipped asset (``viewer.js``, ``viewer.css``); refuses an install that lacks it."""
    path = os.path.join(ASSETS, name)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise TTScaleError(f"the viewer's {name} is missing from this install ({path}); reinstall ttscale") from exc


def embed_json(value) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element (no ``<``, no U+2028/U+2029 line breaks)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(view: View | None) -> str:
    """The whole HTML page for ``view`` (or the empty viewer when None). Refuses data that is not JSON (NaN)."""
    title = "ttscale view" + (f" · {view.title}" if view else "")
    try:
        data = "" if view is None else f'<script id="ttscale-data" type="application/json">{embed_json(asdict(view))}</script>\n'
    except ValueError as exc:
        raise TTScaleError(f"{view.source}: holds a value JSON cannot carry ({exc}); regenerate the file") from exc
    config = embed_json({"think_ends": [f.think_end for f in FORMATS.values()]})  # what opened files are split at
    data += f'<script id="ttscale-config" type="application/json">{config}</script>\n'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{escape(title)}</title>\n<style>\n{asset('viewer.css')}</style>\n</head>\n"
            f"<body>\n<div id=\"app\"></div>\n{data}<script>\n{asset('viewer.js')}</script>\n</body></html>\n")
