"""`launch.py report`: report.md and PNG plots from one or more run directories.

Everything is read from the run directories (metrics.jsonl, summary.json, timeline.jsonl,
registry.json), never from a live run, so a report can be made on any machine from copied
runs. Each plot has a table in report.md with the numbers drawn in it. Games never share a
score axis: a plot over several games has a panel per game.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from atari_distill.rundir.directory import RunDir, RunDirError
from atari_distill.rundir.summary import Summary, kind_of_config
from atari_distill.ui.plots import MARKERS, Plots, series_key
from atari_distill.ui.summaries import rl_text, student_acted

BY_FRAMES = ("teacher", "online")


class ReportError(ValueError):
    pass


def load_run(path: str) -> dict:
    run = RunDir.open(path)
    config = run.read_config()
    summary = Summary.read(run.path, config) or Summary(kind_of_config(config), complete=False)
    return {"name": run.path.name, "path": str(run.path), "kind": summary.kind, "config": config,
            "summary": summary.as_dict(), "metrics": run.metrics(), "timeline": run.metrics("timeline.jsonl")}


def _fmt(value, digits: int = 1) -> str:
    """Counts with thousands separators, scores to one decimal, agreements and fractions to three."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.{3 if abs(value) < 1 else digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ratios(result: dict) -> list[str]:
    """Raw and normalised % of teacher, each with its lower 95% bound, or why they are withheld."""
    if result.get("pct_withheld"):
        return ["withheld", f"withheld ({result['pct_withheld'].split(':')[0]})"]
    cells = []
    for value, low in ((result.get("student_pct_of_teacher"), result.get("pct_low95")),
                       (result.get("normalised_pct"), result.get("normalised_low95"))):
        cells.append("n/a" if value is None else f"{value:.0f}% ({'n/a' if low is None else f'{low:.0f}%'})")
    return cells


RATIO_HEADER = ["% of teacher (low 95%)", "normalised % (low 95%)"]


def _series(metrics: list[dict], key: str, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    rows = [m for m in metrics if m.get(key) is not None and (kind is None or m.get("kind", "distill") == kind)]
    return np.array([m["updates"] for m in rows], float), np.array([m[key] for m in rows], float)


def _kinds(run: dict, evaluations: bool = False) -> list[str]:
    """The learners' record kinds, or (`evaluations`) the kinds of their periodic evaluations."""
    kinds = {m.get("kind", "distill") for m in run["metrics"]}
    return sorted(k for k in kinds if k.startswith("eval") == evaluations)


def _games(summary: dict, config: dict) -> list[str]:
    return summary.get("games") or [summary.get("game") or config.get("game")]


def students(run: dict) -> list[dict]:
    """Every student a run trained, in one shape whatever the run's kind: its series key, preset,
    parameters and own updates, and per game its results beside the frame they are read against
    (the teacher's and the random policy's scores on the report seeds, the majority baseline)."""
    summary, name = run["summary"], run["name"]
    if run["kind"] == "teacher":
        return []
    rows = summary.get("students") or ([summary] if summary.get("student_score") or summary.get("per_game") else [])
    games = _games(summary, run["config"])
    found = []
    for row in rows:
        per_game = {}
        for game in games:
            result = (row.get("per_game") or {}).get(game)
            frame = (summary.get("per_game") or {}).get(game) or {}
            if result and result.get("student_score"):
                per_game[game] = {**result, **{k: frame.get(k) for k in ("teacher_score", "random_score",
                                                                         "majority_baseline", "teacher_fingerprint")}}
        found.append({"key": series_key(name, row.get("checkpoint_series") or "student"), "run": run,
                      "preset": row.get("student"), "loss": row.get("loss"), "params": row.get("student_params"),
                      "updates": row.get("student_updates", row.get("updates")), "per_game": per_game,
                      "geometric": row if len(games) > 1 else None, "best": (row.get("rl") or {}).get("best")})
    return found


def series_keys(runs: list[dict]) -> list[str]:
    """Every series of the report in the order the runs were named: a run's DQN, then its students."""
    keys = []
    for run in runs:
        if run["kind"] in BY_FRAMES:
            keys.append(series_key(run["name"], "dqn"))
        keys += [s["key"] for s in students(run)]
        keys += [series_key(run["name"], kind) for kind in _kinds(run) + _kinds(run, evaluations=True)]
    return keys


def _frame_lines(ax, frames: list[dict], labels: set) -> list[float]:
    """The teacher's (dashed) and random policy's (dotted) scores across a panel; returns the values
    drawn. One black line when every student there shares one, else one per student in its colour."""
    drawn = []
    for which, style, colour in (("random_score", ":", "grey"), ("teacher_score", "--", "black")):  # teacher on top
        values = {(f["key"], f["color"]): f[which]["mean"] for f in frames if f.get(which)}
        if not values:
            continue
        shared = len({round(v, 6) for v in values.values()}) == 1
        name = "teacher" if which == "teacher_score" else "random policy"
        for (key, color), value in (list(values.items())[:1] if shared else values.items()):
            label = f"{name} (report seeds)" if shared else f"{key}: {name}"
            ax.axhline(value, linestyle=style, color=colour if shared else color,
                       label=label if label not in labels else "_" + label)
            labels.add(label)
            drawn.append(value)
    return drawn


def _thousands(axis) -> None:
    """Frames and updates as 250k, 1.5M: five ticks that never run into each other."""
    import matplotlib.ticker as ticker

    axis.set_major_locator(ticker.MaxNLocator(5))
    axis.set_major_formatter(ticker.EngFormatter(sep=""))


MAX_STRETCH = 3.0  # intervals may widen an axis to this many times what the means and baselines need


def _frame_y(ax, values: list[float], intervals: list[float] = ()) -> None:
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


def loss_section(runs: list[dict], plots: Plots) -> str:
    rows, series = [], []
    for run in runs:
        for kind in _kinds(run):
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
    for run, kind, x, y in series:
        ax = axes[-1] if kind == "dqn" else axes[0]
        key = series_key(run["name"], kind)
        ax.plot(x, y, color=plots.color(key), label=key, marker="o" if len(x) < 3 else None)  # one point shows
        plots.count("loss", len(x))
        rows.append([key, int(x[0]), f"{y[0]:.4f}", int(x[-1]), f"{y[-1]:.4f}", f"{y.min():.4f}"])
    image = plots.save("loss", fig, axes)
    return (f"## Loss\n\n![loss]({image})\n\n" if image else "## Loss\n\n") + _table(
        ["series", "first update", "first loss", "last update", "last loss", "lowest loss"], rows)


def score_section(runs: list[dict], plots: Plots) -> str:
    """Every score with its 95% CI, a panel per game: students (their final report-seed scores) beside
    their teacher and the random policy; DQN checkpoints and online students over frames."""
    every = [s for run in runs for s in students(run)]
    student_games = list(dict.fromkeys(g for s in every for g in s["per_game"]))
    dqn_runs = [r for r in runs if r["kind"] in BY_FRAMES and r["summary"].get("evaluations")]
    frame_games = list(dict.fromkeys(_games(r["summary"], r["config"])[0] for r in dqn_runs))
    panels = ([("", "score", f"{g}: students (report seeds)") for g in student_games]
              + [("frames", "score", f"{g}: DQN checkpoints and online students") for g in frame_games])
    if not panels:
        return ""
    fig, axes = plots.grid("scores", "Scores (bars: 95% CI)", panels)
    rows = []
    for ax, game in zip(axes, student_games):
        here = [s for s in every if game in s["per_game"]]
        shown = []
        for i, s in enumerate(here):
            result, color = s["per_game"][game], plots.color(s["key"])
            score = result["student_score"]
            ax.errorbar([i], [score["mean"]], yerr=[score.get("ci95") or 0], fmt=MARKERS[i % len(MARKERS)],
                        capsize=4, color=color, label=s["key"])
            shown.append(score["mean"])
            for which, colour, name in (("random_score", "grey", "random policy"), ("teacher_score", "black", "teacher")):
                if result.get(which):  # its own teacher's and random policy's score, on its own episodes
                    ax.hlines(result[which]["mean"], i - 0.3, i + 0.3, colors=colour, linewidth=2,
                              label=f"{name} (report seeds)" if i == 0 else "_")
                    shown.append(result[which]["mean"])
            plots.count("scores", 1)
            rows.append([s["key"], game, s["updates"], score["mean"], score.get("ci95"), score.get("episodes"),
                         (result.get("teacher_score") or {}).get("mean"), (result.get("random_score") or {}).get("mean")])
            best = s.get("best")
            if best and len(s["per_game"]) == 1:  # --rl-weight: its best curve point, chosen on selection seeds
                played = best["student_score"]
                ax.errorbar([i + 0.15], [played["mean"]], yerr=[played.get("ci95") or 0], fmt="*", markersize=11,
                            capsize=4, color=color, label=f"{s['key']}: best checkpoint on report seeds")
                shown.append(played["mean"])
                rows.append([f"{s['key']} (best, update {best['updates']:,})", game, best["updates"], played["mean"],
                             played.get("ci95"), played.get("episodes"),
                             (result.get("teacher_score") or {}).get("mean"), (result.get("random_score") or {}).get("mean")])
        ax.set_xticks(range(len(here)), [textwrap.fill(s["key"], 10) for s in here], fontsize=8)
        ax.set_xlim(-0.6, len(here) - 0.4)
        _frame_y(ax, shown)
    for ax, game in zip(axes[len(student_games):], frame_games):
        shown, frames, labels = [], [], set()
        for run in (r for r in dqn_runs if _games(r["summary"], r["config"])[0] == game):
            summary, name = run["summary"], run["name"]
            dqn_key = series_key(name, "dqn")
            color = plots.color(dqn_key)
            history = [e for e in summary.get("evaluations", []) if e.get("score") is not None]
            if history:
                x = np.array([e["frames"] for e in history], float)
                y = np.array([e["score"] for e in history], float)
                ax.errorbar(x, y, yerr=[e.get("ci95") or 0.0 for e in history], fmt="o", capsize=3, color=color,
                            label=f"{dqn_key} checkpoints (selection seeds)")
                ax.step(x, np.maximum.accumulate(y), where="post", linestyle="--", color=color,
                        label=f"{dqn_key}: best so far")
                plots.count("scores", len(x))
                shown += list(y)
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
            final = summary.get("student_score") if run["kind"] == "online" else summary.get("best_report_score")
            if final and final.get("mean") is not None:
                best_frames = (summary.get("best") or {}).get("frames")
                x_end = (summary.get("frames") if run["kind"] == "online" else best_frames) or (
                    history[-1]["frames"] if history else 0)
                final_color = student_color if run["kind"] == "online" else color
                ax.errorbar([x_end], [final["mean"]], yerr=[final.get("ci95") or 0], fmt="*", markersize=11,
                            capsize=4, color=final_color,
                            label=f"{name}: {'student' if run['kind'] == 'online' else 'best checkpoint'} on report seeds")
                shown.append(final["mean"])
            frames.append({"key": dqn_key, "color": color, "random_score": summary.get("random_score"),
                           "teacher_score": summary.get("teacher_score") if run["kind"] == "online" else None})
        shown += _frame_lines(ax, frames, labels)
        _frame_y(ax, shown)
        _thousands(ax.xaxis)
        ax.set_xlim(left=0)
    image = plots.save("scores", fig, axes)
    return ((f"## Scores\n\n![scores]({image})\n\n" if image else "## Scores\n\n")
            + "A panel per game. Students: their final score on the report seeds, beside their teacher's (black "
              "bar) and the random policy's (grey bar) on the same run's episodes; a star beside one that learnt "
              "from the reward too (--rl-weight) is its best curve point, chosen on the selection seeds, played on "
              "the report seeds. DQN runs: each checkpoint's score on the selection seeds over frames; "
              "the star is the score stated in the summary, on the report seeds, the dotted line the random "
              "policy's on those seeds.\n\n"
            + _table(["series", "game", "updates or frames", "mean score", "95% CI", "episodes", "teacher", "random"],
                     rows))


FINAL_STAR = "star: the final student (report seeds)"


def _draw_curve(ax, points: list, final: list, color: str, key: str, shift) -> tuple[list, list, int]:
    """A learning curve: its selection-seed points joined, with a 95% band (a bar at a lone point), and
    the final student's report-seed score apart as a star with its CI (other seeds, so not one more
    point of the line). `shift`: the transform that sets this series a little apart (`_dodge`).
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


DODGE_STEP_PT, DODGE_SPREAD_PT = 8.0, 20.0  # two 12-point stars stay told apart; the spread stays inside the
# axes' 5% margin


def _dodge(ax, index: int, count: int):
    """The transform that draws series `index` of the `count` in a panel a few points left or right of
    its x: students scored at the same updates (a sweep's, two runs') would hide one another's points,
    stars and bars. Set on artists already drawn, so the axis limits still come from the data; the
    tables keep the true x."""
    from matplotlib.transforms import offset_copy

    step = min(DODGE_STEP_PT, DODGE_SPREAD_PT / max(count - 1, 1))
    return offset_copy(ax.transData, fig=ax.figure, x=(index - (count - 1) / 2) * step, y=0, units="points")


def _key_the_stars(ax) -> None:
    """One legend entry says what a star is, once per panel that has one (Plots.save lists such keys
    after every series)."""
    if any(line.get_marker() == "*" for line in ax.lines):
        ax.plot([], [], marker="*", markersize=10, linestyle="none", color="black", label=FINAL_STAR)


def _final_point(summary: dict, kind: str, game: str) -> list:
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


def learning_section(runs: list[dict], plots: Plots) -> str:
    """Single-game students scored while they trained (`--eval-every`), a row of panels per game: score
    between the teacher and the random policy, and held-out agreement from 0 to 1 above the majority
    baseline. A multi-task student's curves are in curves_per_game.png."""
    curves = [(run, kind) for run in runs if run["kind"] != "multitask" for kind in _kinds(run, evaluations=True)]
    if not curves:
        return ""
    games = list(dict.fromkeys(_games(run["summary"], run["config"])[0] for run, _ in curves))
    panels = []
    for game in games:
        panels += [("updates", "score", f"{game}: score (95% CI)"),
                   ("updates", "held-out action agreement", f"{game}: agreement with the teacher")]
    fig, axes = plots.grid("learning", "Students while training", panels, columns=2, size=(6.2, 3.6))
    rows = []
    for g, game in enumerate(games):
        score_ax, agree_ax = axes[2 * g], axes[2 * g + 1]
        shown, bands, frames, baselines, labels = [], [], [], [], set()
        here = [(run, kind) for run, kind in curves if _games(run["summary"], run["config"])[0] == game]
        for index, (run, kind) in enumerate(here):
            summary = run["summary"]
            key = series_key(run["name"], kind)
            color = plots.color(key)
            points = [(m["updates"], m) for m in run["metrics"] if m.get("kind") == kind]
            final = _final_point(summary, kind, game)
            drawn_y, drawn_bands, drawn = _draw_curve(score_ax, points, final, color, key,
                                                      _dodge(score_ax, index, len(here)))
            shown += drawn_y
            bands += drawn_bands
            agree = [(u, p["agreement"]) for u, p in points + final if p.get("agreement") is not None]
            if agree:  # the final student's on the same held-out frames as the curve's: one more point of it
                agree_ax.plot(*zip(*agree), marker="o", color=color, label=key)[0].set_transform(
                    _dodge(agree_ax, index, len(here)))
            frames.append({"key": key, "color": color, "teacher_score": summary.get("teacher_score"),
                           "random_score": summary.get("random_score")})
            if summary.get("majority_baseline") is not None:
                baselines.append((key, color, summary["majority_baseline"]))
            plots.count("learning", drawn)
            rows += [[key, game, u, "selection", p["score"], p.get("ci95"), p.get("pct_of_teacher"), p.get("agreement")]
                     for u, p in points]
            rows += [[key, game, u, "report (final)", p["score"], p.get("ci95"), p.get("pct_of_teacher"),
                      p.get("agreement")] for u, p in final]
        _key_the_stars(score_ax)
        shown += _frame_lines(score_ax, frames, labels)
        _frame_y(score_ax, shown, bands)
        shared = len({round(b, 6) for _, _, b in baselines}) == 1
        for key, color, baseline in baselines[:1] if shared else baselines:
            agree_ax.axhline(baseline, linestyle=":", color="grey" if shared else color,
                             label="majority-action baseline" if shared else f"{key}: majority-action baseline")
        agree_ax.set_ylim(0, 1)
    image = plots.save("learning", fig, axes)
    return (f"## Learning curves\n\n![learning]({image})\n\nA row per game. Dashed: the teacher's score on the "
            f"report seeds; dotted: the random policy's; the joined points play the selection seeds, the star "
            f"apart is the final student on the report seeds. Agreement runs from 0; its dotted line is the "
            f"majority-action baseline.\n\n"
            + _table(["series", "game", "updates", "seeds", "mean score", "95% CI", "% of teacher", "agreement"], rows))


def throughput_section(runs: list[dict], plots: Plots) -> str:
    fig, (update_ax, labelled_ax) = plots.figure(
        "throughput", "Throughput", ("elapsed seconds", "learner updates/s", "Learner"),
        ("elapsed seconds", "labelled steps/s", "Teacher actors (over five records)"))
    rows = []
    for run in runs:
        for kind in _kinds(run):
            records = [m for m in run["metrics"] if m.get("kind", "distill") == kind and m.get("elapsed_s")]
            if not records:
                continue
            key = series_key(run["name"], kind)
            color = plots.color(key)
            elapsed = np.array([m["elapsed_s"] for m in records], float)
            updates = np.array([m.get("updates_per_s", np.nan) for m in records], float)
            update_ax.plot(elapsed, updates, color=color, label=key, marker="o" if len(elapsed) < 3 else None)
            plots.count("throughput", len(elapsed))
            labelled = np.array([m.get("labelled_steps", np.nan) for m in records], float)
            rate = None
            if np.isfinite(labelled).sum() >= 2 and not any(m.get("from_dataset") for m in records):
                lag = min(5, len(labelled) - 1)  # chunks land in bursts: a rate over five records, not one
                rates = (labelled[lag:] - labelled[:-lag]) / np.maximum(elapsed[lag:] - elapsed[:-lag], 1e-9)
                labelled_ax.plot(elapsed[lag:], rates, color=color, label=key)
                rate = float((labelled[-1] - labelled[0]) / max(elapsed[-1] - elapsed[0], 1e-9))
            rows.append([key, float(np.nanmean(updates)), rate, float(elapsed[-1])])
    image = plots.save("throughput", fig, [update_ax, labelled_ax])
    return (f"## Throughput\n\n![throughput]({image})\n\n" if image else "## Throughput\n\n") + _table(
        ["series", "mean updates/s", "mean labelled steps/s", "elapsed s"], rows)


def multitask_section(runs: list[dict], plots: Plots) -> str:
    """Each multi-task student (a sweep's each) per game: normalised % of teacher with its lower bound,
    and agreement above the majority baseline."""
    multi = [s for run in runs if run["kind"] == "multitask" for s in students(run) if s["per_game"]]
    if not multi:
        return ""
    fig, (pct_ax, agree_ax) = plots.figure(
        "per_game", "Multi-task: per game", ("game", "normalised % of teacher", "Score (0: random policy, 100: "
                                                                                "teacher; bars to the lower 95% bound)"),
        ("game", "held-out action agreement", "Agreement (hatched: majority-action baseline)"))
    rows, width = [], 0.8 / len(multi)
    pct_ax.axhline(100, linestyle="--", color="black", label="teacher")
    pct_ax.axhline(0, linestyle=":", color="grey", label="random policy")
    for i, student in enumerate(multi):
        per_game, key = student["per_game"], student["key"]
        games = list(per_game)
        color = plots.color(key)
        x = np.arange(len(games)) + i * width
        pct = np.array([np.nan if per_game[g].get("normalised_pct") is None else per_game[g]["normalised_pct"]
                        for g in games], float)
        low = np.array([np.nan if per_game[g].get("normalised_low95") is None else per_game[g]["normalised_low95"]
                        for g in games], float)
        pct_ax.bar(x, pct, width, color=color, label=key)
        if np.isfinite(low).any():
            pct_ax.errorbar(x, pct, yerr=[np.nan_to_num(pct - low), np.zeros_like(pct)], fmt="none", ecolor="black",
                            capsize=3, label=f"{key}: lower 95% bound")
        withheld = [per_game[g]["pct_withheld"] for g in games if per_game[g].get("pct_withheld")]
        if withheld:
            pct_ax.text(0.5, 0.5, f"{key}: withheld ({withheld[0]})", transform=pct_ax.transAxes, ha="center",
                        wrap=True, fontsize=8)
        geometric = student["geometric"] or {}
        geo = geometric.get("geometric_mean_normalised_pct")
        if geo is not None:
            geo_low = geometric.get("geometric_mean_normalised_low95")
            pct_ax.axhline(geo, linestyle="-.", color=color, label=f"{key}: geometric mean {geo:.0f}%"
                                                                   + ("" if geo_low is None else f" (low {geo_low:.0f}%)"))
        agree_ax.bar(x, [per_game[g]["action_agreement"] for g in games], width, color=color, label=key)
        agree_ax.bar(x, [per_game[g].get("majority_baseline") or 0 for g in games], width, fill=False, hatch="//",
                     edgecolor="black")
        agree_ax.set_ylim(0, 1)
        for ax in (pct_ax, agree_ax):
            ax.set_xticks(np.arange(len(games)) + 0.4 - width / 2, games, rotation=30 if len(games) > 4 else 0,
                          ha="right" if len(games) > 4 else "center")
        plots.count("per_game", len(games))
        rows += [[key, g, *_ratios(per_game[g]), per_game[g]["action_agreement"],
                  per_game[g].get("majority_baseline")] for g in games]
        rows.append([key, "geometric mean", *_ratios({
            "student_pct_of_teacher": geometric.get("geometric_mean_pct_of_teacher"),
            "pct_low95": geometric.get("geometric_mean_pct_low95"), "normalised_pct": geo,
            "normalised_low95": geometric.get("geometric_mean_normalised_low95")}),
            geometric.get("mean_action_agreement"), None])
    image = plots.save("per_game", fig, [pct_ax, agree_ax])
    return f"## Multi-task\n\n![per game]({image})\n\n" + _table(
        ["series", "game", *RATIO_HEADER, "action agreement", "majority baseline"], rows)


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
        shown, bands = [], []
        here = [(run, kind) for run in multi if game in run["summary"]["per_game"]
                for kind in _kinds(run, evaluations=True)]
        for index, (run, kind) in enumerate(here):
            key = series_key(run["name"], kind)
            points = [(m["updates"], m["per_game"][game]) for m in run["metrics"]
                      if m.get("kind") == kind and game in (m.get("per_game") or {})]
            drawn_y, drawn_bands, drawn = _draw_curve(ax, points, _final_point(run["summary"], kind, game),
                                                      plots.color(key), key, _dodge(ax, index, len(here)))
            plots.count("curves_per_game", drawn)
            shown += drawn_y
            bands += drawn_bands
        _key_the_stars(ax)
        per_game = next(r for r in multi if game in r["summary"]["per_game"])["summary"]["per_game"]
        teacher, random = per_game[game]["teacher_score"], per_game[game].get("random_score")
        ax.axhline(teacher["mean"], linestyle="--", color="black", label="teacher")
        shown.append(teacher["mean"])
        if random:
            ax.axhline(random["mean"], linestyle=":", color="grey", label="random policy")
            shown.append(random["mean"])
        _frame_y(ax, shown, bands)
    image = plots.save("curves_per_game", fig, axes)
    return (f"## Multi-task learning curves, per game\n\n![curves per game]({image})\n\nEach panel is one game: "
            f"the student's score on the selection seeds while it trained, its final score on the report seeds "
            f"(the star, apart from the curve), "
            f"and the teacher (dashed) and random policy (dotted) on the report seeds.\n") if image else ""


def compression_section(runs: list[dict], plots: Plots) -> str:
    """Students' size against their score, a panel per game: normalised % of teacher (0: random policy,
    100: teacher) with a bar down to its lower 95% bound; where a game's teacher does not beat the
    random policy, held-out agreement above the majority baseline instead, and the panel says so."""
    import matplotlib.ticker as ticker

    points = [(s, game) for run in runs if run["kind"] != "multitask" for s in students(run)
              for game in s["per_game"] if s["params"]]
    if len(points) < 2:
        return ""
    games = list(dict.fromkeys(game for _, game in points))
    results = {g: [s["per_game"][g] for s, game in points if game == g] for g in games}
    scored = {g: any(r.get("normalised_pct") is not None for r in results[g]) for g in games}  # per game
    why = {g: "% withheld: too few episodes" if all(r.get("pct_withheld") for r in results[g])
           else "no normalised %: teacher not above random, or no random score" for g in games}
    fig, axes = plots.grid("compression", "Compression: student size against score", [
        ("student parameters (thousands)", "normalised % of teacher" if scored[g] else "held-out action agreement (%)",
         f"{g}" + ("" if scored[g] else f": agreement ({why[g]})")) for g in games])
    rows, runs_named = [], list(dict.fromkeys(s["run"]["name"] for s, _ in points))
    for ax, game in zip(axes, games):
        here = sorted(((s, s["per_game"][game]) for s, g in points if g == game), key=lambda p: p[0]["params"])
        xs, withheld = [], []
        for s, result in here:
            x = float(s["params"])
            while any(abs(x / other - 1) < 0.04 for other in xs):  # a point never hides another of the same size
                x *= 1.06
            xs.append(x)
            marker = MARKERS[runs_named.index(s["run"]["name"]) % len(MARKERS)]
            rows.append([s["key"], game, s["preset"], s["params"], *_ratios(result), result.get("action_agreement"),
                         result.get("majority_baseline")])
            if scored[game]:
                if result.get("normalised_pct") is None:  # named under the panel, not moved to another scale
                    withheld.append(f"{s['key']} ({result['pct_withheld'].split(':')[0]})" if result.get("pct_withheld")
                                    else f"{s['key']} (no normalised %)")
                    continue
                y, low = result["normalised_pct"], result.get("normalised_low95")
            else:
                y, low = 100 * result["action_agreement"], None
            ax.errorbar([x], [y], yerr=[[0 if low is None else max(0.0, y - low)], [0]], fmt=marker, capsize=4,
                        markersize=7, color=plots.color(s["key"]), label=f"{s['key']} ({s['preset']})")
            plots.count("compression", 1)
        if scored[game]:
            ax.axhline(100, linestyle="--", color="black", label="teacher")
            ax.axhline(0, linestyle=":", color="grey", label="random policy")
        else:
            baseline = here[0][1].get("majority_baseline")
            if baseline is not None:
                ax.axhline(100 * baseline, linestyle=":", color="grey", label="majority-action baseline")
            ax.set_ylim(0, 100)
        if withheld:
            ax.text(0.5, -0.2, "not drawn: " + ", ".join(withheld), transform=ax.transAxes, fontsize=7,
                    ha="center", va="top", wrap=True)
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    image = plots.save("compression", fig, axes)
    return ((f"## Compression\n\n![compression]({image})\n\n" if image else "## Compression\n\n")
            + "A panel per game; bars run down to the lower 95% bound. Points of one size are drawn a little apart.\n\n"
            + _table(["series", "game", "student", "parameters", *RATIO_HEADER, "action agreement", "majority baseline"],
                     rows))


def _params(preset: str | None, game: str) -> int | None:
    """A DQN's parameters from its preset, for teacher runs whose summary does not state them."""
    from atari_distill.actors.games import game_spec
    from atari_distill.models.networks import QNetwork, parameter_count

    try:
        return parameter_count(QNetwork(preset, {game: game_spec(game).num_actions}))
    except (KeyError, ValueError):
        return None


def summary_section(runs: list[dict]) -> str:
    """A row per student (a sweep's each, an online run's own, a multi-task student with its geometric
    mean) and per DQN, with the updates that series itself made."""
    rows = []
    for run in runs:
        s = run["summary"]
        common = [run["kind"], s.get("complete")]
        if run["kind"] in BY_FRAMES:
            best = s.get("best_report_score") or (s.get("teacher_score") if run["kind"] == "online" else None) or {}
            game, preset = _games(s, run["config"])[0], s.get("preset") or run["config"].get("preset")
            rows.append([series_key(run["name"], "dqn"), *common, game, preset,
                         s.get("teacher_params") or _params(preset, game), s.get("updates"), best.get("mean"), best.get("ci95"),
                         None, (s.get("random_score") or {}).get("mean"), "n/a", "n/a", None, s.get("wall_s")])
        if run["kind"] not in BY_FRAMES and not any(st["per_game"] for st in students(run)):
            updates = max((m.get("updates", 0) for m in run["metrics"] if not m.get("kind", "").startswith("eval")),
                          default=None)  # stopped or still running: no final scores yet, but how far it got
            rows.append([run["name"], *common, ", ".join(g for g in _games(s, run["config"]) if g),
                         s.get("student") or run["config"].get("student"), s.get("student_params"), updates,
                         "not scored", None, None, None, "n/a", "n/a", None, s.get("wall_s")])
            continue
        for student in students(run):
            games = list(student["per_game"])
            if len(games) == 1:
                r = student["per_game"][games[0]]
                rows.append([student["key"], *common, games[0], student["preset"], student["params"], student["updates"],
                             r["student_score"]["mean"], r["student_score"].get("ci95"),
                             (r.get("teacher_score") or {}).get("mean"), (r.get("random_score") or {}).get("mean"),
                             *_ratios(r), r.get("action_agreement"), s.get("wall_s")])
            else:
                g = student["geometric"] or {}
                geometric = _ratios({"student_pct_of_teacher": g.get("geometric_mean_pct_of_teacher"),
                                     "pct_low95": g.get("geometric_mean_pct_low95"),
                                     "normalised_pct": g.get("geometric_mean_normalised_pct"),
                                     "normalised_low95": g.get("geometric_mean_normalised_low95")})
                rows.append([student["key"], *common, f"{len(games)} games (geometric mean)", student["preset"],
                             student["params"], student["updates"], "per game: see Multi-task", None, None, None,
                             *geometric, g.get("mean_action_agreement"), s.get("wall_s")])
    return "## Runs\n\n" + _table(["series", "kind", "complete", "game", "network", "parameters", "updates",
                                   "score", "95% CI", "teacher score", "random score", *RATIO_HEADER,
                                   "action agreement", "wall s"], rows)


def watch_section(runs: list[dict], out_dir: Path) -> str:
    """The still `launch.py watch` left in a run directory (student and teacher on the same episode start)."""
    import shutil

    lines = []
    for index, r in enumerate(runs, 1):
        still = Path(r["path"]) / "watch.png"
        if still.is_file():
            name = f"watch-{index}-{r['name']}.png"  # two runs may share a folder name
            shutil.copyfile(still, out_dir / name)
            video = next((v.name for v in (Path(r["path"]) / "watch.mp4", Path(r["path"]) / "watch.gif")
                          if v.is_file()), None)
            lines.append(f"![{r['name']}: student beside teacher]({name})" + (
                f"\n\n{r['name']}: a frame from the middle of `{r['path']}/{video}`" if video else ""))
    return "## Watch: student and teacher on the same episode start\n\n" + "\n\n".join(lines) if lines else ""


def _driven(summary: dict) -> str:
    """Who acted while the teacher labelled, where it was not the teacher alone (--behaviour)."""
    if summary.get("behaviour", "teacher") == "teacher":
        return ""
    acted = student_acted(summary)
    share = f": the student chose {100 * acted[0] / acted[1]:.0f}% of the labelled steps" if acted else ""
    return f", --behaviour {summary['behaviour']}{share}"


def _learnt_from_reward(run: dict) -> str:
    """Its students that learnt from the reward too (--rl-weight), each a line under the run's."""
    return "".join(f"\n  - {row['student']}/{row['loss']}: {rl_text(row['rl'])}"
                   for row in run["summary"].get("students", []) if row.get("rl"))


def write_report(paths: list[str], out: str) -> dict:
    """Returns {"report": path, "plots": {name: points drawn}}."""
    if not paths:
        raise ReportError("give at least one run directory")
    try:
        runs = [load_run(p) for p in paths]
        names = [r["name"] for r in runs]
        for index, run in enumerate(runs, 1):  # two runs of one folder name (seeds in three parents) stay apart
            if names.count(run["name"]) > 1:
                run["name"] = f"{Path(run['path']).parent.name}/{run['name']} ({index})"
    except RunDirError as error:
        raise ReportError(str(error)) from None
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = Plots(out_dir)
    plots.assign(series_keys(runs))
    protocols: dict[str, list[str]] = {}
    for r in runs:
        if r["summary"].get("eval_protocol"):
            protocols.setdefault(r["summary"]["eval_protocol"], []).append(r["name"])
    sections = [
        "# Report\n\n" + "\n".join(f"- `{r['path']}` ({r['kind']}{_driven(r['summary'])})" + _learnt_from_reward(r)
                                    for r in runs)
        + "".join(f"\n\nEvaluation protocol of {', '.join(names)}: {p}." for p, names in protocols.items()),
        summary_section(runs), loss_section(runs, plots), score_section(runs, plots), learning_section(runs, plots),
        throughput_section(runs, plots), multitask_section(runs, plots), game_curves_section(runs, plots),
        compression_section(runs, plots), watch_section(runs, out_dir),
    ]
    report = out_dir / "report.md"
    report.write_text("\n\n".join(s for s in sections if s) + "\n")
    return {"report": str(report), "plots": dict(plots.drawn), "artists": plots.artists, "legends": plots.legends}
