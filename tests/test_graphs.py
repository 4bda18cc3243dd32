"""CUDA-graphed updates compute what eager ones do, and a checkpoint moves between the two.

The graph tests need CUDA and skip without it; the optimizer hand-over runs everywhere."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from atari_distill.learner.dqn import DQNLearner
from atari_distill.learner.graphs import set_capturable
from atari_distill.learner.learner import Learner, student_optimizer
from atari_distill.pipelines.config import DistillConfig, TeacherConfig
from atari_distill.pipelines.distill import learner_config
from atari_distill.pipelines.teacher import dqn_config

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
HEADS = {"pong": 6, "breakout": 4}


def student_batches(heads: dict[str, int], count: int, batch: int = 32, seed: int = 0) -> list[tuple[str, dict]]:
    rng = np.random.default_rng(seed)
    games = list(heads)
    return [(games[i % len(games)], {"obs": rng.integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8),
                                     "q": rng.standard_normal((batch, heads[games[i % len(games)]])).astype(np.float32)})
            for i in range(count)]


def student_learner(heads: dict[str, int], graphs: bool, device: str = "cuda") -> Learner:
    config = learner_config(DistillConfig.from_flags(batch_size=32).validate(), "net1", "kl", 1)
    config = dataclasses.replace(config, device=device, graphs=graphs, amp=False)
    return Learner(config, heads, {game: [] for game in heads})


def relative_gap(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).norm() / b[k].float().norm().clamp_min(1e-12)) for k in b)


@pytest.fixture
def deterministic():
    """Same kernels in every run: otherwise cuDNN's atomics make two eager runs differ, and Adam and
    RMSProp turn a gradient's last bits into a whole step for any weight whose gradient is near zero."""
    backends = torch.backends
    saved = (backends.cudnn.deterministic, backends.cudnn.benchmark, backends.cuda.matmul.allow_tf32,
             backends.cudnn.allow_tf32)
    backends.cudnn.deterministic, backends.cudnn.benchmark = True, False
    backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = False
    yield
    (backends.cudnn.deterministic, backends.cudnn.benchmark, backends.cuda.matmul.allow_tf32,
     backends.cudnn.allow_tf32) = saved


def within_eager_noise(graphed: dict, eager: dict, eager_again: dict) -> bool:
    """The graphed run is as close to an eager run as a second eager run is (or closer than 1e-5)."""
    return relative_gap(graphed, eager) <= max(1e-5, 10 * relative_gap(eager_again, eager))


@cuda
def test_a_graphed_student_trains_as_an_eager_one_on_every_head(deterministic):
    batches = student_batches(HEADS, 12)
    eager, again, graphed = student_learner(HEADS, False), student_learner(HEADS, False), student_learner(HEADS, True)
    for other in (again, graphed):
        other.student.load_state_dict(eager.student.state_dict())
    for game, batch in batches:
        for learner in (eager, again, graphed):
            learner.step(game, batch)
    assert graphed.graphed.graphs.keys() == set(HEADS)  # 3 eager updates per head, then captured and replayed
    assert within_eager_noise(*(learner.student.state_dict() for learner in (graphed, eager, again)))


@cuda
def test_a_heads_graph_leaves_the_other_heads_optimizer_state_alone():
    learner = student_learner(HEADS, True)
    for game, batch in student_batches({"pong": 6}, 5):
        learner.step(game, batch)  # pong captured; breakout never drawn
    breakout = [p for name, p in learner.student.named_parameters() if "breakout" in name]
    before = [p.detach().clone() for p in breakout]
    assert breakout and all(p not in learner.optimizer.state or not learner.optimizer.state[p] for p in breakout)
    learner.step(*student_batches({"pong": 6}, 1, seed=1)[0])
    assert all(torch.equal(a, b) for a, b in zip(before, breakout))


@cuda
def test_a_graphed_dqn_trains_as_an_eager_one_across_target_copies(deterministic):
    cfg = TeacherConfig.from_flags(game="pong", preset="nature").validate()
    cfg = dataclasses.replace(cfg, dqn=dataclasses.replace(cfg.dqn, target_every=4, batch_size=32))
    rng = np.random.default_rng(0)
    batches = [{"obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
                "next_obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
                "actions": rng.integers(0, 6, 32).astype(np.uint8),
                "returns": rng.standard_normal(32).astype(np.float32),
                "discount": np.full(32, 0.99 ** 3, np.float32)} for _ in range(10)]
    learners = [DQNLearner(dataclasses.replace(dqn_config(cfg), device="cuda", graphs=graphs), "pong", 6, [])
                for graphs in (True, False, False)]  # graphed, eager, eager again
    for other in learners[1:]:
        other.online.load_state_dict(learners[0].online.state_dict())
        other.target.load_state_dict(learners[0].target.state_dict())
    for batch in batches:
        for learner in learners:
            learner._update("pong", batch)
    assert learners[0].graphed.graphs
    assert within_eager_noise(*(learner.online.state_dict() for learner in learners))
    assert within_eager_noise(*(learner.target.state_dict() for learner in learners))


def test_an_optimizer_saved_by_a_graphed_learner_steps_eagerly_after_loading():
    net = torch.nn.Linear(3, 2)
    saved = student_optimizer(net.parameters(), 1e-3, capturable=True)
    saved.state[net.weight]["step"] = torch.tensor(7.0)
    saved.state[net.weight]["square_avg"] = torch.ones_like(net.weight)
    state = copy.deepcopy(saved.state_dict())
    loaded = student_optimizer(net.parameters(), 1e-3)
    loaded.load_state_dict(state)
    assert loaded.param_groups[0]["capturable"]  # the flag travels with the state
    set_capturable(loaded, False, torch.device("cpu"))
    net(torch.ones(1, 3)).sum().backward()
    loaded.step()  # a capturable step on CPU parameters would refuse to run
    assert float(loaded.state[net.weight]["step"]) == 8.0
