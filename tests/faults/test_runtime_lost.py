"""The Ray runtime dies under a run (its GCS killed, as `ray stop` from another shell does): the
command says so in one line with the way on and exits 75; `--resume` then finishes the run with
every update, optimizer step and metrics line counted once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atari_distill.cluster.processes import descendants
from atari_distill.models.checkpoint import load_checkpoint
from atari_distill.rundir.directory import RunDir
from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("ray-clusters")  # one test at a time that starts Ray nodes of its own or kills them

DISTILL = ["--student", "net3", "--actors", "1", "--updates", "200", "--log-every", "20", "--checkpoint-every", "40",
           "--min-replay", "300", "--chunk-steps", "32", "--capacity-hours", "0.05", "--eval-episodes", "1", "--select-episodes", "1",
           "--eval-workers", "1", "--holdout-steps", "200"]
FRAMES, RECORDED = 20000, 60000  # the resume is tested, not the length; a recording must outlast the watchdog
DQN = ["--preset", "net3", "--frames", str(FRAMES), "--min-replay", "1000", "--eval-every", "8000", "--eval-episodes", "1", "--select-episodes", "1",
       "--log-every", "50", "--checkpoint-every", "100", "--capacity-hours", "0.05"]
RUNS = {  # command line, its checkpoint kinds (metrics kind: the same, distill for a student alone), updates
    "distill": (["distill", *DISTILL], {"student": "distill"}, 200),
    "multitask": (["multitask", "--games", "pong,breakout", *DISTILL], {"student": "distill"}, 200),
    "teacher": (["teacher", *DQN], {"dqn": "dqn"}, None),
    "online": (["online", *DQN, "--distill-min-replay", "256", "--distill-capacity-hours", "0.05",
                "--holdout-steps", "256"], {"dqn": "dqn", "student": "student"}, None),
    "record": (["record", "--actors", "1", "--chunk-steps", "32", "--steps", str(RECORDED)], {}, None),
}


def has_begun(out: Path, kinds: dict) -> bool:
    """The run has written what a resume continues from: a checkpoint of each kind, or recorded chunks."""
    if not kinds:
        try:
            return json.loads((out / "index.json").read_text())["steps"] >= 1000
        except (OSError, ValueError, KeyError):
            return False
    return all(list(out.glob(f"checkpoints/{kind}-*.pt")) for kind in kinds)


def gcs_of(pid: int) -> list[int]:
    found = []
    for child in descendants(pid):
        try:
            if b"gcs_server" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


# every command shares the watchdog that distill tests here; the other commands' resumes are tested after
# a graceful stop (record: test_api; online and teacher: test_online's Ctrl-C), not after a killed runtime
# (no final checkpoint, a recording cut mid-stream): with ATARI_DISTILL_SLOW=1 they run here too (each passed
# when this was written), kept out of CI's minutes (record alone took 162 s)
SLOW = pytest.mark.skipif(not os.environ.get("ATARI_DISTILL_SLOW"), reason="set ATARI_DISTILL_SLOW=1 to run")


@pytest.mark.parametrize("command", [c if c == "distill" else pytest.param(c, marks=SLOW) for c in sorted(RUNS)])
def test_a_lost_runtime_is_one_line_then_resume_finishes_the_run(command, tmp_path):
    args, kinds, updates = RUNS[command]
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args, "--out", str(out)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not has_begun(out, kinds):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-2000:]
        time.sleep(0.2)
    victims = gcs_of(run.pid)
    assert len(victims) == 1, victims
    os.kill(victims[0], signal.SIGKILL)
    started = time.monotonic()
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 75, stderr[-2000:]
    assert time.monotonic() - started < 40  # Ray's own client would take 60 s, and say nothing of ours
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the Ray runtime went away" in errors[0] and \
        f"launch.py {command} --resume {out}" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr

    done = subprocess.run([sys.executable, str(ROOT / "launch.py"), command, "--resume", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if command == "record":
        return check_recording(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["kind"] == command
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for kind, metrics_kind in kinds.items():
        logged = [r["updates"] for r in records if r.get("kind", "distill") == metrics_kind]
        assert logged == sorted(set(logged)), f"a {metrics_kind} interval was logged twice: {logged}"
        final = load_checkpoint(sorted((out / "checkpoints").glob(f"{kind}-*.pt"))[-1])
        steps = {int(state["step"]) for state in final["optimizer"]["state"].values()}
        # the shared trunk steps every update; a multi-task head steps on its own game's batches only
        assert max(steps) == final["updates"] and (command == "multitask" or len(steps) == 1), \
            f"{kind}: {steps} optimizer steps for {final['updates']} updates"
        assert final["updates"] == summary["student_updates" if command == "online" and kind == "student" else "updates"]
    if updates is not None:
        assert summary["updates"] == updates and logged == list(range(20, updates + 1, 20))
    else:  # the DQN's frames (its shards stop on whole chunks), evaluations and registry went on where the dead
        # run left them
        config = RunDir(out).read_config()
        chunk_frames = 4 * config["chunk_steps"] * config["envs_per_actor"]
        assert FRAMES - chunk_frames < summary["frames"] <= FRAMES and [e["version"] for e in summary["evaluations"]] \
            == list(range(1, len(summary["evaluations"]) + 1))


def check_recording(out: Path) -> None:
    """Whole chunks only, up to --steps, every stream once: the resumed actors took new ids."""
    from atari_distill.replay.chunk import decode
    from atari_distill.replay.dataset import Dataset

    dataset = Dataset.open(out)
    assert dataset.index["complete"] and dataset.index["resumes"] == 1 and not dataset.damage
    assert RECORDED - 128 < dataset.steps <= RECORDED
    streams = [(chunk.actor_id, chunk.chunk_index) for chunk in (decode(m) for _, m in dataset.messages())]
    assert len(streams) == len(set(streams)) and {actor for actor, _ in streams} == {0, 1}
