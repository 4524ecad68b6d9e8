"""report.html: the report as a page a person reads in a browser, in one file.

Everything it shows is inside it: the runs as JSON, the script that draws them (page.js: a
sortable table, loss and mIoU curves in the runs' colours, per-class IoU bars and validation
predictions of the ticked runs side by side), the images as data: URLs. Its Content Security
Policy lets the browser load nothing from outside, so the page needs no network and a value
from a run (a setting, a directory name) is never fetched or run as code.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seglab.report.figures import hex_colours
from seglab.report.tables import cell_text, labels, ordered, rows

PAGE_SCRIPT = Path(__file__).with_name("page.js")
# a browser loads nothing the page does not hold, and runs only page.js (allowed by its hash: a
# script a run's value might smuggle in would not run even if it escaped the escaping)
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '{script}'"
# how wide a prediction image is kept (its drawing side by side with others')
PREDICTION_WIDTH = 360
# pixels of the largest prediction drawing read (a drawing of an 8K image side by side: 66 M)
LARGEST_PREDICTION = 70_000_000
# the runs ticked when the page opens: the best finished ones
TICKED = 3

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th.sortable { cursor: pointer; background: #f3f3f3; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-left: 6px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.title { font-weight: 600; font-size: 13px; }
.tick, .label { font-size: 11px; fill: #444; }
.axis { stroke: #888; }
.note { color: #777; }
img.prediction, img.figure { max-width: 100%; }
pre { background: #f6f6f6; padding: 8px; white-space: pre-wrap; }
"""


def data_url(image: Path | bytes, width: int | None = None) -> str:
    """An image as a data: URL (PNG), narrowed to `width` pixels when wider."""
    from PIL import Image

    raw = image if isinstance(image, bytes) else image.read_bytes()
    if width is not None:
        picture = Image.open(io.BytesIO(raw))
        if picture.width > width:
            height = round(picture.height * width / picture.width)
            picture = picture.convert("RGB").resize((width, height))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            raw = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def shown_predictions(paths: list[Path]) -> list[dict[str, str]]:
    """The predictions a run saved as the page shows them; an image that cannot be read (or
    is larger than any drawing a run saves) is left out."""
    from PIL import Image

    shown = []
    for path in paths:
        try:
            with Image.open(path) as picture:  # reads the header only
                if picture.width * picture.height > LARGEST_PREDICTION:
                    continue
            shown.append({"name": _prediction_name(path), "src": data_url(path, PREDICTION_WIDTH)})
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return shown


def _drawable(curve: list) -> list:
    """A curve's points with a finite value (a NaN loss is no point to draw)."""
    return [p for p in curve if isinstance(p[1], int | float) and math.isfinite(p[1])]


def _prediction_name(path: Path) -> str:
    """`val_IMAGE_STEP.png` as the image's name (the step is the run's own)."""
    return path.name.removeprefix("val_").rsplit("_", 1)[0]


def page_data(runs: list[dict]) -> dict[str, Any]:
    """What page.js draws: the table's rows (as in report.md) and each run's curves, classes,
    predictions and colour, numbered as the table numbers them."""
    runs = ordered(runs)
    header, table = rows(runs)
    colours = hex_colours(len(runs))
    finished = [i for i, r in enumerate(runs) if r["mIoU"] is not None]
    return {
        "header": header,
        "selected": finished[:TICKED] or [0],
        "any_predictions": any(r["predictions"] for r in runs),
        "runs": [
            {
                "number": i + 1,
                "label": label,
                "colour": colour,
                # a NaN or infinite value written as the table writes it, a curve without it
                "row": [cell_text(v) if isinstance(v, float) else v for v in row],
                "loss": _drawable(r["loss_curve"]),
                "miou": _drawable(r["miou_curve"]),
                "per_class": r["per_class"],
                "predictions": shown_predictions(r["predictions"]),
            }
            for i, (r, row, label, colour) in enumerate(
                zip(runs, table, labels(runs), colours, strict=True)
            )
        ],
    }


def finite(node: Any) -> Any:
    """`node` with every NaN and infinity as None (JSON has neither: a diverged run's NaN loss
    would make the whole page's data unreadable)."""
    if isinstance(node, float) and not math.isfinite(node):
        return None
    if isinstance(node, dict):
        return {k: finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [finite(v) for v in node]
    return node


def _script_json(data: dict) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the runs hold."""
    text = json.dumps(finite(data), default=str, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def policy() -> str:
    """The page's Content Security Policy, page.js allowed by its SHA-256."""
    digest = hashlib.sha256(PAGE_SCRIPT.read_bytes()).digest()
    return POLICY.format(script="sha256-" + base64.b64encode(digest).decode("ascii"))


def section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def table_html(header: Sequence[str], table: Sequence[Sequence[Any]]) -> str:
    """A static table (the seed groups), every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row) + "</tr>"
        for row in table
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def pre(text: str) -> str:
    """Text as the page shows it, preformatted and escaped."""
    return f"<pre>{html.escape(text)}</pre>"


def figure_html(png: bytes, alt: str) -> str:
    return f'<img class="figure" alt="{html.escape(alt)}" src="{data_url(png)}">'


def page(title: str, runs: list[dict], sections: Sequence[str] = ()) -> str:
    """The whole page: the runs' table, curves, per-class bars and predictions, then
    `sections` (already HTML: seed groups, an Optuna search, failed runs)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy()}">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">Written by seglab report. Click a column's head to sort; tick runs to compare
their per-class IoU and predictions.</p>
<table id="runs"></table>
<div class="charts"><div id="loss"></div><div id="miou"></div></div>
{section("Per-class IoU", '<div id="per-class"></div>')}
{section("Validation predictions", '<div id="predictions"></div>')}
{"".join(sections)}
<script type="application/json" id="report-data">{_script_json(page_data(runs))}</script>
<script>{PAGE_SCRIPT.read_bytes().decode()}</script>
</body>
</html>
"""
