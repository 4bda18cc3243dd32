"""## Learning curves: single-game students scored while they trained (`--eval-every`)."""

from __future__ import annotations

from atari_distill.ui.plots import Plots, series_key
from atari_distill.ui.report.axes import frame_lines, frame_y
from atari_distill.ui.report.curves import dodge, draw_curve, final_point, key_the_stars
from atari_distill.ui.report.runs import games_of, kinds_of
from atari_distill.ui.report.tables import table


def learning_section(runs: list[dict], plots: Plots) -> str:
    """Single-game students scored while they trained (`--eval-every`), a row of panels per game: score
    between the teacher and the random policy, and held-out agreement from 0 to 1 above the majority
    baseline. A multi-task student's curves are in curves_per_game.png."""
    curves = [(run, kind) for run in runs if run["kind"] != "multitask" for kind in kinds_of(run, evaluations=True)]
    if not curves:
        return ""
    games = list(dict.fromkeys(games_of(run["summary"], run["config"])[0] for run, _ in curves))
    panels = []
    for game in games:
        panels += [("updates", "score", f"{game}: score (shaded: 95% CI)"),
                   ("updates", "held-out action agreement", f"{game}: agreement with the teacher")]
    fig, axes = plots.grid("learning", "Students while training", panels, columns=2, size=(6.2, 3.6))
    rows = []
    for g, game in enumerate(games):
        here = [(run, kind) for run, kind in curves if games_of(run["summary"], run["config"])[0] == game]
        rows += _game_row(axes[2 * g], axes[2 * g + 1], game, here, plots)
    image = plots.save("learning", fig, axes)
    return (f"## Learning curves\n\n![learning]({image})\n\nA row per game. Dashed: the teacher's score on the "
            f"report seeds; dotted: the random policy's; the joined points play the selection seeds, the star "
            f"apart is the final student on the report seeds. Agreement runs from 0; its dotted line is the "
            f"majority-action baseline.\n\n"
            + table(["series", "game", "updates", "seeds", "mean score", "95% CI", "% of teacher", "agreement"], rows))


def _game_row(score_ax, agree_ax, game: str, here: list[tuple], plots: Plots) -> list[list]:
    """One game's score and agreement panels, a curve in each per (run, evaluation kind) in `here`."""
    shown, bands, frames, baselines, labels, rows = [], [], [], [], set(), []
    for index, (run, kind) in enumerate(here):
        summary = run["summary"]
        key = series_key(run["name"], kind)
        color = plots.color(key)
        points = [(m["updates"], m) for m in run["metrics"] if m.get("kind") == kind]
        final = final_point(summary, kind, game)
        drawn_y, drawn_bands, drawn = draw_curve(score_ax, points, final, color, key,
                                                 dodge(score_ax, index, len(here)))
        shown += drawn_y
        bands += drawn_bands
        agree = [(u, p["agreement"]) for u, p in points + final if p.get("agreement") is not None]
        if agree:  # the final student's on the same held-out frames as the curve's: one more point of it
            agree_ax.plot(*zip(*agree), marker="o", color=color, label=key)[0].set_transform(
                dodge(agree_ax, index, len(here)))
        frames.append({"key": key, "color": color, "teacher_score": summary.get("teacher_score"),
                       "random_score": summary.get("random_score")})
        if summary.get("majority_baseline") is not None:
            baselines.append((key, color, summary["majority_baseline"]))
        plots.count("learning", drawn)
        rows += [[key, game, u, seeds, p["score"], p.get("ci95"), p.get("pct_of_teacher"), p.get("agreement")]
                 for seeds, pairs in (("selection", points), ("report (final)", final)) for u, p in pairs]
    key_the_stars(score_ax)
    shown += frame_lines(score_ax, frames, labels)
    frame_y(score_ax, shown, bands)
    _majority_lines(agree_ax, baselines)
    agree_ax.set_ylim(0, 1)
    return rows


def _majority_lines(ax, baselines: list[tuple]) -> None:
    """The majority-action baseline: one grey line where every student shares one, else one each in its colour."""
    shared = len({round(b, 6) for _, _, b in baselines}) == 1
    for key, color, baseline in baselines[:1] if shared else baselines:
        ax.axhline(baseline, linestyle="-.", linewidth=1, color="grey" if shared else color,  # not the random policy's
                   label="majority-action baseline" if shared else f"{key}: majority-action baseline")
