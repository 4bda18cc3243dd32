"""## Multi-task: each multi-task student per game, normalised % of teacher and agreement."""

from __future__ import annotations

import numpy as np

from atari_distill.ui.plots import Plots
from atari_distill.ui.report.runs import students
from atari_distill.ui.report.tables import RATIO_HEADER, geometric_ratios, ratios, table


def multitask_section(runs: list[dict], plots: Plots) -> str:
    """Each multi-task student (a sweep's each) per game: normalised % of teacher with its lower bound,
    and agreement above the majority baseline."""
    multi = [s for run in runs if run["kind"] == "multitask" for s in students(run) if s["per_game"]]
    if not multi:
        return ""
    fig, (pct_ax, agree_ax) = plots.figure(
        "per_game", "Multi-task: per game", ("game", "normalised % of teacher", "Score (0: random policy, 100: "
                                                                                "teacher; bars to the lower 95% bound)"),
        ("game", "held-out action agreement", "Agreement (black tick: majority-action baseline)"))
    rows, width = [], 0.8 / len(multi)
    pct_ax.axhline(100, linestyle="--", color="black", label="teacher")
    pct_ax.axhline(0, linestyle=":", color="grey", label="random policy")
    for i, student in enumerate(multi):
        per_game, key = student["per_game"], student["key"]
        games = list(per_game)
        color = plots.color(key)
        x = np.arange(len(games)) + i * width
        _draw_scores(pct_ax, student, x, width, color)
        agree_ax.bar(x, [per_game[g]["action_agreement"] for g in games], width, color=color, label=key)
        baselines = [(xi, per_game[g]["majority_baseline"]) for xi, g in zip(x, games)
                     if per_game[g].get("majority_baseline") is not None]
        if baselines:  # a tick across each bar, never a cap above one that sits below its baseline
            agree_ax.hlines([b for _, b in baselines], [xi - width / 2 for xi, _ in baselines],
                            [xi + width / 2 for xi, _ in baselines], colors="black", linewidth=2,
                            label="majority-action baseline" if i == 0 else "_")
        agree_ax.set_ylim(0, 1)
        for ax in (pct_ax, agree_ax):
            ax.set_xticks(np.arange(len(games)) + 0.4 - width / 2, games, rotation=30 if len(games) > 4 else 0,
                          ha="right" if len(games) > 4 else "center")
        plots.count("per_game", len(games))
        geometric = student["geometric"] or {}
        rows += [[key, g, *ratios(per_game[g]), per_game[g]["action_agreement"],
                  per_game[g].get("majority_baseline")] for g in games]
        rows.append([key, "geometric mean", *geometric_ratios(geometric), geometric.get("mean_action_agreement"), None])
    image = plots.save("per_game", fig, [pct_ax, agree_ax])
    return f"## Multi-task\n\n![per game]({image})\n\n" + table(
        ["series", "game", *RATIO_HEADER, "action agreement", "majority baseline"], rows)


def _draw_scores(ax, student: dict, x: np.ndarray, width: float, color: str) -> None:
    """A student's normalised % per game as bars with their lower 95% bounds, why any is withheld, and
    its geometric mean over the games as a line."""
    per_game, key = student["per_game"], student["key"]
    games = list(per_game)
    pct = np.array([np.nan if per_game[g].get("normalised_pct") is None else per_game[g]["normalised_pct"]
                    for g in games], float)
    low = np.array([np.nan if per_game[g].get("normalised_low95") is None else per_game[g]["normalised_low95"]
                    for g in games], float)
    ax.bar(x, pct, width, color=color, label=key)
    if np.isfinite(low).any():
        ax.errorbar(x, pct, yerr=[np.nan_to_num(pct - low), np.zeros_like(pct)], fmt="none", ecolor="black",
                    capsize=3, label=f"{key}: lower 95% bound")
    withheld = [per_game[g]["pct_withheld"] for g in games if per_game[g].get("pct_withheld")]
    if withheld:
        ax.text(0.5, 0.5, f"{key}: withheld ({withheld[0]})", transform=ax.transAxes, ha="center",
                wrap=True, fontsize=8)
    geometric = student["geometric"] or {}
    geo = geometric.get("geometric_mean_normalised_pct")
    if geo is not None:
        geo_low = geometric.get("geometric_mean_normalised_low95")
        ax.axhline(geo, linestyle="-.", color=color, label=f"{key}: geometric mean {geo:.0f}%"
                                                            + ("" if geo_low is None else f" (low {geo_low:.0f}%)"))
