"""The data-parallel learner: two gloo replicas in two Ray actor processes."""

import numpy as np
import ray
import torch

from cluster.learner_group import rendezvous
from learner.learner import Learner
from pipelines.config import DistillConfig
from pipelines.distill import learner_config

UPDATES = 6
BATCH = 16


def batches(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"obs": rng.integers(0, 256, (BATCH, 4, 84, 84), dtype=np.uint8),
             "q": rng.normal(size=(BATCH, 6)).astype(np.float32)} for _ in range(count)]


def weights(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in state["model"].items()}


def test_two_gloo_replicas_stay_identical_and_match_one_process_on_the_same_batches(ray_runtime):
    # the comparison is exact up to float rounding, which RMSProp scales with the step size: a small lr keeps
    # one process and two replicas within the tolerance below after 6 updates
    config = learner_config(DistillConfig.from_flags(device="cpu", lr=2.5e-4).validate(), "net3", "kl", 1)
    heads, data = {"pong": 6}, batches(2 * UPDATES)
    address = ray.get(ray.remote(rendezvous).remote())
    replicas = [ray.remote(Learner).options(num_cpus=0).remote(config, heads, {"pong": []}, None, None,
                                                               (rank, 2, address)) for rank in range(2)]
    for step in range(UPDATES):
        ray.get([replicas[rank].step.remote("pong", data[2 * step + rank]) for rank in range(2)])
    first, second = (weights(s) for s in ray.get([r.state.remote() for r in replicas]))
    ray.get([r.close.remote() for r in replicas])
    for replica in replicas:
        ray.kill(replica)

    single = Learner(config, heads, {"pong": []})
    initial = {k: v.clone() for k, v in weights(single.state()).items()}
    for step in range(UPDATES):  # one batch twice the size = the mean of the two replicas' gradients
        pair = data[2 * step], data[2 * step + 1]
        single.step("pong", {key: np.concatenate([pair[0][key], pair[1][key]]) for key in ("obs", "q")})
    reference = weights(single.state())

    assert first.keys() == second.keys() == reference.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), f"replicas differ in {name}"
        torch.testing.assert_close(first[name], reference[name], rtol=1e-4, atol=1e-5, msg=f"{name} differs")
    assert any(not torch.equal(reference[n], initial[n]) for n in reference)  # training moved the weights
