"""`launch.py report`: report.md and PNG plots from one or more run directories.

Everything is read from the run directories (metrics.jsonl, summary.json, timeline.jsonl,
registry.json), never from a live run, so a report can be made on any machine from copied
runs. Each plot has a table in report.md with the numbers drawn in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.rundir import RunDir, RunDirError
from pipelines.summary import Summary, kind_of_config


class ReportError(ValueError):
    pass


def load_run(path: str) -> dict:
    run = RunDir.open(path)
    config = run.read_config()
    summary = Summary.read(run.path, config) or Summary(kind_of_config(config), complete=False)
    return {"name": run.path.name, "path": str(run.path), "kind": summary.kind, "config": config,
            "summary": summary.as_dict(), "metrics": run.metrics(), "timeline": run.metrics("timeline.jsonl")}


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
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


class Plots:
    """Draws into REPORT_DIR; remembers, per plot, how many points it drew and what each axis shows.

    A series (a run's learner, a run's game) keeps one colour in every plot of the report, and
    within a plot each labelled series has its own colour, line style and marker; every axis has
    one unit. `artists` records what was drawn so tests can check both.
    """

    def __init__(self, out: Path):
        import matplotlib

        matplotlib.use("Agg")
        self.out, self.drawn, self.artists = out, {}, {}
        self.colors: dict[str, str] = {}

    def color(self, key: str) -> str:
        import matplotlib

        if key not in self.colors:
            palette = matplotlib.colormaps["tab10" if len(self.colors) < 10 else "tab20"].colors
            self.colors[key] = matplotlib.colors.to_hex(palette[len(self.colors) % len(palette)])
        return self.colors[key]

    def figure(self, name: str, title: str, *axes: tuple[str, str, str]):
        """A figure with one panel per (xlabel, ylabel, panel title)."""
        import matplotlib.pyplot as plt

        fig, panels = plt.subplots(1, len(axes), figsize=(6.5 * len(axes), 4), dpi=100, squeeze=False)
        for ax, (xlabel, ylabel, panel_title) in zip(panels[0], axes):
            ax.set(xlabel=xlabel, ylabel=ylabel, title=panel_title)
            ax.grid(alpha=0.3)
        if len(axes) > 1:
            fig.suptitle(title)
        else:
            panels[0][0].set_title(title)
        self.drawn[name] = 0
        return fig, list(panels[0])

    def grid(self, name: str, title: str, panels: list[tuple[str, str, str]], columns: int = 5):
        """A figure of small panels, one per (xlabel, ylabel, panel title), `columns` to a row."""
        import matplotlib.pyplot as plt

        rows = -(-len(panels) // columns)
        columns = min(columns, len(panels))
        fig, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), dpi=100, squeeze=False)
        axes = list(grid.flat)
        for ax, (xlabel, ylabel, panel_title) in zip(axes, panels):
            ax.set(xlabel=xlabel, ylabel=ylabel, title=panel_title)
            ax.grid(alpha=0.3)
        for ax in axes[len(panels):]:
            ax.axis("off")
        fig.suptitle(title)
        self.drawn[name] = 0
        return fig, axes[:len(panels)]

    def count(self, name: str, points: int) -> None:
        self.drawn[name] += int(points)

    def save(self, name: str, fig, axes, legends: int | None = None) -> str | None:
        """Writes NAME.png, with a legend on the first `legends` panels (all by default)."""
        import matplotlib.pyplot as plt

        if self.drawn[name] == 0:
            plt.close(fig)
            del self.drawn[name]
            return None
        self.artists[name] = []
        for k, ax in enumerate(axes):
            series = []
            for artist in [*ax.lines, *ax.collections, *ax.containers]:
                label = artist.get_label()
                if not label or label.startswith("_"):
                    continue
                series.append({"label": label, **_style(artist)})
            self.artists[name].append({"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(), "series": series})
            if series and (legends is None or k < legends):
                ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.out / f"{name}.png")
        plt.close(fig)
        return f"{name}.png"


def _style(artist) -> dict:
    """Colour, line style and marker of a line, a scatter, a bar group or an error bar."""
    import matplotlib.colors

    if hasattr(artist, "get_linestyle") and hasattr(artist, "get_marker"):  # Line2D
        return {"color": matplotlib.colors.to_hex(artist.get_color()), "linestyle": artist.get_linestyle(),
                "marker": str(artist.get_marker())}
    if hasattr(artist, "patches"):  # BarContainer
        return {"color": matplotlib.colors.to_hex(artist.patches[0].get_facecolor()), "linestyle": "bar", "marker": ""}
    if hasattr(artist, "lines"):  # ErrorbarContainer; with fmt="none" it has only its bars
        if artist.lines[0] is None:
            return {"color": matplotlib.colors.to_hex(artist.lines[2][0].get_color()[0]), "linestyle": "errorbar",
                    "marker": ""}
        return _style(artist.lines[0])
    colors = artist.get_facecolor()  # PathCollection (scatter)
    return {"color": matplotlib.colors.to_hex(colors[0]) if len(colors) else "none", "linestyle": "scatter",
            "marker": "o"}


def loss_section(runs: list[dict], plots: Plots) -> str:
    rows, series = [], []
    for run in runs:
        for kind in _kinds(run):
            x, y = _series(run["metrics"], "loss", kind)
            if len(x):
                series.append((run, kind, x, y))
    dqn = [s for s in series if s[1] == "dqn"]
    panels = [("updates", "distillation loss", "Students"), ("updates", "TD loss (Huber)", "DQN")]
    fig, axes = plots.figure("loss", "Training loss", *(panels if dqn and len(dqn) < len(series) else
                                                        [panels[1] if dqn else panels[0]]))
    for run, kind, x, y in series:
        ax = axes[-1] if kind == "dqn" else axes[0]
        ax.plot(x, y, color=plots.color(f"{run['name']}/{kind}"), label=f"{run['name']} ({kind})")
        plots.count("loss", len(x))
        rows.append([run["name"], kind, int(x[0]), float(y[0]), int(x[-1]), float(y[-1]), float(y.min())])
    image = plots.save("loss", fig, axes)
    return (f"## Loss\n\n![loss]({image})\n\n" if image else "## Loss\n\n") + _table(
        ["run", "learner", "first update", "first loss", "last update", "last loss", "lowest loss"], rows)


def score_section(runs: list[dict], plots: Plots) -> str:
    """Scores with 95% bands: distillation students against their teachers over updates; DQN and online
    runs over frames, each on its own panel so no axis mixes units."""
    by_frames = [r for r in runs if r["kind"] in ("teacher", "online")]
    by_updates = [r for r in runs if r["kind"] not in ("teacher", "online")]
    panels = ([("updates", "mean score", "Distillation: final evaluation")] if by_updates else []) + (
        [("frames", "mean score", "DQN checkpoints and online students")] if by_frames else [])
    if not panels:
        return ""
    fig, axes = plots.figure("scores", "Evaluation score (bands: 95% CI)", *panels)
    update_ax, frame_ax = (axes[0] if by_updates else None), (axes[-1] if by_frames else None)
    rows = []
    for run in by_frames:
        summary, name = run["summary"], run["name"]
        color = plots.color(f"{name}/dqn")
        history = [e for e in summary.get("evaluations", []) if e.get("score") is not None]
        if history:
            frames = np.array([e["frames"] for e in history], float)
            score = np.array([e["score"] for e in history], float)
            ci = np.array([e.get("ci95") or 0.0 for e in history], float)
            frame_ax.plot(frames, score, marker="o", color=color, label=f"{name}: DQN checkpoints")
            frame_ax.fill_between(frames, score - ci, score + ci, alpha=0.2, color=color)
            best = np.maximum.accumulate(score)
            frame_ax.step(frames, best, where="post", linestyle="--", color=color, label=f"{name}: best so far")
            plots.count("scores", len(frames))
            rows += [[name, "dqn", int(e["frames"]), e["score"], e.get("ci95"), float(b)] for e, b in zip(history, best)]
        timeline = [r for r in summary.get("timeline", []) if r.get("student_score") is not None]
        if timeline:
            frame_ax.plot([r["frames"] for r in timeline], [r["student_score"] for r in timeline], marker="s",
                          linestyle=":", color=plots.color(f"{name}/student"), label=f"{name}: student")
            plots.count("scores", len(timeline))
            rows += [[name, "student", r["frames"], r["student_score"], None, r.get("best_score")] for r in timeline]
    for run in by_updates:
        summary, name = run["summary"], run["name"]
        per_game = summary.get("per_game") or ({summary["game"]: summary} if "student_score" in summary else {})
        for game, result in per_game.items():
            updates = summary.get("updates", 0)
            teacher, student = result["teacher_score"], result["student_score"]
            color = plots.color(f"{name}/{game}")
            update_ax.axhspan(teacher["mean"] - (teacher["ci95"] or 0), teacher["mean"] + (teacher["ci95"] or 0),
                              alpha=0.12, color=color)
            update_ax.axhline(teacher["mean"], linestyle="--", color=color, label=f"{name} {game}: teacher")
            update_ax.errorbar([updates], [student["mean"]], yerr=[student["ci95"] or 0], fmt="o", capsize=4,
                               color=color, label=f"{name} {game}: student")
            plots.count("scores", 2)
            rows += [[name, f"teacher {game}", updates, teacher["mean"], teacher["ci95"], None],
                     [name, f"student {game}", updates, student["mean"], student["ci95"], None]]
    image = plots.save("scores", fig, axes)
    return (f"## Scores\n\n![scores]({image})\n\n" if image else "## Scores\n\n") + _table(
        ["run", "policy", "updates or frames", "mean score", "95% CI", "best so far"], rows)


def _final_point(summary: dict, kind: str, game: str) -> list:
    """The run's final evaluation as the curve's last point (it is in summary.json, not metrics)."""
    students = summary.get("students") or []
    for student in students:
        if kind == "eval" and len(students) == 1 or kind == f"eval-{student['student']}-{student['loss']}":
            result = (student.get("per_game") or {game: student}).get(game)
            if result and result.get("student_score"):
                score = result["student_score"]
                return [(student["updates"], {"score": score["mean"], "ci95": score.get("ci95"),
                                              "pct_of_teacher": result.get("student_pct_of_teacher"),
                                              "agreement": result.get("action_agreement")})]
    return []


def learning_section(runs: list[dict], plots: Plots) -> str:
    """Students scored while they trained (`--eval-every`): score and held-out agreement over updates."""
    curves = [(run, kind) for run in runs for kind in _kinds(run, evaluations=True)]
    if not curves:
        return ""
    fig, (score_ax, agree_ax) = plots.figure(
        "learning", "Students while training", ("updates", "mean score", "Score (bands: 95% CI; dashed: teacher)"),
        ("updates", "held-out action agreement", "Agreement with the teacher"))
    rows = []
    for run, kind in curves:
        summary = run["summary"]
        records = [m for m in run["metrics"] if m.get("kind") == kind]
        per_game = {g: [(m["updates"], (m.get("per_game") or {g: m})[g]) for m in records] + _final_point(summary, kind, g)
                    for g in (summary.get("games") or [summary.get("game") or run["config"].get("game")])}
        for game, points in per_game.items():
            label = f"{run['name']} {kind.replace('eval', 'student', 1)} {game}"
            color = plots.color(f"{run['name']}/{kind}/{game}")
            x = np.array([u for u, _ in points], float)
            y = np.array([p["score"] for _, p in points], float)
            ci = np.array([p.get("ci95") or 0.0 for _, p in points], float)
            score_ax.plot(x, y, marker="o", color=color, label=label)
            score_ax.fill_between(x, y - ci, y + ci, alpha=0.15, color=color)
            agree = [(u, p["agreement"]) for u, p in points if p.get("agreement") is not None]
            if agree:
                agree_ax.plot(*zip(*agree), marker="o", color=color, label=label)
            teacher = ((summary.get("per_game") or {game: summary}).get(game) or {}).get("teacher_score")
            if teacher:
                score_ax.axhline(teacher["mean"], linestyle="--", color=color, alpha=0.6,
                                 label=f"{run['name']} {game}: teacher")
            plots.count("learning", len(x))
            rows += [[run["name"], kind, game, u, p["score"], p.get("ci95"), p.get("pct_of_teacher"), p.get("agreement")]
                     for u, p in points]
    image = plots.save("learning", fig, [score_ax, agree_ax])
    return (f"## Learning curves\n\n![learning]({image})\n\nDashed: the teacher's score on the report seeds; the curve's points play selection seeds.\n\n"
            + _table(["run", "evaluations", "game", "updates", "mean score", "95% CI", "% of teacher", "agreement"], rows))


def throughput_section(runs: list[dict], plots: Plots) -> str:
    fig, (update_ax, labelled_ax) = plots.figure(
        "throughput", "Throughput", ("elapsed seconds", "learner updates/s", "Learner"),
        ("elapsed seconds", "labelled steps/s", "Teacher actors"))
    rows = []
    for run in runs:
        for kind in _kinds(run):
            records = [m for m in run["metrics"] if m.get("kind", "distill") == kind and m.get("elapsed_s")]
            if not records:
                continue
            color = plots.color(f"{run['name']}/{kind}")
            elapsed = np.array([m["elapsed_s"] for m in records], float)
            updates = np.array([m.get("updates_per_s", np.nan) for m in records], float)
            update_ax.plot(elapsed, updates, color=color, label=f"{run['name']} ({kind})")
            plots.count("throughput", len(elapsed))
            labelled = np.array([m.get("labelled_steps", np.nan) for m in records], float)
            rate = None
            if np.isfinite(labelled).sum() >= 2:
                rates = np.diff(labelled) / np.maximum(np.diff(elapsed), 1e-9)
                labelled_ax.plot(elapsed[1:], rates, color=color, label=f"{run['name']} ({kind})")
                rate = float(np.nanmean(rates))
            rows.append([run["name"], kind, float(np.nanmean(updates)), rate, float(elapsed[-1])])
    image = plots.save("throughput", fig, [update_ax, labelled_ax])
    return (f"## Throughput\n\n![throughput]({image})\n\n" if image else "## Throughput\n\n") + _table(
        ["run", "learner", "mean updates/s", "mean labelled steps/s", "elapsed s"], rows)


def multitask_section(runs: list[dict], plots: Plots) -> str:
    multi = [r for r in runs if r["kind"] == "multitask"]
    if not multi:
        return ""
    fig, (pct_ax, agree_ax) = plots.figure(
        "per_game", "Multi-task: per game", ("game", "normalised % of teacher", "Score (0: random policy, 100: "
                                                                                "teacher; bars to the lower 95% bound)"),
        ("game", "held-out action agreement", "Agreement (hatched: majority-action baseline)"))
    rows, width = [], 0.8 / len(multi)
    pct_ax.axhline(100, linestyle="--", color="black", label="teacher")
    pct_ax.axhline(0, linestyle=":", color="grey", label="random policy")
    for i, run in enumerate(multi):
        per_game = run["summary"]["per_game"]
        games = list(per_game)
        color = plots.color(f"{run['name']}/multitask")
        x = np.arange(len(games)) + i * width
        pct = np.array([np.nan if per_game[g].get("normalised_pct") is None else per_game[g]["normalised_pct"]
                        for g in games], float)
        low = np.array([np.nan if per_game[g].get("normalised_low95") is None else per_game[g]["normalised_low95"]
                        for g in games], float)
        pct_ax.bar(x, pct, width, color=color, label=run["name"])
        if np.isfinite(low).any():
            pct_ax.errorbar(x, pct, yerr=[np.nan_to_num(pct - low), np.zeros_like(pct)], fmt="none", ecolor="black",
                            capsize=3, label=f"{run['name']}: lower 95% bound")
        withheld = [per_game[g]["pct_withheld"] for g in games if per_game[g].get("pct_withheld")]
        if withheld:
            pct_ax.text(0.5, 0.5, f"{run['name']}: withheld ({withheld[0]})", transform=pct_ax.transAxes, ha="center",
                        wrap=True, fontsize=8)
        geo = run["summary"].get("geometric_mean_normalised_pct")
        if geo is not None:
            geo_low = run["summary"].get("geometric_mean_normalised_low95")
            pct_ax.axhline(geo, linestyle="-.", color=color, label=f"{run['name']}: geometric mean {geo:.0f}%"
                                                                   + ("" if geo_low is None else f" (low {geo_low:.0f}%)"))
        agree_ax.bar(x, [per_game[g]["action_agreement"] for g in games], width, color=color, label=run["name"])
        agree_ax.bar(x, [per_game[g]["majority_baseline"] for g in games], width, fill=False, hatch="//",
                     edgecolor="black")
        for ax in (pct_ax, agree_ax):
            ax.set_xticks(np.arange(len(games)) + 0.4 - width / 2, games, rotation=30 if len(games) > 4 else 0,
                          ha="right" if len(games) > 4 else "center")
        plots.count("per_game", len(games))
        rows += [[run["name"], g, *_ratios(per_game[g]), per_game[g]["action_agreement"],
                  per_game[g]["majority_baseline"]] for g in games]
        summary = run["summary"]
        rows.append([run["name"], "geometric mean", summary.get("geometric_mean_pct_of_teacher"),
                     summary.get("geometric_mean_normalised_pct"), summary.get("mean_action_agreement"), None])
    image = plots.save("per_game", fig, [pct_ax, agree_ax])
    return f"## Multi-task\n\n![per game]({image})\n\n" + _table(
        ["run", "game", *RATIO_HEADER, "action agreement", "majority baseline"], rows)


def game_curves_section(runs: list[dict], plots: Plots) -> str:
    """A multi-task student's learning curve per game, each on its own axis (the games' scores differ by
    orders of magnitude), between its teacher's and the random policy's scores on the report seeds."""
    multi = [r for r in runs if r["kind"] == "multitask"
             and any(m.get("kind", "").startswith("eval") for m in r["metrics"])]
    if not multi:
        return ""
    games = list(dict.fromkeys(g for r in multi for g in r["summary"]["per_game"]))
    fig, axes = plots.grid("curves_per_game", "Score while training, per game\n(band: 95% CI; last point: report "
                                              "seeds)", [("updates", "score", game) for game in games])
    for ax, game in zip(axes, games):
        framed, shown = False, []
        for run in multi:
            per_game = run["summary"]["per_game"]
            if game not in per_game:
                continue
            color = plots.color(f"{run['name']}/multitask")
            for kind in _kinds(run, evaluations=True):
                points = [(m["updates"], m["per_game"][game]) for m in run["metrics"]
                          if m.get("kind") == kind and game in (m.get("per_game") or {})]
                points += _final_point(run["summary"], kind, game)
                x = np.array([u for u, _ in points], float)
                y = np.array([p["score"] for _, p in points], float)
                ci = np.array([p.get("ci95") or 0.0 for _, p in points], float)
                ax.plot(x, y, marker="o", color=color, label=run["name"] if len(multi) > 1 else "student")
                ax.fill_between(x, y - ci, y + ci, alpha=0.15, color=color)
                plots.count("curves_per_game", len(x))
                shown += list(y)
            if not framed:
                teacher, random = per_game[game]["teacher_score"], per_game[game].get("random_score")
                ax.axhline(teacher["mean"], linestyle="--", color="black", label="teacher")
                shown.append(teacher["mean"])
                if random:
                    ax.axhline(random["mean"], linestyle=":", color="grey", label="random policy")
                    shown.append(random["mean"])
                framed = True
        span = (max(shown) - min(shown)) or 1.0  # the scores and their frame, not a few episodes' wide bands
        ax.set_ylim(min(shown) - 0.25 * span, max(shown) + 0.25 * span)
    image = plots.save("curves_per_game", fig, axes, legends=1)  # one legend says what every panel's lines are
    return (f"## Multi-task learning curves, per game\n\n![curves per game]({image})\n\nEach panel is one game: "
            f"the student's score on the selection seeds while it trained, its final score on the report seeds, "
            f"and the teacher (dashed) and random policy (dotted) on the report seeds.\n") if image else ""


def student_points(runs: list[dict]) -> list[tuple[str, dict]]:
    """(label, result) per single-game student: one per run, or one per student of a sweep."""
    points = []
    for run in runs:
        if run["kind"] not in ("distill", "online"):
            continue
        summary = run["summary"]
        rows = [r for r in summary.get("students") or [summary] if r.get("student_params") and "student_score" in r]
        for row in rows:
            label = run["name"] if len(rows) == 1 else f"{run['name']} {row['student']}/{row['loss']}"
            points.append((label, row))
    return points


def compression_section(runs: list[dict], plots: Plots) -> str:
    points = student_points(runs)
    if len(points) < 2:
        return ""
    use_pct = all(row.get("student_pct_of_teacher") is not None for _, row in points)
    label = "% of teacher score" if use_pct else "action agreement with the teacher (%)"
    fig, (ax,) = plots.figure("compression", "Compression curve", ("student parameters", label, ""))
    rows = []
    for name, s in sorted(points, key=lambda point: point[1]["student_params"]):
        y = s["student_pct_of_teacher"] if use_pct else 100 * s["action_agreement"]
        ax.scatter([s["student_params"]], [y], color=plots.color(f"{name}/{s['student']}"), label=f"{name} ({s['student']})")
        plots.count("compression", 1)
        rows.append([name, s["student"], s["student_params"], *_ratios(s), s.get("action_agreement")])
    ax.set_xscale("log")
    image = plots.save("compression", fig, [ax])
    return f"## Compression\n\n![compression]({image})\n\n" + _table(
        ["run", "student", "parameters", *RATIO_HEADER, "action agreement"], rows)


def summary_section(runs: list[dict]) -> str:
    rows = []
    for run in runs:
        s = run["summary"]
        rows.append([run["name"], run["kind"], s.get("complete"), s.get("game") or ",".join(s.get("games", [])),
                     s.get("student") or s.get("preset"), s.get("student_params"), s.get("updates"),
                     (s.get("student_score") or {}).get("mean"),
                     (s.get("teacher_score") or s.get("best_report_score") or {}).get("mean"),
                     (s.get("random_score") or {}).get("mean"), *_ratios(s), s.get("action_agreement"), s.get("wall_s")])
    return "## Runs\n\n" + _table(["run", "kind", "complete", "game", "network", "parameters", "updates",
                                   "student score", "teacher score", "random score", *RATIO_HEADER,
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


def write_report(paths: list[str], out: str) -> dict:
    """Returns {"report": path, "plots": {name: points drawn}}."""
    if not paths:
        raise ReportError("give at least one run directory")
    try:
        runs = [load_run(p) for p in paths]
    except RunDirError as error:
        raise ReportError(str(error)) from None
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = Plots(out_dir)
    protocols: dict[str, list[str]] = {}
    for r in runs:
        if r["summary"].get("eval_protocol"):
            protocols.setdefault(r["summary"]["eval_protocol"], []).append(r["name"])
    sections = [
        "# Report\n\n" + "\n".join(f"- `{r['path']}` ({r['kind']})" for r in runs)
        + "".join(f"\n\nEvaluation protocol of {', '.join(names)}: {p}." for p, names in protocols.items()),
        summary_section(runs), loss_section(runs, plots), score_section(runs, plots), learning_section(runs, plots),
        throughput_section(runs, plots), multitask_section(runs, plots), game_curves_section(runs, plots),
        compression_section(runs, plots), watch_section(runs, out_dir),
    ]
    report = out_dir / "report.md"
    report.write_text("\n\n".join(s for s in sections if s) + "\n")
    return {"report": str(report), "plots": dict(plots.drawn), "artists": plots.artists}
