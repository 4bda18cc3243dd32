"""## Scores: every score with its 95% CI, a panel per game; students at the end of training, DQN
checkpoints and online students over frames."""

from __future__ import annotations

import textwrap

import numpy as np

from atari_distill.ui.plots import MARKERS, Plots, series_key
from atari_distill.ui.report.axes import frame_lines, frame_y, thousands
from atari_distill.ui.report.runs import BY_FRAMES, games_of, students
from atari_distill.ui.report.tables import table

ABOUT = ("A panel per game. Students: their final score on the report seeds, beside their teacher's (black "
         "bar) and the random policy's (grey bar) on the same run's episodes, each bar's 95% CI shaded beneath "
         "the student's marker; a star beside one that learnt "
         "from the reward too (--rl-weight) is its best curve point, chosen on the selection seeds, played on "
         "the report seeds. DQN runs: each checkpoint's score on the selection seeds over frames; "
         "the star is the score stated in the summary, on the report seeds, the dotted line the random "
         "policy's on those seeds.\n\n")


def score_section(runs: list[dict], plots: Plots) -> str:
    """Every score with its 95% CI, a panel per game: students (their final report-seed scores) beside
    their teacher and the random policy; DQN checkpoints and online students over frames."""
    every = [s for run in runs for s in students(run)]
    student_games = list(dict.fromkeys(g for s in every for g in s["per_game"]))
    dqn_runs = [r for r in runs if r["kind"] in BY_FRAMES and r["summary"].get("evaluations")]
    frame_games = list(dict.fromkeys(games_of(r["summary"], r["config"])[0] for r in dqn_runs))
    panels = ([("", "score", f"{g}: students (report seeds)") for g in student_games]
              + [("frames", "score", f"{g}: DQN checkpoints and online students") for g in frame_games])
    if not panels:
        return ""
    fig, axes = plots.grid("scores", "Scores (bars, and shading behind the teacher and random policy: 95% CI)", panels)
    rows = []
    for ax, game in zip(axes, student_games):
        rows += _students_panel(ax, game, [s for s in every if game in s["per_game"]], plots)
    for ax, game in zip(axes[len(student_games):], frame_games):
        rows += _frames_panel(ax, game, (r for r in dqn_runs if games_of(r["summary"], r["config"])[0] == game), plots)
    image = plots.save("scores", fig, axes)
    return ((f"## Scores\n\n![scores]({image})\n\n" if image else "## Scores\n\n") + ABOUT
            + table(["series", "game", "updates or frames", "mean score", "95% CI", "episodes", "teacher", "random"],
                    rows))


def _row(key: str, game: str, when, score: dict, result: dict) -> list:
    return [key, game, when, score["mean"], score.get("ci95"), score.get("episodes"),
            (result.get("teacher_score") or {}).get("mean"), (result.get("random_score") or {}).get("mean")]


def _students_panel(ax, game: str, here: list[dict], plots: Plots) -> list[list]:
    """A student per x, each beside its own teacher's and random policy's score on its own episodes."""
    rows, shown = [], []
    for i, s in enumerate(here):
        result, color = s["per_game"][game], plots.color(s["key"])
        score = result["student_score"]
        ax.errorbar([i], [score["mean"]], yerr=[score.get("ci95") or 0], fmt=MARKERS[i % len(MARKERS)],
                    capsize=4, color=color, label=s["key"], zorder=3)
        shown.append(score["mean"])
        for which, colour, name in (("random_score", "grey", "random policy"), ("teacher_score", "black", "teacher")):
            if result.get(which):  # beneath the student's marker, its 95% CI a faint box
                mean, ci = result[which]["mean"], result[which].get("ci95") or 0.0
                ax.hlines(mean, i - 0.3, i + 0.3, colors=colour, linewidth=1.5, zorder=2,
                          label=f"{name} (report seeds)" if i == 0 else "_")
                if ci:
                    ax.fill_between([i - 0.3, i + 0.3], mean - ci, mean + ci, color=colour, alpha=0.12, linewidth=0,
                                    zorder=1)
                shown += [mean - ci, mean, mean + ci]
        plots.count("scores", 1)
        rows.append(_row(s["key"], game, s["updates"], score, result))
        best = s.get("best")
        if best and len(s["per_game"]) == 1:  # --rl-weight: its best curve point, chosen on selection seeds
            played = best["student_score"]
            ax.errorbar([i + 0.15], [played["mean"]], yerr=[played.get("ci95") or 0], fmt="*", markersize=11,
                        capsize=4, color=color, label=f"{s['key']}: best checkpoint on report seeds")
            shown.append(played["mean"])
            rows.append(_row(f"{s['key']} (best, update {best['updates']:,})", game, best["updates"], played, result))
    ax.set_xticks(range(len(here)), [textwrap.fill(s["key"], 10) for s in here], fontsize=8)
    ax.set_xlim(-0.6, len(here) - 0.4)
    frame_y(ax, shown)
    return rows


def _frames_panel(ax, game: str, dqn_runs, plots: Plots) -> list[list]:
    """DQN runs on one game over frames: checkpoints, an online run's student, the final star."""
    shown, rows, frames, labels = [], [], [], set()
    for run in dqn_runs:
        summary, name = run["summary"], run["name"]
        dqn_key = series_key(name, "dqn")
        color = plots.color(dqn_key)
        history = [e for e in summary.get("evaluations", []) if e.get("score") is not None]
        if history:
            shown += _checkpoints(ax, history, dqn_key, color, plots)
            rows += [[dqn_key, game, int(e["frames"]), e["score"], e.get("ci95"), e.get("episodes"), None, None]
                     for e in history]
        student_color = plots.color(series_key(name, "student"))
        timeline = [r for r in summary.get("timeline", []) if r.get("student_score") is not None
                    and not r.get("final")]  # the final row is on the report seeds: the star
        if timeline:
            ax.plot([r["frames"] for r in timeline], [r["student_score"] for r in timeline], marker="s",
                    linestyle=":", color=student_color, label=f"{name}: student (selection seeds)")
            plots.count("scores", len(timeline))
            shown += [r["student_score"] for r in timeline]
            rows += [[f"{name} (student)", game, r["frames"], r["student_score"], None, None, None, None]
                     for r in timeline]
        shown += _final_star(ax, run, history, student_color if run["kind"] == "online" else color)
        frames.append({"key": dqn_key, "color": color, "random_score": summary.get("random_score"),
                       "teacher_score": summary.get("teacher_score") if run["kind"] == "online" else None})
    shown += frame_lines(ax, frames, labels)
    frame_y(ax, shown)
    thousands(ax.xaxis)
    ax.set_xlim(left=0)
    return rows


def _checkpoints(ax, history: list[dict], dqn_key: str, color: str, plots: Plots) -> list:
    """Each checkpoint's score on the selection seeds, and the best so far; returns the scores drawn."""
    x = np.array([e["frames"] for e in history], float)
    y = np.array([e["score"] for e in history], float)
    ax.errorbar(x, y, yerr=[e.get("ci95") or 0.0 for e in history], fmt="o", capsize=3, color=color,
                label=f"{dqn_key} checkpoints (selection seeds)")
    ax.step(x, np.maximum.accumulate(y), where="post", linestyle="--", color=color,
            label=f"{dqn_key}: best so far")
    plots.count("scores", len(x))
    return list(y)


def _final_star(ax, run: dict, history: list[dict], color: str) -> list:
    """The score the summary states, on the report seeds: an online run's student, else the best
    checkpoint; returns the score drawn, if any."""
    summary, online = run["summary"], run["kind"] == "online"
    final = summary.get("student_score") if online else summary.get("best_report_score")
    if not (final and final.get("mean") is not None):
        return []
    best_frames = (summary.get("best") or {}).get("frames")
    x_end = (summary.get("frames") if online else best_frames) or (history[-1]["frames"] if history else 0)
    ax.errorbar([x_end], [final["mean"]], yerr=[final.get("ci95") or 0], fmt="*", markersize=11,
                capsize=4, color=color,
                label=f"{run['name']}: {'student' if online else 'best checkpoint'} on report seeds")
    return [final["mean"]]
