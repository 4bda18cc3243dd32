"""The run directory's own guards: an existing run is never overwritten, a torn metrics line is
skipped, and a resume drops the intervals logged after its checkpoint."""

import json

import pytest

from atari_distill.rundir.directory import RunDir, RunDirError


def test_an_existing_run_is_never_overwritten(tmp_path):
    run = RunDir.create(tmp_path / "run", '{"updates": 300}')
    run.log({"updates": 50, "loss": 1.0})
    with pytest.raises(RunDirError, match="already holds files; choose a new --out or --resume that run"):
        RunDir.create(tmp_path / "run", '{"updates": 999}')
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"updates": 300}
    assert run.metrics() == [{"updates": 50, "loss": 1.0}]


def test_a_torn_last_metrics_line_is_skipped(tmp_path):
    run = RunDir.create(tmp_path / "run", "{}")
    run.log({"updates": 50, "loss": 1.0})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write('{"updates": 100, "lo')  # the process died mid-line
    assert run.metrics() == [{"updates": 50, "loss": 1.0}]


def test_resume_trims_only_its_own_kind_past_the_checkpoint(tmp_path):
    run = RunDir.create(tmp_path / "run", "{}")
    for updates in (50, 100, 150):
        run.log({"kind": "dqn", "updates": updates})
        run.log({"kind": "student", "updates": updates})
    assert run.trim_metrics("dqn", 100, purge=True) == 1
    assert [(m["kind"], m["updates"]) for m in run.metrics()] == [
        ("dqn", 50), ("student", 50), ("dqn", 100), ("student", 100), ("student", 150)]
    assert run.purge_steps == {"dqn": 101}
    assert run.trim_metrics("dqn", 100) == 0


def test_a_resumed_students_checkpoint_hides_none_of_its_dqns_tensorboard_events(tmp_path):
    """An online run: its student checkpointed at 100 and its DQN at 4,000 when it stopped. The resume
    purges each kind past its own checkpoint; one purge for every tag hid the DQN's events from 101 on."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = RunDir.create(tmp_path / "run", "{}")
    for updates in range(1000, 5001, 1000):
        run.log({"kind": "dqn", "updates": updates, "loss": 1.0})
    for updates in (50, 100, 150):
        run.log({"kind": "student", "updates": updates, "loss": 2.0})
    run.close()
    resumed = RunDir.open(tmp_path / "run")
    resumed.trim_metrics("dqn", 4000, purge=True)
    resumed.trim_metrics("student", 100, purge=True)
    resumed.log({"kind": "dqn", "updates": 5000, "loss": 0.5})
    resumed.log({"kind": "student", "updates": 150, "loss": 1.5})
    resumed.close()

    def logged(kind: str) -> list[tuple[int, float]]:
        events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / kind))
        events.Reload()
        return [(e.step, e.value) for e in events.Scalars(f"{kind}/loss")]
    assert logged("dqn") == [(1000, 1.0), (2000, 1.0), (3000, 1.0), (4000, 1.0), (5000, 0.5)]
    assert logged("student") == [(50, 2.0), (100, 2.0), (150, 1.5)]



def test_a_resumed_multitask_runs_counts_go_on_for_each_game_too(tmp_path):
    """A resume's lines count on from the checkpoint's line: the totals and each game's in replay_per_game."""
    from atari_distill.pipelines.distill_games import continued
    from atari_distill.pipelines.skeleton import counters_at

    def replay(labelled, sampled):
        return {"labelled_steps": labelled, "replayed_steps": 0, "sampled_steps": sampled, "replay_size": labelled}
    run = RunDir.create(tmp_path / "run", "{}")
    run.log({"updates": 20, "elapsed_s": 9.0, **replay(300, 640),
             "replay_per_game": {"pong": replay(100, 320), "breakout": replay(200, 320)}})
    run.log({"updates": 40, "elapsed_s": 19.0, **replay(600, 1280),  # past the checkpoint: lost
             "replay_per_game": {"pong": replay(200, 640), "breakout": replay(400, 640)}})
    base = counters_at(run, "distill", 20)
    line = continued({**replay(50, 64), "replay_per_game": {"pong": replay(20, 32), "breakout": replay(30, 32)}}, base)
    assert (line["labelled_steps"], line["sampled_steps"]) == (350, 704)
    assert {g: (r["labelled_steps"], r["sampled_steps"], r["replay_size"]) for g, r in line["replay_per_game"].items()} \
        == {"pong": (120, 352, 20), "breakout": (230, 352, 30)}  # the replay's size is this segment's own


def test_a_new_event_file_sorts_after_one_opened_in_the_same_second(tmp_path):
    """TensorBoard reads a folder's event files by name: one named for this very second (by a counter
    that sorts after ours, 9 > 10) must not be read after the file a resume opens."""
    import time

    from atari_distill.rundir.directory import after_last_event_file

    (tmp_path / f"events.out.tfevents.{int(time.time())}.host.1.9").write_bytes(b"")
    after_last_event_file(tmp_path)
    assert f"events.out.tfevents.{int(time.time())}.host.1.10" > max(p.name for p in tmp_path.iterdir())

def test_a_resume_drops_the_curve_points_it_will_play_again_abandoned_ones_too(tmp_path):
    """A point a stop abandoned past the checkpoint is played again by the resume: its mark goes, and
    another series' mark stays."""
    from atari_distill.pipelines.commands import resume_state

    run = RunDir.create(tmp_path / "run", "{}")
    for record in ({"updates": 20}, {"kind": "eval", "updates": 20, "score": 1.0},
                   {"kind": "abandoned", "of": "eval", "updates": 30},
                   {"kind": "abandoned", "of": "eval-net1-kl", "updates": 30}):
        run.log(record)
    resume_state(run, "student", "distill", echo=lambda *_: None)  # no checkpoint yet: it resumes from 0
    assert [(m.get("kind", "distill"), m.get("of"), m["updates"]) for m in run.metrics()] == [
        ("abandoned", "eval-net1-kl", 30)]


HOLD = """
import sys, time
from atari_distill.rundir.directory import RunDir, RunDirError
try:
    run = RunDir.create(sys.argv[1], '{}')
except RunDirError as error:
    print("refused:", error, flush=True)
    sys.exit(2)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_one_process_per_run_directory(tmp_path):
    """Two runs started at once on one --out: exactly one gets it; a resume while it runs is refused;
    once it ends (however it ends) the directory can be resumed."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent.parent
    out = tmp_path / "run"
    racers = [subprocess.Popen([sys.executable, "-c", HOLD, str(out), "6"], cwd=root, stdout=subprocess.PIPE,
                               text=True) for _ in range(2)]
    first_lines = [racer.stdout.readline().strip() for racer in racers]
    assert sorted(line.split(" ")[0] for line in first_lines) == ["holding", "refused:"], first_lines
    refused = next(line for line in first_lines if line.startswith("refused"))
    assert "is in use by another run" in refused or "already holds files" in refused
    holder = racers[first_lines.index("holding")]
    with pytest.raises(RunDirError, match=rf"in use by another run \(pid {holder.pid}\)"):
        RunDir.open(out).lock()  # what --resume does first
    holder.kill()  # no clean exit: the kernel still drops the lock
    for racer in racers:
        racer.wait(timeout=30)
    resumed = RunDir.open(out)
    resumed.lock()
    resumed.unlock()
    assert json.loads((out / "config.json").read_text()) == {}
