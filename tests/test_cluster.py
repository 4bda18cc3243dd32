"""A real two-node Ray cluster on 127.0.0.1, with token authentication and a custom resource
standing in for a GPU node; the driver connects by address as it would on a real cluster."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("ray-clusters")  # one test at a time that starts Ray nodes of its own or kills them
# (its module-scoped cluster is built once on that worker)

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self):
        self.port, self.dashboard = free_port(), free_port()
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # unix socket paths must stay short
        self.nodes: list[subprocess.Popen] = []

    def start_node(self, *flags: str) -> None:
        log = open(Path(self.temp) / f"node{len(self.nodes)}.log", "w")
        self.nodes.append(subprocess.Popen([RAY, "start", "--block", "--node-ip-address", "127.0.0.1",
                                            "--dashboard-agent-listen-port", str(free_port()), *flags],
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(f"{log.name}: {line}" for log in sorted(Path(self.temp).glob("node*.log"))
                         for line in log.read_text(errors="replace").splitlines()[-lines:])

    def state(self, expression: str):
        """Evaluates an expression over Ray's state API (a fresh process holding the cluster's token)."""
        script = (f"import json; from ray.util.state import list_actors, list_nodes; A='http://127.0.0.1:{self.dashboard}';"
                  f"print(json.dumps({expression}))")
        done = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None

    def launch(self, *flags: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "launch.py"), *flags], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        for node in reversed(self.nodes):  # SIGTERM: `ray start --block` drains and stops its node
            node.terminate()
        for node in self.nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster()
    try:
        cluster.start_node("--head", "--port", str(cluster.port), "--num-cpus", "3", "--temp-dir", cluster.temp,
                           "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                           "--dashboard-port", str(cluster.dashboard), "--disable-usage-stats")
        deadline = time.monotonic() + 90
        while cluster.state("len(list_nodes(address=A))") != 1:
            assert cluster.nodes[0].poll() is None, f"the head node exited:\n{cluster.log_tail()}"
            assert time.monotonic() < deadline, f"the head node did not come up:\n{cluster.log_tail()}"
            time.sleep(1)
        cluster.start_node("--address", f"127.0.0.1:{cluster.port}", "--num-cpus", "2",
                           "--resources", json.dumps({"learner_node": 1}))
        while cluster.state("len([n for n in list_nodes(address=A) if n.state == 'ALIVE'])") != 2:
            assert time.monotonic() < deadline, f"the second node did not join:\n{cluster.log_tail()}"
            time.sleep(1)
        yield cluster
    finally:
        cluster.stop()


DISTILL = ("distill", "--actors", "2", "--updates", "40", "--log-every", "20", "--checkpoint-every", "20",
           "--min-replay", "300", "--capacity-hours", "0.05", "--chunk-steps", "32", "--eval-episodes", "1", "--select-episodes", "1",
           "--eval-workers", "1", "--holdout-steps", "200")


def test_distill_on_two_nodes_places_learner_and_replay_on_the_learner_node(cluster, tmp_path):
    done = cluster.launch(*DISTILL, "--address", f"127.0.0.1:{cluster.port}", "--learner-resource", "learner_node",
                          "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "placement plan on 2 node(s): learners + replay STRICT_PACK, actors SPREAD" in done.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["complete"] and summary["updates"] == 40

    nodes = cluster.state("{n.node_id: n.resources_total for n in list_nodes(address=A)}")
    actors = cluster.state("[[a.class_name, a.node_id] for a in list_actors(address=A, limit=1000)]")
    learner_node = next(node for node, resources in nodes.items() if "learner_node" in resources)
    placed = {}
    for name, node in actors:
        placed.setdefault(name, []).append(node)
    assert placed["Learner"] == [learner_node]
    assert placed["ReplayShard"] == [learner_node]
    assert len(placed["RolloutActor"]) == 2
    planned = summary["placement"]["nodes"][learner_node]["bundles"]
    assert "learner net1/kl rank 0" in planned and "shard pong/0" in planned


def test_an_impossible_plan_is_refused_before_anything_starts(cluster, tmp_path):
    done = cluster.launch(*DISTILL, "--address", f"127.0.0.1:{cluster.port}", "--learner-resource", "big_gpu_node",
                          "--out", str(tmp_path / "run"), timeout=120)
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "big_gpu_node: needs big_gpu_node 1 but the cluster has big_gpu_node 0" in error[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_ray_job_submit_runs_a_distill_job_from_the_working_dir(cluster, tmp_path):
    out = tmp_path / "job-run"
    done = subprocess.run(
        [RAY, "job", "submit", "--address", f"http://127.0.0.1:{cluster.dashboard}", "--working-dir", str(ROOT),
         "--", sys.executable, "launch.py", *DISTILL, "--address", "auto", "--updates", "20", "--out", str(out)],
        env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "succeeded" in done.stdout
    assert json.loads((out / "summary.json").read_text())["updates"] == 20


@pytest.mark.parametrize("client", ["wrong token", "auth off on the client"])
def test_a_driver_without_the_clusters_token_is_refused_in_one_line(cluster, tmp_path, client):
    """The cluster runs with token authentication (the fixture; the other tests connect with its
    token): a driver with another token, or with authentication off, is refused, and says so."""
    env = {**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(16)} if client == "wrong token" else \
        {**cluster.env, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run([sys.executable, str(ROOT / "launch.py"), *DISTILL, "--address", f"127.0.0.1:{cluster.port}",
                           "--out", str(tmp_path / "run")], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused this driver: its token is missing or not the cluster's" in errors[0], \
        done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_no_cluster_at_the_address_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "launch.py"), *DISTILL, "--address", f"127.0.0.1:{free_port()}",
                           "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no Ray cluster answers at --address" in errors[0], done.stderr[-2000:]
