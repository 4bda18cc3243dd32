"""An axis's frame: the teacher's and random policy's lines, y limits that hold the points, thousands on x."""

from __future__ import annotations

import numpy as np

MAX_STRETCH = 3.0  # intervals may widen an axis to this many times what the means and baselines need


def frame_lines(ax, frames: list[dict], labels: set) -> list[float]:
    """The teacher's (dashed) and random policy's (dotted) scores across a panel, each with its 95% CI
    as a faint band, beneath the students' markers; returns the values drawn. One black line when every
    student there shares one, else one per student in its colour."""
    drawn = []
    for which, style, colour in (("random_score", ":", "grey"), ("teacher_score", "--", "black")):  # teacher on top
        values = {(f["key"], f["color"]): f[which] for f in frames if f.get(which)}
        if not values:
            continue
        shared = len({round(v["mean"], 6) for v in values.values()}) == 1
        name = "teacher" if which == "teacher_score" else "random policy"
        for (key, color), value in (list(values.items())[:1] if shared else values.items()):
            label = f"{name} (report seeds)" if shared else f"{key}: {name}"
            ax.axhline(value["mean"], linestyle=style, linewidth=1.2, color=colour if shared else color, zorder=1,
                       label=label if label not in labels else "_" + label)
            labels.add(label)
            drawn.append(value["mean"])
            if value.get("ci95"):
                ax.axhspan(value["mean"] - value["ci95"], value["mean"] + value["ci95"], color=colour if shared
                           else color, alpha=0.08, linewidth=0, zorder=0)
                drawn += [value["mean"] - value["ci95"], value["mean"] + value["ci95"]]
    return drawn


def resume_marks(ax, records: list[dict], x_key: str, color: str, labels: set) -> None:
    """A dotted vertical line where a series was resumed (at its last line before the stop, which the
    checkpoint it went on from holds): a fresh replay there can move its loss and rates, and the reader
    should see why."""
    for before, record in zip(records, records[1:]):
        if record.get("resumed") and before.get(x_key) is not None:
            label = "resumed (fresh replay)"
            ax.axvline(before[x_key], linestyle=":", linewidth=1, color=color,
                       label=label if label not in labels else "_" + label)
            labels.add(label)


def thousands(axis) -> None:
    """Frames and updates as 250k, 1.5M: five ticks that never run into each other."""
    import matplotlib.ticker as ticker

    axis.set_major_locator(ticker.MaxNLocator(5))
    axis.set_major_formatter(ticker.EngFormatter(sep=""))


def frame_y(ax, values: list[float], intervals: list[float] = ()) -> None:
    """Frames the means and the lines they are read against, widened to hold their intervals' ends up to
    MAX_STRETCH times that span (so one 2-episode interval cannot squash every point); an error bar
    that still runs past the axis gets a triangle at the edge, in its colour."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return
    low, high = min(values), max(values)
    span = (high - low) or max(1.0, abs(high) * 0.2)
    ends = [v for v in intervals if v is not None and np.isfinite(v)]
    for container in ax.containers:
        if getattr(container, "has_yerr", False):
            ends += [y for segment in container.lines[2][0].get_segments() for _, y in segment]
    room = (MAX_STRETCH - 1) * span / 2
    bottom = max(min([low, *ends]), low - room) - 0.08 * span
    top = min(max([high, *ends]), high + room) + 0.08 * span
    ax.set_ylim(bottom, top)
    _mark_clipped(ax, bottom, top)


def _mark_clipped(ax, bottom: float, top: float) -> None:
    """A triangle at the edge, in its bar's colour, for each error bar end past the axis."""
    for container in ax.containers:
        if getattr(container, "has_yerr", False):
            bars = container.lines[2][0]
            color = bars.get_color()[0]
            for segment in bars.get_segments():
                (x, y0), (_, y1) = segment
                for end, edge, marker in ((max(y0, y1), top, "^"), (min(y0, y1), bottom, "v")):
                    if (end > edge) if marker == "^" else (end < edge):
                        ax.plot([x], [edge], marker=marker, color=color, markersize=7, linestyle="",
                                label="_clipped", clip_on=False, transform=bars.get_transform())
