"""Killing a learner or a replay shard by process id mid-run: the run finishes with every
optimizer step counted once."""

import json
import os
import signal
import threading
import time

import pytest

from atari_distill.models.checkpoint import load_checkpoint
from atari_distill.pipelines.config import DistillConfig
from atari_distill.pipelines.distill import run_distill
from tests.processes import ray_workers

pytestmark = pytest.mark.xdist_group("ray-clusters")  # one test at a time that starts Ray nodes of its own or kills them

UPDATES = 200


def logged_updates(out) -> list[int]:
    path = out / "metrics.jsonl"
    return [json.loads(line)["updates"] for line in path.read_text().splitlines()] if path.exists() else []


def kill_mid_run(job, out, title: str, after_updates: int) -> dict:
    """Runs `job()` (a run writing metrics to `out`) in a thread, SIGKILLs this session's one `title`
    process once `after_updates` are logged, and returns what the run returned."""
    result, errors = {}, []

    def run():
        try:
            result.update(job())
        except Exception as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    while max(logged_updates(out), default=0) < after_updates:
        assert thread.is_alive() and time.monotonic() < deadline, f"the run never reached {after_updates} updates"
        time.sleep(0.1)
    victims = ray_workers(title)
    assert len(victims) == 1, f"expected one {title} process, found {victims}"
    os.kill(victims[0], signal.SIGKILL)
    thread.join(timeout=600)
    assert not errors, errors
    return result


def run_and_kill(tmp_path, title: str, after_updates: int) -> tuple[dict, object]:
    out = tmp_path / "run"
    cfg = DistillConfig.from_flags(student="net3", actors=2, updates=UPDATES, log_every=20, checkpoint_every=40,
                        min_replay=300, chunk_steps=32, capacity_hours=0.05, eval_episodes=1, select_episodes=1, eval_workers=1,
                        holdout_steps=200, out=str(out)).validate()
    return kill_mid_run(lambda: run_distill(cfg, echo=lambda *_: None), out, title, after_updates), out


def assert_every_step_once(summary: dict, out) -> None:
    assert summary["complete"] and summary["updates"] == UPDATES
    final = load_checkpoint(sorted((out / "checkpoints").glob("student-*.pt"))[-1])
    assert final["updates"] == UPDATES
    steps = {int(state["step"]) for state in final["optimizer"]["state"].values()}
    assert steps == {UPDATES}, f"RMSprop took {steps} steps for {UPDATES} updates"
    logged = logged_updates(out)
    assert logged == list(range(20, UPDATES + 1, 20)), f"metrics lost or repeated an interval: {logged}"


def test_a_killed_learner_is_rebuilt_from_its_last_checkpoint(ray_runtime, tmp_path):
    summary, out = run_and_kill(tmp_path, "Learner", after_updates=60)
    assert summary["restarts"]["learners"] == 1
    assert_every_step_once(summary, out)


def test_a_killed_replay_shard_is_restarted_and_refilled(ray_runtime, tmp_path):
    summary, out = run_and_kill(tmp_path, "ReplayShard", after_updates=60)
    assert summary["restarts"]["learners"] == 0
    assert_every_step_once(summary, out)


def test_a_killed_dqn_actor_is_restarted_and_the_teacher_run_finishes(ray_runtime, tmp_path):
    """The DQN's exploring actor dies mid-run: Ray restarts it, its new stream starts with every env
    reset (no n-step transition crosses from the dead stream: tests/test_transitions.py), and the
    run finishes within its frame budget with every checkpoint scored."""
    from atari_distill.cli import build_parser
    from atari_distill.pipelines.config import TeacherConfig, from_args
    from atari_distill.pipelines.teacher import run_teacher
    from tests.test_dqn import TINY

    out = tmp_path / "run"
    cfg = from_args(TeacherConfig, build_parser().parse_args(["teacher", *TINY, "--frames", "12000", "--out",
                                                                 str(out)])).validate()
    result = kill_mid_run(lambda: run_teacher(cfg, echo=lambda *_: None), out, "RolloutActor", after_updates=50)
    assert result["complete"] and result["restarts"]["actors"] == 1
    assert 12000 - 4 * cfg.acting.chunk_size < result["frames"] <= 12000
    assert all(entry["score"] is not None for entry in result["evaluations"])
