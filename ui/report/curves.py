"""Learning curves: a student's selection-seed scores joined, its final report-seed score a star apart,
series in one panel set a few points apart so none hides another."""

from __future__ import annotations

import numpy as np

FINAL_STAR = "star: the final student (report seeds)"
DODGE_STEP_PT, DODGE_SPREAD_PT = 8.0, 20.0  # two 12-point stars stay told apart; the spread stays inside the
# axes' 5% margin


def final_point(summary: dict, kind: str, game: str) -> list:
    """The run's final evaluation (in summary.json, not metrics), drawn apart from its curve."""
    students = summary.get("students") or []
    for student in students:
        if kind == "eval" and len(students) == 1 or kind == f"eval-{student['student']}-{student['loss']}":
            result = (student.get("per_game") or {}).get(game)
            if result and result.get("student_score"):
                score = result["student_score"]
                return [(student["updates"], {"score": score["mean"], "ci95": score.get("ci95"),
                                              "pct_of_teacher": result.get("student_pct_of_teacher"),
                                              "agreement": result.get("action_agreement")})]
    return []


def draw_curve(ax, points: list, final: list, color: str, key: str, shift) -> tuple[list, list, int]:
    """A learning curve: its selection-seed points joined, with a 95% band (a bar at a lone point), and
    the final student's report-seed score apart as a star with its CI (other seeds, so not one more
    point of the line). `shift`: the transform that sets this series a little apart (`dodge`).
    Returns the y values and band ends drawn (to frame the axis) and the points drawn."""
    drawn_before = {*ax.lines, *ax.collections}
    x = np.array([u for u, _ in points], float)
    y = np.array([p["score"] for _, p in points], float)
    ci = np.array([p.get("ci95") or 0.0 for _, p in points], float)
    if len(x):
        ax.plot(x, y, marker="o", color=color, label=key)
        if len(x) > 1:
            ax.fill_between(x, y - ci, y + ci, alpha=0.15, color=color)
        elif points[0][1].get("ci95") is not None:  # a band one point wide is invisible; one episode has none
            ax.errorbar(x, y, yerr=ci, fmt="none", capsize=3, color=color)
    for u, p in final:
        label = f"{key} (final, report seeds)" if not len(x) else "_final"
        if p.get("ci95") is None:  # one episode: no interval to draw
            ax.plot([u], [p["score"]], marker="*", markersize=12, linestyle="none", color=color, label=label)
        else:
            ax.errorbar([u], [p["score"]], yerr=[p["ci95"]], fmt="*", markersize=12, capsize=3, color=color, label=label)
    for artist in {*ax.lines, *ax.collections} - drawn_before:  # set after drawing: the axis still spans the data
        artist.set_transform(shift)
    shown = list(y) + [p["score"] for _, p in final]
    bands = list(y - ci) + list(y + ci) + [p["score"] + s * (p.get("ci95") or 0.0) for _, p in final for s in (-1, 1)]
    return shown, bands, len(x) + len(final)


def dodge(ax, index: int, count: int):
    """The transform that draws series `index` of the `count` in a panel a few points left or right of
    its x: students scored at the same updates (a sweep's, two runs') would hide one another's points,
    stars and bars. Set on artists already drawn, so the axis limits still come from the data; the
    tables keep the true x."""
    from matplotlib.transforms import offset_copy

    step = min(DODGE_STEP_PT, DODGE_SPREAD_PT / max(count - 1, 1))
    return offset_copy(ax.transData, fig=ax.figure, x=(index - (count - 1) / 2) * step, y=0, units="points")


def key_the_stars(ax) -> None:
    """One legend entry says what a star is, once per panel that has one (Plots.save lists such keys
    after every series)."""
    if any(line.get_marker() == "*" for line in ax.lines):
        ax.plot([], [], marker="*", markersize=10, linestyle="none", color="black", label=FINAL_STAR)
