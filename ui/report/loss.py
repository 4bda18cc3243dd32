"""## Loss: each learner's training loss over its updates; students and DQN on their own panels."""

from __future__ import annotations

import numpy as np

from atari_distill.ui.plots import Plots, series_key
from atari_distill.ui.report.axes import resume_marks
from atari_distill.ui.report.runs import kinds_of
from atari_distill.ui.report.tables import table


def _series(metrics: list[dict], key: str, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    rows = [m for m in metrics if m.get(key) is not None and (kind is None or m.get("kind", "distill") == kind)]
    return np.array([m["updates"] for m in rows], float), np.array([m[key] for m in rows], float)


def loss_section(runs: list[dict], plots: Plots) -> str:
    rows, series = [], []
    for run in runs:
        for kind in kinds_of(run):
            # a student learning from the reward too logs its distillation term apart: that is what compares
            x, y = _series(run["metrics"], "distill_loss", kind)
            if not len(x):
                x, y = _series(run["metrics"], "loss", kind)
            if len(x):
                series.append((run, kind, x, y))
    dqn = [s for s in series if s[1] == "dqn"]
    panels = [("updates", "distillation loss", "Students"), ("updates", "TD loss (Huber)", "DQN")]
    fig, axes = plots.figure("loss", "Training loss", *(panels if dqn and len(dqn) < len(series) else
                                                        [panels[1] if dqn else panels[0]]))
    labels = set()
    for run, kind, x, y in series:
        ax = axes[-1] if kind == "dqn" else axes[0]
        key = series_key(run["name"], kind)
        ax.plot(x, y, color=plots.color(key), label=key, marker="o" if len(x) < 3 else None)  # one point shows
        resume_marks(ax, [m for m in run["metrics"] if m.get("kind", "distill") == kind], "updates", plots.color(key),
                     labels)
        plots.count("loss", len(x))
        rows.append([key, int(x[0]), f"{y[0]:.4f}", int(x[-1]), f"{y[-1]:.4f}", f"{y.min():.4f}"])
    image = plots.save("loss", fig, axes)
    return (f"## Loss\n\n![loss]({image})\n\n" if image else "## Loss\n\n") + table(
        ["series", "first update", "first loss", "last update", "last loss", "lowest loss"], rows)
