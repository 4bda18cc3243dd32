"""`launch.py report` on real tiny runs, and the progress view's plain output."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from atari_distill.ui.progress import Progress
from atari_distill.ui.plots import KEY_COLOURS
from atari_distill.ui.report import FINAL_STAR

pytestmark = pytest.mark.xdist_group("test_report")  # its module-scoped fixture is built once

TINY_DISTILL = ["--updates", "40", "--log-every", "10", "--checkpoint-every", "20", "--min-replay", "300",
                "--eval-episodes", "1", "--select-episodes", "1", "--eval-workers", "1", "--holdout-steps", "200", "--capacity-hours", "0.02",
                "--chunk-steps", "32", "--replay-ratio", "0", "--eval-every", "20", "--runner", "local"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from atari_distill.cli import build_parser
    from atari_distill.pipelines.config import DistillConfig, from_args
    from atari_distill.pipelines.distill import run_distill

    paths = []
    for student in ("net3", "net1"):
        out = tmp_path_factory.mktemp("runs") / student
        args = build_parser().parse_args(["distill", *TINY_DISTILL, "--student", student, "--out", str(out)])
        run_distill(from_args(DistillConfig, args).validate(), echo=lambda *a: None)
        paths.append(out)
    return paths


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def markdown_table(text: str, heading: str) -> list[dict]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, [c.strip() for c in line.strip("|").split("|")])) for line in lines[2:]]


def test_report_renders_every_plot_and_its_tables_match_the_summaries(two_runs, tmp_path):
    import matplotlib.image

    from atari_distill.ui.report import write_report

    result = write_report([str(p) for p in two_runs], str(tmp_path / "report"))
    assert set(result["plots"]) == {"loss", "scores", "throughput", "compression", "learning"}
    for name, points in result["plots"].items():
        assert points > 0, f"{name} drew nothing"
        png = tmp_path / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[0] > 100 and pixels.std() > 0.01, f"{name}.png is blank"

    text = (tmp_path / "report" / "report.md").read_text()
    runs = {row["series"]: row for row in markdown_table(text, "Runs")}
    compression = {row["series"]: row for row in markdown_table(text, "Compression")}
    for path in two_runs:
        summary = json.loads((path / "summary.json").read_text())
        row = runs[path.name]
        assert row["updates"] == f"{summary['updates']:,}" and row["parameters"] == f"{summary['student_params']:,}"
        assert number(row["score"]) == pytest.approx(summary["student_score"]["mean"], abs=0.06)
        assert number(row["teacher score"]) == pytest.approx(summary["teacher_score"]["mean"], abs=0.06)
        assert float(row["action agreement"]) == pytest.approx(summary["action_agreement"], abs=0.0006)
        assert float(compression[path.name]["action agreement"]) == pytest.approx(summary["action_agreement"], abs=0.0006)
        losses = [m["loss"] for m in map(json.loads, (path / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
        loss_row = [r for r in markdown_table(text, "Loss") if r["series"] == path.name][0]
        assert float(loss_row["last loss"]) == pytest.approx(losses[-1], abs=0.0006)
        curve = [r for r in markdown_table(text, "Learning curves") if r["series"] == path.name]
        scored = [m for m in map(json.loads, (path / "metrics.jsonl").read_text().splitlines()) if m.get("kind") == "eval"]
        assert [int(r["updates"]) for r in curve] == [20, 40]  # one evaluation while training, then the final one
        assert [r["seeds"] for r in curve] == ["selection", "report (final)"]
        assert number(curve[0]["mean score"]) == pytest.approx(scored[0]["score"], abs=0.06)
        assert number(curve[-1]["mean score"]) == pytest.approx(summary["student_score"]["mean"], abs=0.06)
        assert float(curve[-1]["agreement"]) == pytest.approx(summary["action_agreement"], abs=0.0006)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    from atari_distill.cli import build_parser
    from atari_distill.pipelines.config import TeacherConfig, from_args
    from atari_distill.pipelines.teacher import run_teacher
    from tests.test_dqn import TINY

    out = tmp_path_factory.mktemp("runs") / "dqn"
    run_teacher(from_args(TeacherConfig, build_parser().parse_args(["teacher", *TINY, "--runner", "local", "--out", str(out)])).validate(),
                echo=lambda *a: None)
    return out


UNITS = {"updates", "frames", "elapsed seconds", "student parameters (thousands)", "game", ""}
MIXED = Path(__file__).parent / "data" / "report_runs"  # real runs' records (no checkpoints), one of each kind
MIXED_RUNS = ["demo", "sweep", "from-dataset", "mt2", "teacher", "online"]


def test_mixed_runs_get_one_unit_per_axis_and_one_style_per_series(two_runs, teacher_run, tmp_path):
    """Read from the drawn artists: no axis mixes updates with frames, no two series look alike."""
    from atari_distill.ui.report import write_report

    result = write_report([str(p) for p in [*two_runs, teacher_run]], str(tmp_path / "report"))
    artists = result["artists"]
    assert [panel["xlabel"] for panel in artists["scores"]] == ["", "frames"]
    assert [panel["ylabel"] for panel in artists["loss"]] == ["distillation loss", "TD loss (Huber)"]
    for name, panels in artists.items():
        for panel in panels:
            assert panel["xlabel"] in UNITS and "/" not in panel["ylabel"].replace("steps/s", "").replace(
                "updates/s", ""), (name, panel)
            styles = [(s["color"], s["linestyle"], s["marker"]) for s in panel["series"]]
            assert len(styles) == len(set(styles)), (name, panel["series"])
            assert panel["series"], (name, panel)
    # two students' curves: the star's legend key comes after both, not between them
    assert result["legends"]["learning"][:3] == [two_runs[0].name, two_runs[1].name, FINAL_STAR], result["legends"]
    frame_panel = {s["label"] for s in artists["scores"][1]["series"]}
    assert {"dqn DQN checkpoints (selection seeds)", "dqn DQN: best so far"} <= frame_panel
    assert "random policy (report seeds)" in frame_panel  # the teacher run played it on its report seeds
    text = (tmp_path / "report" / "report.md").read_text()
    named = [line.split(":")[0] for line in text.splitlines() if line.startswith("Evaluation protocol of ")]
    assert all(any(path.name in line for line in named) for path in [*two_runs, teacher_run]), named


def test_a_report_over_every_run_kind_keeps_what_the_readme_promises(tmp_path):
    """A quick start, a sweep, a dataset run (Pong), a multi-task run, a teacher run and an online run
    (Pong), read from the drawn artists: a panel per game, one colour per series in every plot, error
    bars on every score, the teacher, random and majority baselines, and no overlapping tick labels."""
    from atari_distill.ui.report import write_report

    result = write_report([str(MIXED / name) for name in MIXED_RUNS], str(tmp_path / "report"))
    artists = result["artists"]
    assert set(artists) == {"loss", "scores", "learning", "throughput", "per_game", "curves_per_game", "compression"}
    for name, panels in artists.items():
        for panel in panels:
            assert not panel["overlapping_ticks"], (name, panel["title"], panel["overlapping_ticks"])
            assert panel["bar_ends_outside"] == panel["clip_marks"], (name, panel["title"])  # no CI cut off unmarked

    colour_of: dict[str, str] = {}
    series = ["demo", "sweep net1/kl", "sweep net2/kl", "sweep net3/kl", "from-dataset", "mt2", "teacher DQN",
              "online DQN", "online"]
    for name, panels in artists.items():
        for s in (s for panel in panels for s in panel["series"]):
            key = next((k for k in sorted(series, key=len, reverse=True)
                        if s["label"] == k or s["label"].startswith((k + " (", k + ":", k + " checkpoints"))), None)
            if key and s["linestyle"] not in ("segment", "errorbar"):  # black baselines and bounds
                assert colour_of.setdefault(key, s["color"]) == s["color"], (name, s)
    assert set(colour_of) == set(series) and len(set(colour_of.values())) == len(series)

    students = [p for p in artists["scores"] if p["title"].endswith("students (report seeds)")]
    assert [p["title"].split(":")[0] for p in students] == ["ms_pacman", "pong", "space_invaders"]
    for panel in students:
        labels = {s["label"] for s in panel["series"]}
        assert {"teacher (report seeds)", "random policy (report seeds)"} <= labels, panel["title"]
        assert panel["errorbars"] == len(labels) - 2, panel["title"]  # every student's score has its CI
    by_frames = [p for p in artists["scores"] if p["xlabel"] == "frames"]
    assert [p["title"].split(":")[0] for p in by_frames] == ["pong"]  # the teacher and online runs, one game
    assert by_frames[0]["errorbars"] >= 3  # each DQN's checkpoints, and the stated report-seed scores

    learning = artists["learning"]
    assert [p["title"] for p in learning[1::2]] == ["ms_pacman: agreement with the teacher",
                                                    "pong: agreement with the teacher"]
    for score, agreement in zip(learning[::2], learning[1::2]):
        assert {"teacher (report seeds)", "random policy (report seeds)"} <= {s["label"] for s in score["series"]}
        # the final student's report-seed score is a star apart, not one more point of the selection-seed line
        assert "star: the final student (report seeds)" in {s["label"] for s in score["series"]}, score["series"]
        curves = [s for s in score["series"] if s["marker"] == "o"]
        stars = [s for s in score["series"] if s["marker"] == "*" and s["color"] != "#000000"]
        assert curves and not stars  # the stars carry no label of their own: the curve's colour names them
        lone = [s for s in curves if s["length"] == 1]  # a band one point wide would not show
        assert score["errorbars"] == len(curves) + len(lone), score  # each final star's interval, each lone point's
        assert "majority-action baseline" in {s["label"] for s in agreement["series"]}
        assert tuple(agreement["ylim"]) == (0, 1)

    for panel in artists["curves_per_game"]:  # mt2 was scored once while it trained
        curves = [s for s in panel["series"] if s["marker"] == "o"]
        assert [s["length"] for s in curves] == [1] and panel["errorbars"] == 2, panel  # its point's CI, the star's
    for name, labels in result["legends"].items():  # every series before the black and grey keys, in every figure
        colour = {s["label"]: s["color"] for panel in artists[name] for s in panel["series"]}
        keys = [colour.get(label) in ("#000000", "#808080") for label in labels]
        assert keys == sorted(keys), (name, labels)

    for panel in artists["compression"]:
        labels = {s["label"] for s in panel["series"]}
        assert {"teacher", "random policy"} <= labels or "majority-action baseline" in labels, panel["title"]
        assert all(x.is_integer() for x, _ in panel["points"]), panel["points"]  # each at its true size
        pixels = sorted(x for x, _ in panel["points_px"])  # and those of one size side by side on screen
        assert all(b - a > 3 for a, b in zip(pixels, pixels[1:])), f"two points drawn on one another: {panel}"
        assert panel["errorbars"] == len(panel["points"])

    text = (tmp_path / "report" / "report.md").read_text()
    rows = {row["series"]: row for row in markdown_table(text, "Runs")}
    online = json.loads((MIXED / "online" / "summary.json").read_text())
    assert rows["online"]["updates"] == f"{online['student_updates']:,}" != f"{online['updates']:,}"
    assert rows["online DQN"]["updates"] == f"{online['updates']:,}"
    assert rows["teacher DQN"]["random score"] == "-21.0"  # a teacher run plays the random policy on its report seeds
    assert set(rows) == set(series)
    assert all(re.fullmatch(r"[\d,]+", row["parameters"]) for row in rows.values()), rows


def test_students_scored_at_the_same_updates_are_drawn_side_by_side(tmp_path):
    """Runs of one command score at the same updates: their points, stars and bars sit apart instead of
    one hiding another (two 12-point stars are told apart), every one inside its axes however many
    there are, while the axis still spans the updates."""
    import shutil

    from atari_distill.ui.report import write_report

    for name, copies in (("demo", 9), ("mt2", 2)):
        for copy in range(copies):
            shutil.copytree(MIXED / name, tmp_path / f"{name}-{copy}")
    runs = sorted(str(p) for p in tmp_path.iterdir())
    artists = write_report(runs, str(tmp_path / "report"))["artists"]
    for panel in artists["learning"] + artists["curves_per_game"]:
        at = [(m["color"], x, px) for m in panel["markers"] if m["color"] not in KEY_COLOURS
              for x, px in zip(m["x"], m["px"])]
        series = len({colour for colour, _, _ in at})
        assert series == (2 if panel in artists["curves_per_game"] else 9), panel["title"]
        apart = 3 if series > 2 else 10  # pixels: 20 points spread over the series, or 8 points a step for two
        hidden = [(a, b) for a in at for b in at if a[0] < b[0] and a[1] == b[1] and abs(a[2] - b[2]) < apart]
        assert not hidden, (panel["title"], hidden)
        left, right = panel["x_px"]
        assert all(left + 5 < px < right - 5 for _, _, px in at), (panel["title"], panel["x_px"], at)
        pixels = [px for _, _, px in at]
        assert max(pixels) - min(pixels) > 100, panel["title"]  # the axis spans the updates, not a dodge's points
    (panel,) = artists["compression"]  # nine students of one size: at that size, side by side on screen
    assert len(panel["points"]) == 9 and len({x for x, _ in panel["points"]}) == 1, panel["points"]
    pixels = sorted(x for x, _ in panel["points_px"])
    assert all(b - a > 2 for a, b in zip(pixels, pixels[1:])), pixels


def test_report_csv_holds_every_metrics_line_and_a_result_row_per_student_and_game(tmp_path):
    """`report --csv` and RunResult.metrics(): the tables a notebook or a spreadsheet compares runs in."""
    import pandas as pd

    from atari_distill import api
    from atari_distill.rundir.result import RunResult

    runs = [MIXED / "demo", MIXED / "mt2", MIXED / "sweep"]
    done = api.report([str(r) for r in runs], str(tmp_path / "report"), csv=True)
    assert [t.name for t in done.tables] == ["metrics.csv", "results.csv"]
    metrics = pd.read_csv(done.tables[0])
    lines = {r.name: len((r / "metrics.jsonl").read_text().splitlines()) for r in runs}
    assert metrics["run"].value_counts().to_dict() == lines
    results = pd.read_csv(done.tables[1])
    assert len(results) == 1 + 2 + 3  # demo's one game, mt2's two games, the sweep's three students
    demo = RunResult.load(MIXED / "demo")
    row = results[results["run"] == "demo"].iloc[0]
    assert row["student_mean"] == pytest.approx(demo.per_game["ms_pacman"].student.mean)
    assert row["teacher_episodes"] == demo.per_game["ms_pacman"].teacher.episodes
    curve = demo.metrics("eval")
    assert list(curve["updates"]) == [m["updates"] for m in map(json.loads, (MIXED / "demo" / "metrics.jsonl")
                                      .read_text().splitlines()) if m.get("kind") == "eval"]
    assert {"kind", "score", "agreement"} <= set(curve.columns) and set(curve["kind"]) == {"eval"}


def test_tensorboard_holds_the_metrics_scalars(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = two_runs[0]
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in records if m.get("kind", "distill") == "distill"]
    scored = [m for m in records if m.get("kind") == "eval"]
    events = EventAccumulator(str(path / "tensorboard" / "distill"))  # an event folder per record kind
    events.Reload()
    losses = events.Scalars("distill/loss")
    assert [e.step for e in losses] == [m["updates"] for m in metrics]
    assert np.allclose([e.value for e in losses], [m["loss"] for m in metrics], rtol=1e-6)
    assert "distill/replay_size" in events.Tags()["scalars"]
    events = EventAccumulator(str(path / "tensorboard" / "eval"))
    events.Reload()
    curve = events.Scalars("eval/agreement")  # the learning curve, at the update each evaluation scored
    assert [e.step for e in curve] == [m["updates"] for m in scored] and scored
    assert np.allclose([e.value for e in curve], [m["agreement"] for m in scored], rtol=1e-6)


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    from atari_distill.ui.report import ReportError, write_report

    with pytest.raises(ReportError, match="not a run directory"):
        write_report([str(tmp_path)], str(tmp_path / "out"))


def test_progress_off_a_terminal_is_plain_lines():
    lines = []
    progress = Progress("distill", 100, "updates", write=lines.append, live=False, capacity={"pong": 1000})
    progress("[distill] starting")
    for step in (10, 20, 30):
        progress.update({"updates": step, "loss": 0.5 / step, "updates_per_s": 10.0, "replay_size": 100 * step,
                         "labelled_steps": 200 * step, "elapsed_s": float(step)})
    progress.evaluation("student", "1.00 +/- 0.50")
    progress.close()
    text = "\n".join(lines)
    assert len(lines) == 5 and not re.search(r"\x1b|\r", text), "no control codes off a terminal"
    assert "replay pong 3,000 (300%)" in lines[3] and "ETA 70 s" in lines[3]
    assert "labelled/s 20" in lines[2] and "ETA" in lines[3]


def test_progress_on_a_terminal_draws_a_panel():
    from rich.console import Console

    buffer = io.StringIO()
    progress = Progress("distill", 100, "updates", live=True, console=Console(file=buffer, force_terminal=True, width=120))
    progress.update({"updates": 10, "loss": 0.1, "elapsed_s": 1.0})
    progress.update({"updates": 20, "loss": 0.05, "elapsed_s": 2.0})
    progress.live.refresh()
    progress.close()
    assert "loss 0.0500" in buffer.getvalue() and "\x1b[" in buffer.getvalue()


def test_labelled_rate_is_steady_when_chunks_land_in_bursts():
    lines = []
    progress = Progress("distill", 1000, "updates", write=lines.append, live=False)
    for i, labelled in enumerate([0, 200, 200, 400, 400, 600, 600, 800, 800, 1000, 1000, 1200]):  # 20/s in bursts
        progress.update({"updates": 10 * (i + 1), "labelled_steps": labelled, "elapsed_s": 5.0 * (i + 1)})
    rates = [float(re.search(r"labelled/s ([\d,]+)", line).group(1).replace(",", "")) for line in lines[7:]]
    assert rates and all(15 <= r <= 27 for r in rates), rates  # one interval alone would read 0 or 40


def test_a_run_from_a_recording_shows_no_labelling_rate():
    lines = []
    progress = Progress("distill", 100, "updates", write=lines.append, live=False)
    for step in (10, 20):
        progress.update({"updates": step, "labelled_steps": 4000, "replay_size": 4000, "from_dataset": True,
                         "elapsed_s": float(step)})
    assert lines and not any("labelled/s" in line for line in lines), lines


def test_runs_without_final_scores_and_a_multitask_sweep_still_get_their_rows(tmp_path):
    """A stopped quick start (no scores yet), a multi-task sweep (teacher fields at the top, each
    student's under its row) and two runs of one folder name: drawn apart, none dropped."""
    import shutil

    runs = {}
    for name, source in (("stopped/demo", "demo"), ("other/demo", "demo"), ("mt-sweep", "mt2")):
        runs[name] = tmp_path / name
        shutil.copytree(MIXED / source, runs[name])
    (runs["stopped/demo"] / "summary.json").write_text(json.dumps({"kind": "distill", "complete": False,
                                                                     "stopped_by": "SIGINT", "wall_s": 5.0}))
    summary = json.loads((runs["mt-sweep"] / "summary.json").read_text())
    row = summary["students"][0]
    summary["students"] = [{**row, "checkpoint_series": f"student-multi-3-{loss}", "loss": loss} for loss in ("kl", "nll")]
    summary["per_game"] = {g: {k: v for k, v in r.items() if k in ("teacher_score", "random_score", "majority_baseline")}
                           for g, r in summary["per_game"].items()}
    (runs["mt-sweep"] / "summary.json").write_text(json.dumps(summary))
    from atari_distill.ui.report import write_report

    result = write_report([str(p) for p in runs.values()], str(tmp_path / "report"))
    rows = {row["series"]: row for row in markdown_table((tmp_path / "report" / "report.md").read_text(), "Runs")}
    assert rows["stopped/demo (1)"]["score"] == "not scored" and rows["stopped/demo (1)"]["updates"] == "2,000"
    assert "other/demo (2)" in rows and {"mt-sweep multi-3/kl", "mt-sweep multi-3/nll"} <= set(rows)
    assert {s["label"] for s in result["artists"]["per_game"][0]["series"]} >= {"mt-sweep multi-3/kl",
                                                                                "mt-sweep multi-3/nll"}


def test_runs_that_differ_only_in_seed_get_rliables_aggregate_over_seeds(tmp_path):
    """Three seeds of one multi-task experiment and a run of another: the three are aggregated, the
    other is not; the IQM and its interval are rliable's own on the (seeds x games) normalised scores."""
    import shutil

    from rliable import library as rly
    from rliable import metrics

    from atari_distill.ui.report import write_report

    students = {0: (967.0, 156.0), 1: (700.0, 300.0), 2: (500.0, 200.0)}
    paths = []
    for seed, (pacman, invaders) in students.items():
        path = tmp_path / f"seed{seed}"
        shutil.copytree(MIXED / "mt2", path)
        config = json.loads((path / "config.json").read_text())
        config["run"].update(seed=seed, out=str(path))
        (path / "config.json").write_text(json.dumps(config))
        summary = json.loads((path / "summary.json").read_text())
        for game, score in (("ms_pacman", pacman), ("space_invaders", invaders)):
            summary["students"][0]["per_game"][game]["student_score"]["mean"] = score
        (path / "summary.json").write_text(json.dumps(summary))
        paths.append(str(path))
    result = write_report([*paths, str(MIXED / "demo")], str(tmp_path / "report"))
    written = json.loads((tmp_path / "report" / "seeds.json").read_text())
    assert len(written) == 1  # the demo run is another experiment, with one seed
    (summary,) = written.values()
    assert summary["seeds"] == [0, 1, 2] and summary["games"] == ["ms_pacman", "space_invaders"]
    matrix = np.array([[(p - 225.0) / (912.0 - 225.0), (i - 131.0) / (351.5 - 131.0)] for p, i in students.values()])
    assert np.allclose(summary["matrix"], matrix)
    points, intervals = rly.get_interval_estimates({"runs": matrix}, lambda x: np.array([metrics.aggregate_iqm(x)]),
                                                   reps=summary["bootstrap_reps"], random_state=np.random.RandomState(0))
    iqm = summary["aggregate"]["iqm"]
    assert (iqm["value"], iqm["low95"], iqm["high95"]) == pytest.approx(
        (points["runs"][0], intervals["runs"][0][0], intervals["runs"][1][0]))
    assert summary["per_game"]["ms_pacman"]["score"]["mean"] == pytest.approx(2167.0 / 3)
    report = Path(result["report"]).read_text()
    assert "## Training seeds" in report and "seeds-1.png" in report and result["plots"]["seeds-1"] > 0
