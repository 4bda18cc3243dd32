"""A sweep of two students from one actor/replay set, with a teacher actor killed mid-run."""

import json
import os
import signal
import threading
import time

import pytest

from atari_distill.pipelines.config import DistillConfig
from atari_distill.pipelines.distill import run_distill
from tests.processes import ray_workers

pytestmark = pytest.mark.xdist_group("test_sweep_survives_actor_kill")  # its module-scoped fixture is built once


def teacher_actor_pids() -> list[int]:
    return ray_workers("RolloutActor")


@pytest.fixture(scope="module")
def sweep_run(ray_runtime, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    cfg = DistillConfig.from_flags(student="net3,net2", loss="kl", actors=2, updates=300, log_every=50,
                        checkpoint_every=150, min_replay=300, chunk_steps=32, replay_ratio=2.0, capacity_hours=0.05,
                        eval_episodes=1, select_episodes=1, eval_workers=1, holdout_steps=200, out=str(out)).validate()
    result, errors = {}, []

    def run():
        try:
            result.update(run_distill(cfg, echo=lambda *_: None))
        except Exception as error:  # surfaced by the assertions below
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 240
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.2)
    pids = teacher_actor_pids()
    assert len(pids) == 2, f"expected the run's two teacher actors, found {pids}"
    os.kill(pids[0], signal.SIGKILL)
    thread.join(timeout=600)
    assert not errors, errors
    return result, out, pids[0]


def test_two_students_train_from_one_stream_and_get_one_summary_row_each(sweep_run):
    summary, out, _ = sweep_run
    rows = summary["students"]
    assert [(r["student"], r["loss"]) for r in rows] == [("net3", "kl"), ("net2", "kl")]
    assert [r["student_params"] for r in rows] == [61_174, 111_798]
    assert all(r["updates"] == 300 and 0.0 <= r["action_agreement"] <= 1.0 for r in rows)
    on_disk = json.loads((out / "summary.json").read_text())
    keys = ("student", "loss", "updates", "student_params", "action_agreement", "checkpoint_series")
    assert [{k: r[k] for k in keys} for r in on_disk["students"]] == [{k: r[k] for k in keys} for r in rows]
    kinds = {m.get("kind") for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}
    assert kinds == {"distill-net3-kl", "distill-net2-kl"}
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["student-net2-kl-00000150.pt", "student-net2-kl-00000300.pt",
                     "student-net3-kl-00000150.pt", "student-net3-kl-00000300.pt"]
    # one set of actors for both: the shards admitted twice the single-student sample ratio
    replay = summary["replay"]
    assert replay["replay_ratio"] == pytest.approx(4.0)
    assert replay["sampled_steps"] >= 2 * 300 * 32


def test_a_killed_teacher_actor_is_restarted_and_counted(sweep_run):
    summary, _, killed = sweep_run
    assert killed not in teacher_actor_pids()
    assert summary["restarts"]["actors"] >= 1
    assert summary["complete"] is True


def test_the_report_draws_one_compression_point_per_student_of_the_sweep(sweep_run, tmp_path):
    from atari_distill.ui.report import write_report

    summary, out, _ = sweep_run
    result = write_report([str(out)], str(tmp_path / "report"))
    assert result["plots"]["compression"] == 2
    text = (tmp_path / "report" / "report.md").read_text()
    for row in summary["students"]:
        assert f"run {row['student']}/kl | {summary['game']} | {row['student']} | {row['student_params']:,}" in text
