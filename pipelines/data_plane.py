"""A run's data plane for one game: its replay shards and the producers that fill them.

Producers are rollout actors labelling with a teacher (distill, multitask, a DQN's own actors,
an online run's student side) or a feeder reading a recording; `record` streams its actors into
a dataset writer instead of shards. Every run kind starts them, stops them within one wind-down
budget and frees them through this class, on either runner.
"""

from __future__ import annotations

from typing import Callable

from atari_distill.actors.games import GameSpec
from atari_distill.actors.rollout import RolloutActor
from atari_distill.cluster.runtime import NO_TASK_EVENTS, WindDown, kill_when_answered, on_this_node, runs_within
from atari_distill.replay.dataset import Dataset, DatasetFeeder
from atari_distill.replay.memory_plan import MemoryPlan
from atari_distill.replay.rate_limiter import RateLimit
from atari_distill.replay.shard import launch_shards, replay_totals, shard_for_actor, stats_if_answered
from atari_distill.runners import handles

# Ray restarts a dead actor in its bundle and retries its `run`, which streams on
RESTARTABLE = {"max_restarts": -1, "max_task_retries": -1}


class DataPlane:
    def __init__(self, game: GameSpec):
        self.game = game
        self.rate: RateLimit | None = None
        self.shards: list = []
        self.sinks: list = []  # where producers stream: the shards, or a dataset writer
        self.producers: list = []
        self.runs: list = []  # each producer's `run`, which returns its stats once it is told to stop
        self.closing: list = []  # the shards' close calls, answered before they are killed

    def open_shards(self, plan: MemoryPlan, rate: RateLimit, *, writers: int, readers: int, seed: int,
                    placement: list[dict], insert_budget: list[int] | None = None) -> None:
        """This game's shards of `plan`. Each serves at once every producer's insert (`writers` over the
        shards), every learner's batch requests in flight (`readers`), and the driver's few small calls."""
        shard_plans = [s for s in plan.shards if s.game == self.game.name]
        self.rate = rate
        self.shards = self.sinks = launch_shards(
            self.game.name, self.game.num_actions, [s.steps for s in shard_plans], rate,
            concurrency=-(-writers // len(shard_plans)) + readers + 4, seed=seed,
            memory=[s.memory for s in shard_plans], slot_bytes=plan.slot_bytes, placement=placement,
            insert_budget=insert_budget)

    def stream_into(self, sinks: list) -> None:
        """Producers write to `sinks` (a dataset writer) rather than to shards."""
        self.sinks = list(sinks)

    def start_actors(self, options: list[dict], teacher, settings: Callable[[int], dict],
                     restartable: bool = False) -> None:
        """One rollout actor per `options` entry (its placement and resources), actor i built with
        `settings(i)` and streaming into sink i mod the sinks, labelling with `teacher` (a ref) until told
        otherwise."""
        self.producers = [
            handles.remote(RolloutActor, **o, **NO_TASK_EVENTS, max_concurrency=2, **(RESTARTABLE if restartable else {}))
            .remote(**settings(i)) for i, o in enumerate(options)]
        self.runs = [actor.run.remote(self.sinks[shard_for_actor(i, len(self.sinks))], teacher)
                     for i, actor in enumerate(self.producers)]

    def feed(self, dataset: Dataset, load_once: bool) -> None:
        """A recording into the shards: once, then the feeder is freed and the shards take no more
        (it all fits), or looping until the run stops."""
        feeder = handles.remote(DatasetFeeder, num_cpus=1, max_concurrency=2, **NO_TASK_EVENTS,
                                scheduling_strategy=on_this_node()).remote(dataset, self.shards)
        self.producers, self.runs = [feeder], [feeder.run.remote(loop=not load_once)]
        if load_once:
            handles.get(self.runs)
            self.closing = [shard.close.remote() for shard in self.shards]
            handles.kill(feeder)  # its CPU to the evaluators; its run's stats stay with its finished task
            self.producers = []

    def tell(self, method: str, *args) -> None:
        """Every producer's `method` (new weights, a new teacher), not waited on."""
        for producer in self.producers:
            getattr(producer, method).remote(*args)

    def stats(self, timeout_s: float | None = None) -> dict:
        """The shards' stats summed; raises AnswerTimeout or ActorLost for a shard that does not answer."""
        return replay_totals(handles.get([shard.stats.remote() for shard in self.shards], timeout=timeout_s))

    def halt(self) -> None:
        """Producers told to stop and shards to take no more (a learner waiting on them is answered)."""
        self.tell("stop")
        self.closing = [shard.close.remote() for shard in self.shards]

    def stop(self, budget: WindDown, halted: bool = False) -> list[dict]:
        """`halt` (unless `halted` already), then each producer's final stats (LOST_RUN for one that did
        not return within the budget: it was lost with its node)."""
        if not halted:
            self.halt()
        return runs_within(self.runs, budget.left())

    def shard_stats(self, budget: WindDown) -> list[dict] | None:
        """Every shard's stats, or None when one does not answer within the budget."""
        return stats_if_answered(self.shards, budget.left())

    def free(self) -> None:
        """Every producer and sink killed, once the shards have answered their close."""
        kill_when_answered([*self.producers, *self.sinks], self.closing)
        self.producers, self.shards, self.sinks, self.runs, self.closing = [], [], [], [], []
