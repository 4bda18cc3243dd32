"""The data-parallel learner: two gloo replicas in two Ray actor processes, and the store where they meet."""

import errno
import socket

import numpy as np
import pytest
import ray
import torch
import torch.distributed as dist

from atari_distill.cluster.learner_group import LearnerGroup
from atari_distill.learner.rendezvous import NotThisGroup, join_store, open_store
from atari_distill.learner.learner import Learner
from atari_distill.pipelines.config import DistillConfig
from atari_distill.pipelines.distill import learner_config

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
    group = LearnerGroup("dp", "dp", config, heads, {"pong": []}, None, replicas=2, use_gpu=False, strategies=[{}, {}])
    group.start(None)
    ray.get(group.joined)
    replicas = group.actors
    for step in range(UPDATES):
        ray.get([replicas[rank].step.remote("pong", data[2 * step + rank]) for rank in range(2)])
    first, second = (weights(s) for s in ray.get([r.state.remote() for r in replicas]))
    group.kill()

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


def test_the_store_holds_its_port_from_the_moment_it_is_chosen(ray_runtime):
    store, address = open_store(2, "secret")
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.getaddrinfo(host, 0)[0][0]) as squatter, pytest.raises(OSError) as taken:
        squatter.bind((host, int(port)))
    assert taken.value.errno == errno.EADDRINUSE
    del store


def test_a_rank_of_another_start_is_refused_and_a_client_without_the_secret_misses_the_groups_keys(ray_runtime):
    store, address = open_store(2, "secret")
    store.set("rank0", "weights")
    assert join_store(address, "secret").get("rank0") == b"weights"
    with pytest.raises(NotThisGroup):
        join_store(address, "an earlier start's")
    host, port = address.rsplit(":", 1)
    stranger = dist.TCPStore(host, int(port), is_master=False)  # by accident only: it could list the keys
    assert not stranger.check(["rank0"])
    stranger.set("rank0", "junk")
    assert store.get("rank0") == b"weights"
    del store


def test_a_data_parallel_record_counts_every_replicas_samples_per_game():
    """Each replica draws its own batches of the same games: the record counts them all, as it counts
    samples_per_s (rank 0's alone under-stated a multi-task student's per-game samples G-fold)."""
    from atari_distill.cluster.learner_group import LearnerGroup

    results = [{"updates": 3, "loss": loss, "samples_per_s": 10.0, "wait_fraction": 0.1,
                "samples_per_game": {"pong": 64, "breakout": 32}} for loss in (1.0, 3.0)]
    record = LearnerGroup.combine(None, results)
    assert record["samples_per_game"] == {"pong": 128, "breakout": 64}
    assert (record["samples_per_s"], record["loss"], record["replicas"]) == (20.0, 2.0, 2)
