"""## Multi-task learning curves, per game: a panel per game, each on its own score axis."""

from __future__ import annotations

from atari_distill.ui.plots import Plots, series_key
from atari_distill.ui.report.axes import frame_y
from atari_distill.ui.report.curves import dodge, draw_curve, final_point, key_the_stars
from atari_distill.ui.report.runs import kinds_of


def game_curves_section(runs: list[dict], plots: Plots) -> str:
    """A multi-task student's learning curve per game, each on its own axis (the games' scores differ by
    orders of magnitude), between its teacher's and the random policy's scores on the report seeds."""
    multi = [r for r in runs if r["kind"] == "multitask" and r["summary"].get("per_game")
             and any(m.get("kind", "").startswith("eval") for m in r["metrics"])]
    if not multi:
        return ""
    games = list(dict.fromkeys(g for r in multi for g in r["summary"]["per_game"]))
    fig, axes = plots.grid("curves_per_game", "Score while training, per game\n(band, or bar at a lone point: 95% "
                                              "CI; star: the final student, report seeds)",
                           [("updates", "score", game) for game in games])
    for ax, game in zip(axes, games):
        _game_panel(ax, game, multi, plots)
    image = plots.save("curves_per_game", fig, axes)
    return (f"## Multi-task learning curves, per game\n\n![curves per game]({image})\n\nEach panel is one game: "
            f"the student's score on the selection seeds while it trained, its final score on the report seeds "
            f"(the star, apart from the curve), "
            f"and the teacher (dashed) and random policy (dotted) on the report seeds.\n") if image else ""


def _game_panel(ax, game: str, multi: list[dict], plots: Plots) -> None:
    shown, bands = [], []
    here = [(run, kind) for run in multi if game in run["summary"]["per_game"]
            for kind in kinds_of(run, evaluations=True)]
    for index, (run, kind) in enumerate(here):
        key = series_key(run["name"], kind)
        points = [(m["updates"], m["per_game"][game]) for m in run["metrics"]
                  if m.get("kind") == kind and game in (m.get("per_game") or {})]
        drawn_y, drawn_bands, drawn = draw_curve(ax, points, final_point(run["summary"], kind, game),
                                                 plots.color(key), key, dodge(ax, index, len(here)))
        plots.count("curves_per_game", drawn)
        shown += drawn_y
        bands += drawn_bands
    key_the_stars(ax)
    per_game = next(r for r in multi if game in r["summary"]["per_game"])["summary"]["per_game"]
    teacher, random = per_game[game]["teacher_score"], per_game[game].get("random_score")
    ax.axhline(teacher["mean"], linestyle="--", color="black", label="teacher")
    shown.append(teacher["mean"])
    if random:
        ax.axhline(random["mean"], linestyle=":", color="grey", label="random policy")
        shown.append(random["mean"])
    frame_y(ax, shown, bands)
