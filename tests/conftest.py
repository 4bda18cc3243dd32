import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for the whole session (starting one costs seconds)."""
    import ray

    from cluster.runtime import connect

    connect(None, cpus_needed=8)  # an online run holds 6 CPUs at once
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def pong_teacher():
    from actors.games import game_spec
    from actors.teachers import random_teacher

    return random_teacher(game_spec("pong"), seed=0)
