"""The placement plan, simulated on described nodes: where each role goes and what is refused."""

import pytest

from atari_distill.cluster.placement import Bundle, Node, PlacementPlan, learner_bundle
from atari_distill.pipelines.config import ConfigError

GIB = 1024**3


def node(name: str, **resources) -> Node:
    return Node(name, f"10.0.0.{len(name)}", dict(resources), dict(resources))


def plan(nodes, learners=1, use_gpu=False, resource=None, shards=(GIB,), actors=2):
    return PlacementPlan([learner_bundle(f"learner {i}", use_gpu, resource) for i in range(learners)],
                         [Bundle("shard", f"shard {i}", {"memory": float(b)}) for i, b in enumerate(shards)],
                         [Bundle("actor", f"actor {i}", {"CPU": 1.0}) for i in range(actors)], nodes)


def roles_on(p: PlacementPlan, node_id: str) -> list[str]:
    return sorted(b.role for b in p.assigned[node_id])


def test_learners_and_replay_share_the_node_with_the_learner_resource_and_actors_spread():
    p = plan([node("cpu", CPU=4, memory=8 * GIB), node("gpu", CPU=4, memory=8 * GIB, fake_gpu=1)],
             resource="fake_gpu", shards=(GIB, GIB), actors=4)
    p.check()
    assert p.learner_strategy == "STRICT_PACK"
    assert roles_on(p, "gpu").count("learner") == 1 and roles_on(p, "gpu").count("shard") == 2
    assert "learner" not in roles_on(p, "cpu") and "shard" not in roles_on(p, "cpu")
    assert roles_on(p, "cpu").count("actor") >= 1 and roles_on(p, "gpu").count("actor") >= 1  # spread
    assert "STRICT_PACK" in p.table() and "1 learner(s), 2 shard(s)" in p.table()


def test_missing_gpus_are_named_with_the_fix():
    p = plan([node("a", CPU=8, memory=8 * GIB)], learners=2, use_gpu=True)
    with pytest.raises(ConfigError) as error:
        p.check()
    message = str(error.value)
    assert "GPU: needs GPU 2 but the cluster has GPU 0" in message and "add nodes" in message
    assert "\n" not in message


def test_a_missing_custom_resource_is_named():
    p = plan([node("a", CPU=8, memory=8 * GIB)], resource="learner_node")
    with pytest.raises(ConfigError, match="learner_node: needs learner_node 1 but the cluster has learner_node 0"):
        p.check()


def test_enough_in_total_but_no_node_big_enough_says_which_bundle():
    p = plan([node("a", CPU=2, memory=2 * GIB), node("b", CPU=2, memory=2 * GIB)], shards=(3 * GIB,), actors=1)
    with pytest.raises(ConfigError, match="no node has room for shard 0"):
        p.check()


def test_a_group_too_big_for_one_node_is_packed_over_several():
    p = plan([node("a", CPU=2, memory=2 * GIB, GPU=1), node("b", CPU=2, memory=2 * GIB, GPU=1)], learners=2,
             use_gpu=True, shards=(GIB, GIB), actors=2)
    p.check()
    assert p.learner_strategy == "PACK"
    assert roles_on(p, "a").count("learner") == roles_on(p, "b").count("learner") == 1


def test_a_local_runtime_with_more_cpus_than_cores_says_why_in_its_table():
    import os

    cores = os.cpu_count() or 1
    local = Node("local", "127.0.0.1", {"CPU": cores + 4, "memory": 8 * GIB}, {"CPU": cores + 4, "memory": 8 * GIB})
    assert f"this machine has {cores} core(s), which they share" in plan([local]).table()
    assert "logical slots" not in plan([node("a", CPU=cores, memory=8 * GIB)]).table()
