"""SIGINT to the driver of a distill run, a corrupted newest checkpoint, and resuming with a
changed update budget; then a second Ctrl-C, which must exit at once and leave the files whole. On the
local runner: the driver is the subject, and its components' threads must not hold the process open
(tests/faults/test_runtime_lost.py stops Ray runs)."""

import json
import signal
import subprocess
import sys
import time

from atari_distill.models.checkpoint import CheckpointError, load_checkpoint
from tests.conftest import ROOT

FLAGS = ["distill", "--student", "net3", "--updates", "100000", "--log-every", "20", "--checkpoint-every", "60",
         "--min-replay", "300", "--capacity-hours", "0.05", "--chunk-steps", "32", "--eval-episodes", "1", "--select-episodes", "1",
         "--eval-workers", "1", "--holdout-steps", "200", "--runner", "local"]


def start(out) -> subprocess.Popen:
    """With faulthandler on, so a run that hangs can be made to print every thread's stack (`finish`)."""
    return subprocess.Popen([sys.executable, "-X", "faulthandler", str(ROOT / "launch.py"), *FLAGS, "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float) -> str:
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        raise AssertionError(f"still running after {timeout} s:\n" + process.communicate(timeout=60)[0][-6000:])


def logged(out) -> list[int]:
    path = out / "metrics.jsonl"
    return [json.loads(line)["updates"] for line in path.read_text().splitlines()] if path.exists() else []


def checkpoints(out) -> list:
    return sorted((out / "checkpoints").glob("student-*.pt"))


def wait_until(condition, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_sigint_stops_with_a_final_checkpoint_and_resume_falls_back_past_a_corrupt_one(tmp_path):
    out = tmp_path / "run"
    process = start(out)
    wait_until(lambda: max(logged(out), default=0) >= 80)  # a periodic checkpoint at 60 exists
    process.send_signal(signal.SIGINT)
    output = finish(process, 120)
    assert process.returncode == 130, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped_by"] == "SIGINT"
    last = logged(out)[-1]
    assert summary["updates"] == last and load_checkpoint(checkpoints(out)[-1])["updates"] == last
    assert f"launch.py distill --resume {out}" in output

    newest = checkpoints(out)[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn write
    previous = load_checkpoint(checkpoints(out)[-2])["updates"]
    target = last + 40
    refused = subprocess.run([sys.executable, str(ROOT / "launch.py"), "distill", "--resume", str(out),
                              "--updates", str(target)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "add --override updates" in refused.stderr

    resumed = subprocess.run([sys.executable, str(ROOT / "launch.py"), "distill", "--resume", str(out),
                              "--updates", str(target), "--override", "updates"],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"skipping unreadable checkpoint, falling back to the one before: checkpoint {str(newest)!r}" \
           in resumed.stderr
    assert f"student continues at update {previous}" in resumed.stdout
    final = json.loads((out / "summary.json").read_text())
    assert final["complete"] and final["updates"] == target
    assert json.loads((out / "config.json").read_text())["updates"] == target
    assert [r["overrides"] for r in map(json.loads, (out / "resumes.jsonl").read_text().splitlines())] == \
           [{"updates": [100000, target]}]
    assert logged(out) == list(range(20, target + 1, 20)), "an interval was lost or logged twice"
    state = load_checkpoint(checkpoints(out)[-1])
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {target}


def test_a_second_ctrl_c_exits_at_once_and_leaves_every_file_whole(tmp_path):
    out = tmp_path / "run"
    process = start(out)
    wait_until(lambda: bool(checkpoints(out)))
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    output = finish(process, 60)
    assert process.returncode == 130, output
    assert time.monotonic() - started < 30
    assert not list(out.rglob("*.tmp")), "a temp file was left behind"
    for path in checkpoints(out):
        try:
            load_checkpoint(path)
        except CheckpointError as error:
            raise AssertionError(f"{path} was corrupted by the second Ctrl-C: {error}")
    if (out / "summary.json").exists():
        json.loads((out / "summary.json").read_text())
