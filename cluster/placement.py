"""Where each part of a run goes on a Ray cluster, decided and checked before anything starts.

Learners take a GPU each (or one unit of `--learner-resource`, a resource chosen nodes
advertise); the replay shards go with them, on one node when it can hold the whole group,
because learners sample far more bytes than actors insert; teacher actors spread over the
nodes. The plan is simulated on the nodes Ray reports, printed, and an impossible one is
refused with the missing resources named. Two placement groups then reserve it, so a run
never starts half-placed, and Ray restarts a dead actor inside its own bundle.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field

from atari_distill.cluster.errors import ConfigError
from atari_distill.runners import handles

GIB = 1024**3
# how long Ray may take to place a bundle (the plan at start, a learner again after its node left)
PLACEMENT_TIMEOUT_S = float(os.environ.get("ATARI_DISTILL_PLACEMENT_TIMEOUT_S", 120))


@dataclass(frozen=True)
class Bundle:
    role: str  # learner, shard, actor
    label: str
    resources: dict[str, float]


@dataclass
class Node:
    id: str
    address: str
    total: dict[str, float]
    free: dict[str, float] = field(default_factory=dict)

    def fits(self, resources: dict[str, float]) -> bool:
        return all(self.free.get(k, 0.0) >= v - 1e-9 for k, v in resources.items())

    def take(self, resources: dict[str, float]) -> None:
        for key, value in resources.items():
            self.free[key] = self.free.get(key, 0.0) - value


def _total(bundles: list[Bundle]) -> dict[str, float]:
    out: dict[str, float] = collections.defaultdict(float)
    for bundle in bundles:
        for key, value in bundle.resources.items():
            out[key] += value
    return dict(out)


def _fmt(resources: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / GIB:.2f} GiB" if k.endswith("memory") else f"{k} {v:g}"
                     for k, v in sorted(resources.items()))


def alive_nodes() -> list[Node]:
    """Ray's live nodes; on the local runner, this process as the one node, with what it may use."""
    if handles.is_local():
        return [local_node()]
    import ray

    nodes = []
    for node in ray.nodes():
        if node.get("Alive"):
            total = {k: float(v) for k, v in node["Resources"].items() if not k.startswith("node:")}
            nodes.append(Node(node["NodeID"], node["NodeManagerAddress"], total, dict(total)))
    return nodes


def local_node() -> Node:
    """This process as a node: a CPU slot for every role (threads share the cores, as a local Ray runtime's
    logical CPUs do), the memory free now, and the GPUs torch sees."""
    import torch

    from atari_distill.replay.memory_plan import local_memory

    total = {"CPU": 1024.0, "memory": local_memory()[0], "GPU": float(torch.cuda.device_count())}
    return Node("local", "this process", total, dict(total))


class PlacementPlan:
    """Learners and shards form one group (packed onto one node when it fits); actors spread."""

    def __init__(self, learners: list[Bundle], shards: list[Bundle], actors: list[Bundle], nodes: list[Node]):
        self.learners, self.shards, self.actors = learners, shards, actors
        self.nodes = nodes
        self.assigned: dict[str, list[Bundle]] = {n.id: [] for n in nodes}
        self.unplaced: list[Bundle] = []
        self.learner_strategy = "STRICT_PACK"
        self._simulate()

    def _place(self, bundle: Bundle, candidates: list[Node]) -> bool:
        for node in candidates:
            if node.fits(bundle.resources):
                node.take(bundle.resources)
                self.assigned[node.id].append(bundle)
                return True
        self.unplaced.append(bundle)
        return False

    def _simulate(self) -> None:
        group = self.learners + self.shards
        whole = _total(group)
        home = next((n for n in self.nodes if n.fits(whole)), None) if group else None
        if home is not None:
            for bundle in group:
                self._place(bundle, [home])
        else:  # PACK: as few nodes as Ray can manage, learners first
            self.learner_strategy = "PACK"
            for bundle in self.learners:
                self._place(bundle, self.nodes)
            learner_nodes = [n for n in self.nodes if any(b.role == "learner" for b in self.assigned[n.id])]
            for bundle in self.shards:
                self._place(bundle, learner_nodes + [n for n in self.nodes if n not in learner_nodes])
        for index, bundle in enumerate(self.actors):  # SPREAD: round-robin from the next node with room
            order = self.nodes[index % len(self.nodes):] + self.nodes[:index % len(self.nodes)] if self.nodes else []
            self._place(bundle, order)

    def missing(self) -> list[str]:
        """What the cluster lacks, in total, for each resource the plan needs."""
        cluster = _total([Bundle("", "", n.total) for n in self.nodes])
        needed = _total(self.learners + self.shards + self.actors)
        return [f"{key}: needs {_fmt({key: value})} but the cluster has {_fmt({key: cluster.get(key, 0.0)})}"
                for key, value in sorted(needed.items()) if value > cluster.get(key, 0.0) + 1e-9]

    def check(self) -> None:
        if not self.unplaced:
            return
        roles = collections.Counter(b.role for b in self.unplaced)
        what = ", ".join(f"{n} {role}(s)" for role, n in roles.items())
        lacking = self.missing()
        if lacking:
            reason = "; ".join(lacking)
        else:
            first = self.unplaced[0]
            reason = (f"no node has room for {first.label} ({_fmt(first.resources)}) once the rest is placed; "
                      f"nodes: " + "; ".join(f"{n.address} [{_fmt(n.total)}]" for n in self.nodes))
        raise ConfigError(f"impossible placement: {what} cannot be placed ({reason}); add nodes with those "
                          f"resources, or lower --actors / --learner-gpus / the --student sweep, or use --device cpu")

    def table(self) -> str:
        lines = [f"placement plan on {len(self.nodes)} node(s): learners + replay {self.learner_strategy}, "
                 f"actors SPREAD"]
        for node in self.nodes:
            roles = collections.Counter(b.role for b in self.assigned[node.id])
            held = ", ".join(f"{n} {role}(s)" for role, n in sorted(roles.items())) or "nothing"
            lines.append(f"  {node.address} {node.id[:8]} [{_fmt(node.total)}]: {held}")
        if self.unplaced:
            lines.append(f"  unplaced: {', '.join(b.label for b in self.unplaced)}")
        cores = os.cpu_count() or 1
        if any(node.address.startswith("127.") and node.total.get("CPU", 0) > cores for node in self.nodes):
            lines.append(f"  (CPU counts are Ray's logical slots, one per role that runs at once; this machine has "
                         f"{cores} core(s), which they share: a local runtime declares more so no role waits)")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"learner_strategy": self.learner_strategy,
                "nodes": {n.id: {"address": n.address, "bundles": [b.label for b in self.assigned[n.id]]}
                          for n in self.nodes}}

    def reserve(self, timeout_s: float = PLACEMENT_TIMEOUT_S) -> "Placement":
        """Reserves the plan with placement groups; refuses if Ray cannot within `timeout_s`
        (another job holds the resources, or a node left since the plan was made). The local runner has
        nothing to reserve."""
        if handles.is_local():
            return Placement({}, len(self.learners))
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group

        groups = {}
        for name, bundles, strategy in (("learners", self.learners + self.shards, self.learner_strategy),
                                        ("actors", self.actors, "SPREAD")):
            if bundles:
                groups[name] = placement_group([b.resources for b in bundles], strategy=strategy, name="")
        ready = [g.ready() for g in groups.values()]
        done, _ = ray.wait(ready, num_returns=len(ready), timeout=timeout_s)
        if len(done) < len(ready):
            for group in groups.values():
                remove_placement_group(group)
            raise ConfigError(f"Ray could not reserve the placement plan within {timeout_s:.0f}s (another job holds "
                              f"the resources, or a node left); free them or lower --actors")
        return Placement(groups, len(self.learners))


class Placement:
    """Scheduling strategies for each reserved bundle, in plan order."""

    def __init__(self, groups: dict, num_learners: int):
        self.groups, self.num_learners = groups, num_learners

    def _strategy(self, group: str, index: int) -> dict:
        if group not in self.groups:  # the local runner's: nothing reserved, nothing to say where
            return {}
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
            self.groups[group], placement_group_bundle_index=index, placement_group_capture_child_tasks=False)}

    def learner(self, index: int) -> dict:
        return self._strategy("learners", index)

    def shard(self, index: int) -> dict:
        return self._strategy("learners", self.num_learners + index)

    def actor(self, index: int) -> dict:
        return self._strategy("actors", index)

    def slots(self, learner: int, shards: range, actors: range) -> dict:
        """One side of a run's bundles: {"learner": options, "shards": [options], "actors": [options]}."""
        return {"learner": self.learner(learner), "shards": [self.shard(i) for i in shards],
                "actors": [self.actor(i) for i in actors]}

    def release(self, group: str) -> None:
        if group in self.groups:  # the local runner reserves none
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.groups.pop(group))

    def release_all(self) -> None:
        for group in list(self.groups):
            self.release(group)


def learner_bundle(label: str, use_gpu: bool, resource: str | None, gpu_share: float = 1.0) -> Bundle:
    resources = {"CPU": 1.0}
    if use_gpu:
        resources["GPU"] = gpu_share
    if resource:
        resources[resource] = 1.0
    return Bundle("learner", label, resources)


def plan_run(learner_labels: list[str], use_gpu: bool, learner_resource: str | None, shard_bytes: list[tuple[str, int]],
             actors: int, actor_gpus: float, learner_gpu_share: float = 1.0) -> PlacementPlan:
    learners = [learner_bundle(label, use_gpu, learner_resource, learner_gpu_share) for label in learner_labels]
    shards = [Bundle("shard", label, {"memory": float(size)}) for label, size in shard_bytes]
    actor_resources = {"CPU": 1.0, **({"GPU": actor_gpus} if actor_gpus > 0 else {})}
    actor_bundles = [Bundle("actor", f"actor {i}", actor_resources) for i in range(actors)]
    return PlacementPlan(learners, shards, actor_bundles, alive_nodes())
