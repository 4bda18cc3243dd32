"""A node leaves a two-node cluster on 127.0.0.1 mid-run. One that held a teacher actor: the actor
is placed again where there is room and the run finishes. One that held the learner, or only the
replay the learner samples, which no other node can hold: the run stops with its last checkpoint
and says what could not be placed; once such a node joins, --resume finishes it. Either way every
update and metrics line counts once."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from atari_distill.cluster.processes import command_line, descendants
from tests.test_cluster import DISTILL, Cluster

pytestmark = pytest.mark.xdist_group("ray-clusters")  # one test at a time that starts Ray nodes of its own or kills them


LEARNER = {"learner_node": 1}
UPDATES = 100  # the node is lost at the first checkpoint (20); the rest is what a resume must finish


def join(cluster: Cluster, nodes: int, *flags: str) -> None:
    cluster.start_node("--address", f"127.0.0.1:{cluster.port}", *flags)
    deadline = time.monotonic() + 90
    while cluster.state("len([n for n in list_nodes(address=A) if n.state == 'ALIVE'])") != nodes:
        assert time.monotonic() < deadline, cluster.log_tail()
        time.sleep(1)


def two_nodes(head: dict, worker: dict, *head_flags: str):
    cluster = Cluster()
    cluster.env["ATARI_DISTILL_PLACEMENT_TIMEOUT_S"] = "10"
    cluster.env["ATARI_DISTILL_WIND_DOWN_S"] = "10"
    cluster.env["RAY_health_check_period_ms"] = "1000"  # a killed raylet is declared dead in 5 s, not 15
    try:
        cluster.start_node("--head", "--port", str(cluster.port), "--num-cpus", "4", "--temp-dir", cluster.temp,
                           "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                           "--dashboard-port", str(cluster.dashboard), "--disable-usage-stats",
                           "--resources", json.dumps(head), *head_flags)
        deadline = time.monotonic() + 90
        while cluster.state("len(list_nodes(address=A))") != 1:
            assert cluster.nodes[0].poll() is None and time.monotonic() < deadline, cluster.log_tail()
            time.sleep(1)
        join(cluster, 2, "--num-cpus", "2", "--resources", json.dumps(worker))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def actor_node():
    yield from two_nodes(LEARNER, {})


@pytest.fixture
def learner_node():
    yield from two_nodes({}, LEARNER)


@pytest.fixture
def replay_node():
    """The learner's node has too little memory for the replay, which goes to the other node."""
    yield from two_nodes(LEARNER, {}, "--memory", str(32 * 2**20))


def start_distill(cluster: Cluster, out: Path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    run = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *DISTILL, "--updates", str(UPDATES),
                            "--address", f"127.0.0.1:{cluster.port}", "--learner-resource", "learner_node",
                            "--out", str(out)], env=cluster.env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints").is_dir() or not list((out / "checkpoints").glob("student-*.pt")):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        time.sleep(0.5)
    return run


def kill_node(cluster: Cluster, index: int, holding: str) -> None:
    node = cluster.nodes[index]
    raylets = [pid for pid in descendants(node.pid) if "raylet" in (command_line(pid) or "")]
    assert len(raylets) == 1 and [pid for pid in descendants(node.pid) if f"ray::{holding}" in (command_line(pid) or "")]
    os.kill(raylets[0], signal.SIGKILL)


def assert_finished(out: Path) -> None:
    """Complete, with every update taken and every metrics line logged once."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["updates"] == UPDATES
    logged = [json.loads(line)["updates"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(20, UPDATES + 1, 20)), logged


def lose_a_node_mid_run(cluster: Cluster, holding: str, out: Path) -> tuple[int, str, str]:
    """A distill run on `cluster` loses its second node, which holds `holding`; the run's exit code and output."""
    run = start_distill(cluster, out)
    kill_node(cluster, 1, holding)
    stdout, stderr = run.communicate(timeout=600)
    return run.returncode, stdout, stderr


def test_a_lost_actor_node_is_survived(actor_node, tmp_path):
    code, _, stderr = lose_a_node_mid_run(actor_node, "RolloutActor", tmp_path / "run")
    assert code == 0, stderr[-3000:]
    assert_finished(tmp_path / "run")


def stopped_then_resumed(cluster: Cluster, holding: str, reason: str, out: Path, *joining: str) -> None:
    """The node holding `holding` lost: the run stops saying `reason`; a node (`joining`) joins, and
    --resume finishes the run exactly."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    started = time.monotonic()
    code, stdout, stderr = lose_a_node_mid_run(cluster, holding, out)
    assert code == 75, stderr[-3000:]
    assert f"stopped by {reason}" in stdout and f"--resume {out}" in stdout, stdout
    assert time.monotonic() - started < 300  # the learners' own batch timeout (600 s) was not waited out
    stopped = json.loads((out / "summary.json").read_text())
    assert stopped["complete"] is False
    join(cluster, 2, "--num-cpus", "2", *joining)
    done = subprocess.run([sys.executable, str(ROOT / "launch.py"), "distill", "--resume", str(out)],
                          env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_finished(out)


def test_a_lost_learner_node_stops_the_run_and_resume_finishes_it(learner_node, tmp_path):
    stopped_then_resumed(learner_node, "Learner", "learner net1/kl could not be placed again", tmp_path / "run",
                         "--resources", json.dumps(LEARNER))


def test_a_lost_replay_node_stops_the_learner_that_outlived_it_and_resume_finishes_it(replay_node, tmp_path):
    stopped_then_resumed(replay_node, "ReplayShard", "replay shard pong/0 could not be placed again",
                         tmp_path / "run")
