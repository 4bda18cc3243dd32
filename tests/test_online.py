"""Online distillation: the labelling teacher follows the registry's best, and a run resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atari_distill.models.checkpoint import load_checkpoint
from atari_distill.pipelines.config import OnlineConfig, from_args
from atari_distill.rundir.directory import RunDir
from tests.conftest import frees_every_actor
from tests.test_dqn import TINY

ROOT = Path(__file__).resolve().parent.parent
RIGGED = {1: 1.0, 2: 3.0, 3: 2.0, 4: 3.0, 5: 5.0, 6: 4.0}  # later checkpoints score below all of these
BESTS = [1, 2, 5]  # v3 is lower, v4 ties (the older stays), v6 is lower
ONLINE = [*TINY, "--frames", "16000", "--distill-min-replay", "256", "--distill-capacity-hours", "0.05",
          "--holdout-steps", "256"]


def rigged_scorer(registry, version, frames, payload, game, protocol):
    """An evaluator that reports a fixed score per checkpoint (injected as DQNTraining's scorer), each
    after every earlier checkpoint's, so the registry hears them in version order."""
    from atari_distill.runners import handles

    deadline = time.monotonic() + 60  # past it, report anyway: the order assertion then says what happened
    while time.monotonic() < deadline and any(e["score"] is None for e in handles.get(registry.history.remote())
                                              if e["version"] < version):
        time.sleep(0.05)
    score = RIGGED.get(version, 0.0)
    improved = handles.get(registry.report.remote(version, score, None, 0))
    return {"version": version, "frames": frames, "score": score, "ci95": None, "improved": improved}


def test_hot_swap_follows_the_best_checkpoint(ray_runtime, tmp_path):
    from atari_distill.cli import build_parser
    from atari_distill.pipelines.online import run_online

    args = build_parser().parse_args(["online", *ONLINE, "--out", str(tmp_path / "run")])
    with frees_every_actor():
        summary = run_online(from_args(OnlineConfig, args).validate(), echo=lambda *a: None, scorer=rigged_scorer)

    history = sorted(summary["evaluations"], key=lambda e: e["order"])
    assert len(history) >= 6, "the run must take every rigged checkpoint"
    # the scorer reports in version order, so the registry's best must have moved exactly through BESTS
    assert [e["version"] for e in history] == sorted(e["version"] for e in history)
    assert [e["score"] for e in history[:6]] == [RIGGED[v] for v in range(1, 7)]
    assert summary["best"]["version"] == BESTS[-1] and summary["best"]["score"] == RIGGED[BESTS[-1]]
    ever_best = BESTS

    in_replay = summary["teacher_versions_in_replay"]  # (actor, first chunk index, version) per change
    versions = [v for _, _, v in in_replay]
    assert set(versions) <= set(ever_best), f"chunks carry versions that were never best: {in_replay}"
    order = [v for v in ever_best if v in versions]
    assert [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v] == order, \
        f"labels must follow the best in the order it changed: {in_replay} vs {ever_best}"
    assert len(set(versions)) >= 2, f"no hot swap reached the replay: {in_replay}"
    assert versions[-1] == 5
    swaps = [[0, *s] for s in summary["swaps_per_actor"][0]]
    assert swaps[1:] == in_replay[1:] or swaps == in_replay, "the replay's versions change exactly at the actor's swaps"

    run = tmp_path / "run"
    for name in ("config.json", "metrics.jsonl", "registry.json", "timeline.jsonl", "summary.json"):
        assert (run / name).is_file(), name
    kinds = {json.loads(line)["kind"] for line in (run / "metrics.jsonl").read_text().splitlines()}
    assert kinds == {"dqn", "student"}
    assert summary["student_updates"] > 0 and 0 <= summary["action_agreement"] <= 1
    rows = [r for r in summary["timeline"] if not r.get("final")]
    assert [r["version"] for r in rows] == [e["version"] for e in history]
    assert all(r["student_score"] is not None and r["seeds"] == "selection" for r in rows if r["student_updates"])
    final = summary["timeline"][-1]
    assert final["final"] and final["seeds"] == "report" and final["student_score"] == summary["student_score"]["mean"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "online"))
    events.Reload()
    assert sorted(e.value for e in events.Scalars("online/dqn_score")) == sorted(r["dqn_score"] for r in rows)
    students = [r["student_score"] for r in rows if r["student_score"] is not None]
    assert sorted(e.value for e in events.Scalars("online/student_score")) == sorted(students) and students


def launch(args, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path_glob, run, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(run.glob(path_glob)):
            return
        time.sleep(0.5)
    raise AssertionError(f"nothing matched {path_glob} in {timeout}s")


def updates_logged(run, kind):
    return [m["updates"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m["kind"] == kind]


@pytest.mark.parametrize("command", ["teacher", "online"])
def test_ctrl_c_stops_gracefully_then_resume_loses_and_repeats_no_update(tmp_path, command):
    run = tmp_path / "run"
    # the local runner: Ctrl-C and --resume are the subject, not Ray (faults/ stops Ray runs)
    args = [command, *(ONLINE if command == "online" else TINY), "--frames", "100000", "--runner", "local"]
    process = launch(args, run)
    wait_for("checkpoints/dqn-*.pt", run)
    if command == "online":
        wait_for("checkpoints/student-*.pt", run)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=180)[0]
    assert process.returncode == 130, output
    stopped = json.loads((run / "summary.json").read_text())
    assert stopped["complete"] is False and stopped["stopped_by"] == "SIGINT" and stopped["kind"] == command
    assert f"launch.py {command} --resume" in output
    saved = {kind: load_checkpoint(sorted((run / "checkpoints").glob(f"{kind}-*.pt"))[-1])["updates"]
             for kind in (("dqn", "student") if command == "online" else ("dqn",))}
    for kind, at in saved.items():  # the final checkpoint holds every update that was logged
        assert updates_logged(run, kind)[-1] == at, (kind, at, updates_logged(run, kind))

    # a few more intervals; an online run's student must refill its replay first (its labelling actors start
    # anew), which on a loaded 2-core machine took longer than the DQN's 3,000 frames (CI, 2026-12-07)
    target = stopped["frames"] + 6000
    resumed = subprocess.run([sys.executable, str(ROOT / "launch.py"), command, "--resume", str(run), "--frames",
                              str(target), "--override", "frames"], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    config = RunDir(run).read_config()
    chunk_frames = 4 * config["chunk_steps"] * config["envs_per_actor"]  # --frames is an upper bound
    assert summary["complete"] and target - chunk_frames < summary["frames"] <= target
    for kind, at in saved.items():
        final = load_checkpoint(sorted((run / "checkpoints").glob(f"{kind}-*.pt"))[-1])
        steps = {float(s["step"]) for s in final["optimizer"]["state"].values()}
        if kind == "dqn":
            assert steps == {float(final["updates"])}, "Adam's step count must equal the update count"
        logged = updates_logged(run, kind)
        assert logged == sorted(set(logged)), f"{kind}: an interval was logged twice: {logged}"
        first_after = logged[logged.index(at) + 1]
        assert first_after == at + int(TINY[TINY.index("--log-every") + 1]), \
            f"{kind} resumed at {first_after}, not one interval after its checkpoint at {at}: {logged}"
        assert final["updates"] > at
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for kind in saved:  # the DQN's lines, and an online run's student's
        for key in ("elapsed_s", "labelled_steps"):
            values = [m[key] for m in lines if m["kind"] == kind and m.get(key) is not None]
            assert values == sorted(values), f"{kind}'s {key} went back at the resume: {values}"
    assert summary["wall_s"] > stopped["wall_s"], "the summary's wall time must count the segment before the stop"
    registry = json.loads((run / "registry.json").read_text())
    assert all(entry["score"] is not None for entry in registry["history"])
