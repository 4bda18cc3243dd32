"""bench/fidelity.py's arithmetic: when a student first reached 90% of its teacher, and the ratio's interval."""

import importlib.util

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.xdist_group("test_fidelity_bench")  # its module-scoped fixture is built once


@pytest.fixture(scope="module")
def fidelity():
    spec = importlib.util.spec_from_file_location("fidelity", ROOT / "bench" / "fidelity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_update_at_90_percent_reads_the_right_learner_and_game(fidelity):
    metrics = [
        {"kind": "distill", "updates": 500, "loss": 1.0},
        {"kind": "eval-net3-kl", "updates": 500, "score": 950.0},  # another learner of the sweep
        {"kind": "eval-net1-kl", "updates": 500, "score": 800.0},
        {"kind": "eval-net1-kl", "updates": 1000, "score": 905.0},
        {"kind": "eval-net1-kl", "updates": 1500, "score": 990.0},
    ]
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 900.0) == 1000
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 950.0) == 1500
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 1800.0) is None
    multi = [{"kind": "eval", "updates": 300, "per_game": {"pong": {"score": 1.0}, "breakout": {"score": 9.0}}}]
    assert fidelity.first_update_at(multi, "eval", "breakout", 9.0) == 300
    assert fidelity.first_update_at(multi, "eval", "pong", 9.0) is None
