"""`launch.py report` on real tiny runs, and the progress view's plain output."""

import io
import json
import re

import numpy as np
import pytest

from ui.progress import Progress

TINY_DISTILL = ["--updates", "40", "--log-every", "10", "--checkpoint-every", "20", "--min-replay", "300",
                "--eval-episodes", "1", "--select-episodes", "1", "--eval-workers", "1", "--holdout-steps", "200", "--capacity-hours", "0.02",
                "--chunk-steps", "32", "--replay-ratio", "0", "--eval-every", "20"]


@pytest.fixture(scope="module")
def two_runs(ray_runtime, tmp_path_factory):
    from launch import build_parser
    from pipelines.config import DistillConfig, from_args
    from pipelines.distill import run_distill

    paths = []
    for student in ("net3", "net1"):
        out = tmp_path_factory.mktemp("runs") / student
        args = build_parser().parse_args(["distill", *TINY_DISTILL, "--student", student, "--out", str(out)])
        run_distill(from_args(DistillConfig, args).validate(), echo=lambda *a: None)
        paths.append(out)
    return paths


def markdown_table(text: str, heading: str) -> list[dict]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, [c.strip() for c in line.strip("|").split("|")])) for line in lines[2:]]


def test_report_renders_every_plot_and_its_tables_match_the_summaries(two_runs, tmp_path):
    import matplotlib.image

    from ui.report import write_report

    result = write_report([str(p) for p in two_runs], str(tmp_path / "report"))
    assert set(result["plots"]) == {"loss", "scores", "throughput", "compression", "learning"}
    for name, points in result["plots"].items():
        assert points > 0, f"{name} drew nothing"
        png = tmp_path / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[0] > 100 and pixels.std() > 0.01, f"{name}.png is blank"

    text = (tmp_path / "report" / "report.md").read_text()
    runs = {row["run"]: row for row in markdown_table(text, "Runs")}
    compression = {row["run"]: row for row in markdown_table(text, "Compression")}
    for path in two_runs:
        summary = json.loads((path / "summary.json").read_text())
        row = runs[path.name]
        assert row["updates"] == str(summary["updates"]) and row["parameters"] == str(summary["student_params"])
        assert float(row["student score"]) == pytest.approx(summary["student_score"]["mean"], abs=0.0006)
        assert float(row["teacher score"]) == pytest.approx(summary["teacher_score"]["mean"], abs=0.0006)
        assert float(row["action agreement"]) == pytest.approx(summary["action_agreement"], abs=0.0006)
        assert float(compression[path.name]["action agreement"]) == pytest.approx(summary["action_agreement"], abs=0.0006)
        losses = [m["loss"] for m in map(json.loads, (path / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
        loss_row = [r for r in markdown_table(text, "Loss") if r["run"] == path.name][0]
        assert float(loss_row["last loss"]) == pytest.approx(losses[-1], abs=0.0006)
        curve = [r for r in markdown_table(text, "Learning curves") if r["run"] == path.name]
        scored = [m for m in map(json.loads, (path / "metrics.jsonl").read_text().splitlines()) if m.get("kind") == "eval"]
        assert [int(r["updates"]) for r in curve] == [20, 40]  # one evaluation while training, then the final one
        assert float(curve[0]["mean score"]) == pytest.approx(scored[0]["score"], abs=0.0006)
        assert float(curve[-1]["mean score"]) == pytest.approx(summary["student_score"]["mean"], abs=0.0006)
        assert float(curve[-1]["agreement"]) == pytest.approx(summary["action_agreement"], abs=0.0006)


@pytest.fixture(scope="module")
def teacher_run(ray_runtime, tmp_path_factory):
    from launch import build_parser
    from pipelines.config import TeacherConfig, from_args
    from pipelines.teacher import run_teacher
    from tests.test_dqn import TINY

    out = tmp_path_factory.mktemp("runs") / "dqn"
    run_teacher(from_args(TeacherConfig, build_parser().parse_args(["teacher", *TINY, "--out", str(out)])).validate(),
                echo=lambda *a: None)
    return out


UNITS = {"updates", "frames", "elapsed seconds", "student parameters", "game"}


def test_mixed_runs_get_one_unit_per_axis_and_one_style_per_series(two_runs, teacher_run, tmp_path):
    """Read from the drawn artists: no axis mixes updates with frames, no two series look alike."""
    from ui.report import write_report

    result = write_report([str(p) for p in [*two_runs, teacher_run]], str(tmp_path / "report"))
    artists = result["artists"]
    assert [panel["xlabel"] for panel in artists["scores"]] == ["updates", "frames"]
    assert [panel["ylabel"] for panel in artists["loss"]] == ["distillation loss", "TD loss (Huber)"]
    colour_of = {}
    for name, panels in artists.items():
        for panel in panels:
            assert panel["xlabel"] in UNITS and "/" not in panel["ylabel"].replace("steps/s", "").replace(
                "updates/s", ""), (name, panel)
            styles = [(s["color"], s["linestyle"], s["marker"]) for s in panel["series"]]
            assert len(styles) == len(set(styles)), (name, panel["series"])
            assert panel["series"], (name, panel)
        for series in (s for panel in panels for s in panel["series"]):
            if name in ("loss", "throughput"):  # one learner, one colour, in every plot
                assert colour_of.setdefault(series["label"].split(":")[0], series["color"]) == series["color"]
    frame_panel = artists["scores"][1]["series"]
    assert {s["label"] for s in frame_panel} == {"dqn: DQN checkpoints", "dqn: best so far"}
    text = (tmp_path / "report" / "report.md").read_text()
    named = [line.split(":")[0] for line in text.splitlines() if line.startswith("Evaluation protocol of ")]
    assert all(any(path.name in line for line in named) for path in [*two_runs, teacher_run]), named


def test_tensorboard_holds_the_metrics_scalars(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = two_runs[0]
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in records if m.get("kind", "distill") == "distill"]
    scored = [m for m in records if m.get("kind") == "eval"]
    events = EventAccumulator(str(path / "tensorboard"))
    events.Reload()
    losses = events.Scalars("distill/loss")
    assert [e.step for e in losses] == [m["updates"] for m in metrics]
    assert np.allclose([e.value for e in losses], [m["loss"] for m in metrics], rtol=1e-6)
    assert "distill/replay_size" in events.Tags()["scalars"]
    curve = events.Scalars("eval/agreement")  # the learning curve, at the update each evaluation scored
    assert [e.step for e in curve] == [m["updates"] for m in scored] and scored
    assert np.allclose([e.value for e in curve], [m["agreement"] for m in scored], rtol=1e-6)


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    from ui.report import ReportError, write_report

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
