"""report.png: loss and validation mIoU against the iteration and the best run's per-class IoU,
one colour per run in every panel (the same colours as report.html's)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from seglab.report.tables import labels, ordered

# characters a line of a legend entry (three side by side) and of a panel's title holds
LEGEND_WIDTH, TITLE_WIDTH = 44, 46
# the least room above and below the validation values: one point is not drawn as a range
MIOU_MARGIN = 0.5


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = figure(runs)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def figure(runs: list[dict]) -> Any:
    """Loss and validation mIoU against the iteration and the best run's per-class IoU; each
    run has one colour in every panel and a numbered legend entry (its row in the table). The
    layout is matplotlib's constrained one: the legend below the panels and every title are
    inside the figure, long names wrapped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = ordered(runs)  # numbered as the table lists them
    names = [f"{i}: {label}" for i, label in enumerate(labels(runs), 1)]
    entries = [_wrap(name, LEGEND_WIDTH) for name in names]
    colours = run_colours(len(runs))
    # the legend's three columns, of wrapped entries: room for its lines below the panels
    legend_lines = -(-sum(e.count("\n") + 1 for e in entries) // 3) + 1
    fig = plt.figure(figsize=(17, 5.5 + 0.17 * legend_lines), layout="constrained")
    ax_loss, ax_miou, ax_class = fig.subplots(1, 3)
    for r, entry, colour in zip(runs, entries, colours, strict=True):
        if r["loss_curve"]:
            ax_loss.plot(*zip(*r["loss_curve"], strict=True), color=colour)
        if r["miou_curve"]:
            ax_miou.plot(*zip(*r["miou_curve"], strict=True), marker="o", color=colour)
        # a legend entry for every run, curves or not (a failed run is in the table too)
        ax_miou.plot([], [], color=colour, marker="o", label=entry)
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    ax_miou.set(title="validation mIoU", xlabel="iteration", ylabel="mIoU (%)")
    missing = {
        ax_loss: "no loss logged: a run logs it every\ndefault_hooks.logger.interval iterations",
        ax_miou: "no validation logged: a run validates every\ntrain_cfg.val_interval iterations",
    }
    for ax, note in missing.items():
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations: no 19.75
        if not any(len(line.get_xdata()) for line in ax.lines):
            _note(ax, note)
    validated = [v for r in runs for _, v in r["miou_curve"]]
    if validated:  # matplotlib widens equal values (one validation) by 5% of them: 80 ± 4
        low, high = min(validated), max(validated)
        margin = max(MIOU_MARGIN, 0.05 * (high - low))
        ax_miou.set_ylim(low - margin, high + margin)
    best = max((r for r in runs if r["mIoU"] is not None), key=lambda r: r["mIoU"], default=None)
    if best is not None and best["per_class"]:
        number = runs.index(best)
        classes = list(best["per_class"])
        values = [best["per_class"][n] or 0 for n in classes]
        ax_class.bar(classes, values, color=colours[number])
        ax_class.set(
            title=_wrap(f"per-class IoU of the best run, {names[number]}", TITLE_WIDTH)
            + f"\n({best['mIoU']} mIoU)",
            ylabel="IoU (%)",
        )
        ax_class.tick_params(axis="x", rotation=45)
    else:
        _note(ax_class, "no finished run with per-class IoU")
    fig.legend(*ax_miou.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    return fig


def _wrap(text: str, width: int) -> str:
    """`text` in lines of at most `width` characters, 3 at most (a name is cut, not the
    figure)."""
    lines = textwrap.wrap(text, width, break_on_hyphens=False, max_lines=3, placeholder=" ...")
    return "\n".join(lines)


def run_colours(n: int) -> list[Any]:
    """n distinct colours: matplotlib's tab10/tab20 while they last, then a continuous map."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](i / (n - 1)) for i in range(n)]


def _note(ax: Any, text: str) -> None:
    """A panel with nothing to draw says so instead of staying empty."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def hex_colours(n: int) -> list[str]:
    """`run_colours(n)` as #rrggbb, for the HTML report."""
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in run_colours(n)]
