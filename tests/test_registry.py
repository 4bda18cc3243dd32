"""The checkpoint registry behind online distillation: best only improves, ties keep the older."""

import json
import random

import pytest

from atari_distill.cluster.registry import CheckpointRegistry, RegistryError


def registered(tmp_path, versions):
    registry = CheckpointRegistry(tmp_path / "registry.json")
    for v in versions:
        registry.register(v, f"ckpt-{v}.pt", frames=1000 * v)
    return registry


def test_best_only_improves_and_ties_keep_the_older(tmp_path):
    registry = registered(tmp_path, range(1, 6))
    improved = [registry.report(v, s) for v, s in [(1, -5.0), (2, 3.0), (3, 1.0), (4, 3.0), (5, 7.5)]]
    assert improved == [True, True, False, False, True]
    assert registry.best()["version"] == 5 and registry.best()["checkpoint"] == "ckpt-5.pt"
    assert [e["score"] for e in registry.history()] == [-5.0, 3.0, 1.0, 3.0, 7.5]


def test_final_best_does_not_depend_on_report_order(tmp_path):
    scores = {1: 2.0, 2: 9.0, 3: 9.0, 4: -1.0, 5: 8.5, 6: 9.0}
    for seed in range(20):
        order = list(scores)
        random.Random(seed).shuffle(order)
        (tmp_path / str(seed)).mkdir()
        registry = registered(tmp_path / str(seed), scores)
        for v in order:
            registry.report(v, scores[v])
        assert registry.best()["version"] == 2, order  # highest score; of the tied, the oldest


def test_concurrent_reports_from_evaluator_actors(ray_runtime, tmp_path):
    import ray

    registry = ray.remote(CheckpointRegistry).options(num_cpus=0, max_concurrency=8).remote(str(tmp_path / "r.json"))
    ray.get([registry.register.remote(v, f"c{v}", 0) for v in range(40)])

    @ray.remote(num_cpus=0)
    def evaluator(handle, versions):
        return [ray.get(handle.report.remote(v, float(v % 7))) for v in versions]

    ray.get([evaluator.remote(registry, list(range(k, 40, 4))) for k in range(4)])
    best = ray.get(registry.best.remote())
    assert best["version"] == 6 and best["score"] == 6.0  # 6, 13, 20, 27, 34 tie at 6: the oldest
    assert all(e["score"] is not None for e in ray.get(registry.history.remote()))
    ray.kill(registry)


def test_registry_survives_a_restart(tmp_path):
    registry = registered(tmp_path, [1, 2, 3])
    registry.report(1, 4.0)
    registry.report(2, 6.0)
    again = CheckpointRegistry(tmp_path / "registry.json")
    assert again.best()["version"] == 2 and [e["score"] for e in again.history()] == [4.0, 6.0, None]
    assert again.report(3, 5.0) is False and again.best()["version"] == 2


@pytest.mark.parametrize("call, words", [
    (lambda r: r.report(9, 1.0), "never registered"),
    (lambda r: r.report(1, float("nan")), "finite number"),
    (lambda r: r.register(1, "x", 0), "already registered"),
])
def test_bad_reports_are_refused_and_change_nothing(tmp_path, call, words):
    registry = registered(tmp_path, [1])
    before = (tmp_path / "registry.json").read_text()
    with pytest.raises(RegistryError, match=words):
        call(registry)
    assert (tmp_path / "registry.json").read_text() == before


def test_unreadable_registry_is_refused_by_name(tmp_path):
    (tmp_path / "registry.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(RegistryError, match="registry.json.*unreadable"):
        CheckpointRegistry(tmp_path / "registry.json")
