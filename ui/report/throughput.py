"""## Throughput: learner updates/s and labelled steps/s over elapsed time."""

from __future__ import annotations

import numpy as np

from atari_distill.ui.plots import Plots, series_key
from atari_distill.ui.report.axes import resume_marks
from atari_distill.ui.report.runs import kinds_of
from atari_distill.ui.report.tables import table


def throughput_section(runs: list[dict], plots: Plots) -> str:
    fig, (update_ax, labelled_ax) = plots.figure(
        "throughput", "Throughput", ("elapsed seconds", "learner updates/s", "Learner"),
        ("elapsed seconds", "labelled steps/s", "Teacher actors (over five records)"))
    rows, labels = [], set()
    for run in runs:
        for kind in kinds_of(run):
            records = [m for m in run["metrics"] if m.get("kind", "distill") == kind and m.get("elapsed_s")]
            if not records:
                continue
            key = series_key(run["name"], kind)
            color = plots.color(key)
            elapsed = np.array([m["elapsed_s"] for m in records], float)
            updates = np.array([m.get("updates_per_s", np.nan) for m in records], float)
            breaks = [i for i, m in enumerate(records) if m.get("resumed") and i > 0]  # no line across a stop
            update_ax.plot(np.insert(elapsed, breaks, np.nan), np.insert(updates, breaks, np.nan), color=color,
                           label=key, marker="o" if len(elapsed) < 3 else None)
            resume_marks(update_ax, records, "elapsed_s", color, labels)
            plots.count("throughput", len(elapsed))
            rate = _labelled_rate(labelled_ax, records, elapsed, color, key)
            rows.append([key, float(np.nanmean(updates)), rate, float(elapsed[-1])])
    if not labelled_ax.lines:  # an empty panel would read as actors that labelled nothing
        labelled_ax.text(0.5, 0.5, "no teacher actors ran:\nevery run here read a recorded dataset",
                         transform=labelled_ax.transAxes, ha="center", va="center", color="grey")
        labelled_ax.set_xticks([])
        labelled_ax.set_yticks([])
    image = plots.save("throughput", fig, [update_ax, labelled_ax])
    return (f"## Throughput\n\n![throughput]({image})\n\n" if image else "## Throughput\n\n") + table(
        ["series", "mean updates/s", "mean labelled steps/s", "elapsed s"], rows)


def _labelled_rate(ax, records: list[dict], elapsed: np.ndarray, color: str, key: str) -> float | None:
    """Draws the teacher actors' labelled steps/s; returns the mean rate, or None where the run labelled
    nothing itself (a student trained from a recorded dataset)."""
    labelled = np.array([m.get("labelled_steps", np.nan) for m in records], float)
    if np.isfinite(labelled).sum() >= 2 and not any(m.get("from_dataset") for m in records):
        lag = min(5, len(labelled) - 1)  # chunks land in bursts: a rate over five records, not one
        rates = (labelled[lag:] - labelled[:-lag]) / np.maximum(elapsed[lag:] - elapsed[:-lag], 1e-9)
        ax.plot(elapsed[lag:], rates, color=color, label=key, marker="o" if len(rates) < 3 else None)  # one shows
        return float((labelled[-1] - labelled[0]) / max(elapsed[-1] - elapsed[0], 1e-9))
    return None
