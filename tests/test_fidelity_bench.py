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


def test_first_update_at_90_percent_reads_the_right_learner_and_game_against_the_teacher_on_its_seeds(fidelity):
    """A curve point (selection seeds) is measured against the teacher's selection-seed score it carries,
    never the report seeds' (here 2,000): that would mix two seed sets in one ratio."""
    teacher = {"teacher_selection_score": 1000.0, "random_selection_score": 100.0}
    metrics = [
        {"kind": "distill", "updates": 500, "loss": 1.0},
        {"kind": "eval-net3-kl", "updates": 500, "score": 950.0, **teacher},  # another learner of the sweep
        {"kind": "eval-net1-kl", "updates": 250, "score": 990.0, "teacher_selection_score": None},  # not yet known
        {"kind": "eval-net1-kl", "updates": 500, "score": 800.0, **teacher},
        {"kind": "eval-net1-kl", "updates": 1000, "score": 905.0, **teacher},
        {"kind": "eval-net1-kl", "updates": 1500, "score": 990.0, **teacher},
    ]
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 0.9) == 1000
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 0.95) == 1500
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 0.9, normalised=True) == 1500  # 100 + 810
    assert fidelity.first_update_at(metrics, "eval-net1-kl", "pong", 1.8) is None
    multi = [{"kind": "eval", "updates": 300, "per_game": {
        "pong": {"score": 1.0, "teacher_selection_score": 10.0, "random_selection_score": 0.0},
        "breakout": {"score": 9.0, "teacher_selection_score": 10.0, "random_selection_score": 0.0}}}]
    assert fidelity.first_update_at(multi, "eval", "breakout", 0.9, normalised=True) == 300
    assert fidelity.first_update_at(multi, "eval", "pong", 0.9, normalised=True) is None
