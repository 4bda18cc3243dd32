"""The local runner: the same run in this process, with no Ray at all (runners/local.py). That both runners
train the same student from a dataset is tests/test_dataset.py's byte-for-byte test."""

import os
import subprocess
import sys
import threading
import time

import pytest

from atari_distill.runners import handles
from atari_distill.runners.local import LocalBackend
from tests.conftest import ROOT

NO_RAY = """
import sys
import atari_distill as ad
ad.record(teacher='random', game='pong', steps=300, envs_per_actor=2, chunk_steps=32, out='data', runner='local',
          echo=None)
run = ad.distill(dataset='data', out='run', updates=20, log_every=10, checkpoint_every=10, min_replay=200,
                 eval_episodes=1, select_episodes=1, eval_workers=1, holdout_steps=200, student='net3', device='cpu',
                 runner='local', echo=None)
print(run.complete, run.students[0].updates, 'ray' in sys.modules)
"""


def test_a_local_run_records_and_distills_without_ever_importing_ray(tmp_path):
    result = subprocess.run([sys.executable, "-c", NO_RAY], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "20", "False"], result.stdout + result.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "student-00000020.pt").is_file()


def launch(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_a_ray_that_cannot_start_is_one_line_with_its_own_exit_code_and_the_local_runner_it_offers_works(tmp_path):
    broken = {"RAY_TMPDIR": str(tmp_path / "a-file")}  # Ray's session folder cannot be made under a file
    (tmp_path / "a-file").write_text("")
    args = ["evaluate", "--checkpoint", "zoo:pong", "--workers", "2", "--episodes", "1"]
    refused = launch(args, broken)
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error")]
    assert refused.returncode == 75 and len(lines) == 1, refused.stderr[-2000:]
    assert "Ray could not start" in lines[0] and "not the run" in lines[0] and "bug" not in lines[0]
    offered = lines[0].rsplit("run without Ray: ", 1)[1].split()
    assert offered == ["--runner", "local"]
    played = launch(args + offered, broken)
    assert played.returncode == 0 and "Pong: mean" in played.stdout, played.stderr[-2000:]


class Counter:
    def __init__(self, start: int):
        self.value, self.thread = start, threading.current_thread().name

    def add(self, amount: int) -> int:
        self.value += amount
        return self.value

    def echo(self, value):
        return value

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "done"


def test_local_components_keep_rays_contract():
    """Calls to one component run in the order sent; what crosses between components is a copy in which
    handles and refs stay themselves; a ref given as an argument arrives as its value; a killed component
    fails what was queued with ActorLost, and a late answer with AnswerTimeout."""
    backend = LocalBackend(workers=2)
    try:
        with handles.running(backend):
            counter = handles.remote(Counter, max_concurrency=1).remote(1)
            assert handles.get([counter.add.remote(n) for n in range(1, 5)]) == [2, 4, 7, 11]
            assert handles.get(counter.echo.remote(handles.put(41))) == 41
            sent = {"list": [1, 2], "handle": counter}
            back = handles.get(counter.echo.remote(sent))
            assert back == sent and back["list"] is not sent["list"] and back["handle"] is counter
            ready, pending = handles.wait([counter.slow.remote(0.5), handles.put(1)], num_returns=1, timeout=5)
            assert handles.get(ready) == [1] and len(pending) == 1
            with pytest.raises(handles.AnswerTimeout):
                handles.get(counter.slow.remote(1.0), timeout=0.05)
            queued = counter.slow.remote(0.1)
            handles.kill(counter)
            with pytest.raises(handles.ActorLost):
                handles.get([queued, counter.add.remote(1)])
            assert handles.is_local() and handles.node_id() == "local"
        assert not handles.is_local()
    finally:
        backend.close()
