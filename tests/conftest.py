import atexit
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ray's own metrics off for every runtime the tests start: on a two-node `ray start` cluster on 2 cores they
# took a core from the run (docs/CLUSTER.md); the runtime connect() starts for users keeps Ray's default
os.environ.setdefault("RAY_enable_metrics_collection", "0")
# report episodes kept between runs (evaluation/score_cache.py): this session's runs share their own
os.environ["ATARI_DISTILL_SCORE_CACHE"] = SCORE_CACHE = tempfile.mkdtemp(prefix="atari-distill-scores-")
atexit.register(shutil.rmtree, SCORE_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for the whole session (starting one costs seconds)."""
    import ray

    from atari_distill.cluster.runtime import connect

    connect(None, cpus_needed=8)  # an online run holds 6 CPUs at once
    yield ray
    ray.shutdown()


@contextlib.contextmanager
def frees_every_actor(settle_s: float = 20.0):
    """The block's run frees every Ray actor it started: each is dead once it has returned (a kill lands
    within seconds). Actors that existed before it (another test's) are not its business."""
    from ray._private.state import actors

    before = set(actors())
    yield
    deadline = time.monotonic() + settle_s
    while left := sorted(f"{a['ActorClassName']} {a['State']}" for key, a in actors().items()
                         if key not in before and a["State"] != "DEAD"):  # RESTARTING, PENDING: not freed either
        assert time.monotonic() < deadline, f"actors not freed {settle_s:.0f} s after the run: {left}"
        time.sleep(0.5)


@pytest.fixture(scope="session")
def recorded(tmp_path_factory):
    """A small recording of the random Pong teacher (256 steps): the dataset every test that distils offline reads."""
    from atari_distill.pipelines.config import RecordConfig
    from atari_distill.pipelines.record import run_record

    out = tmp_path_factory.mktemp("datasets") / "pong"
    cfg = RecordConfig.from_flags(actors=1, envs_per_actor=2, chunk_steps=32, steps=300, out=str(out), file_mb=1,
                                  runner="local").validate()
    index = run_record(cfg, echo=lambda *_: None)
    return out, index


@pytest.fixture(scope="session")
def pong_teacher():
    from atari_distill.actors.games import game_spec
    from atari_distill.actors.teachers import random_teacher

    return random_teacher(game_spec("pong"), seed=0)


def kill_shard(ray, shard) -> None:
    """Kills a replay shard and returns once it no longer answers: a kill is asynchronous, and a call
    sent just after it may still be answered."""
    import time

    ray.kill(shard)
    for _ in range(100):
        try:
            ray.get(shard.size.remote(), timeout=5)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return
        time.sleep(0.1)
