"""An Optuna search read as a search: its optimisation history and parameter importances, drawn
by Optuna's own matplotlib functions, and the command that trains its best trial again."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from seglab.report.runs import search_study, sweep_dirs

HISTORY_PNG = "search_history.png"
IMPORTANCES_PNG = "search_importances.png"


@dataclass
class SearchSummary:
    """What a report says of one Optuna search: its figures (files written), the best trial's
    command, and why a figure is missing."""

    sweep_dir: Path
    trials: int
    best: str | None = None
    command: str | None = None
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"Optuna search {self.sweep_dir.name}: {self.trials} complete trial(s)"]
        if self.best:
            lines.append(self.best)
        if self.command:
            lines.append(f"train the best trial again: {self.command}")
        lines += self.notes
        return "\n".join(lines) + "\n"


def summaries(roots: list[Path], out: Path, storage: str | None = None) -> list[SearchSummary]:
    """A summary of every Optuna search at or below `roots` whose study is read from here (see
    runs.study_place), its figures written in `out` (named after the search when there are
    several)."""
    found = [d for root in roots for d in sweep_dirs(root)]
    studies = [(d, search_study(d, storage)) for d in found]
    studies = [(d, s) for d, s in studies if s is not None]
    return [summary(d, s, out, prefix=f"{d.name}_" if len(studies) > 1 else "") for d, s in studies]


def summary(sweep_dir: Path, study, out: Path, prefix: str = "") -> SearchSummary:
    """The search's figures in `out` and its best trial's command."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as drawn

    from seglab.run.hparam_search import JOB, quiet_optuna

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    found = SearchSummary(sweep_dir, len(complete))
    if not complete:
        found.notes.append("no complete trial yet: no history or importances to draw")
        return found
    best = study.best_trial
    found.best = f"best trial {best.number}: mIoU {best.value:.2f} with {best.params}"
    overrides = (best.user_attrs.get(JOB) or {}).get("overrides")
    if overrides:  # as its job ran them, secrets masked
        found.command = "python -m seglab " + shlex.join(overrides)
    plots = [(HISTORY_PNG, drawn.plot_optimization_history, 1)]
    plots.append((IMPORTANCES_PNG, drawn.plot_param_importances, 2))
    for name, draw, needed in plots:
        if len(complete) < needed or not best.params:
            found.notes.append(f"{name}: needs {needed} complete trials with parameters")
            continue
        with quiet_optuna():
            axes = draw(study)
        figure = axes.figure
        figure.set_size_inches(7, 4.5)
        figure.tight_layout()
        path = out / f"{prefix}{name}"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        found.figures.append(path)
    return found
