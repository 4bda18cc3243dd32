"""A wind-down gives up on a producer that cannot return (an actor lost with its node, whose restart
waits for room that may not come) instead of waiting on it forever; a run that raised still raises."""

import time

import pytest

from atari_distill.cluster.runtime import LOST_RUN, WindDown, runs_within
from tests.conftest import kill_shard


class Producer:
    def __init__(self, behaviour: str):
        self.behaviour = behaviour

    def run(self) -> dict:
        if self.behaviour == "hangs":
            time.sleep(3600)
        if self.behaviour == "raises":
            raise RuntimeError("the producer failed")
        return {"steps": 7, "swaps": []}

    def stats(self) -> dict:
        if self.behaviour == "hangs":
            time.sleep(3600)
        return {"capacity": 256}

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def plane_of(producers: list, shards: list):
    """A data plane over these stand-ins (a Producer plays an actor and a shard), its runs started."""
    from atari_distill.actors.games import game_spec
    from atari_distill.pipelines.data_plane import DataPlane

    plane = DataPlane(game_spec("pong"))
    plane.producers, plane.shards, plane.sinks = producers, shards, shards
    plane.runs = [producer.run.remote() for producer in producers]
    return plane


def wound_down(plane, seconds: float) -> tuple:
    budget = WindDown(seconds)
    return plane.stop(budget), plane.shard_stats(budget)


def test_a_producer_that_never_returns_is_given_up_on(ray_runtime):
    ray = ray_runtime
    actors = [ray.remote(Producer).options(num_cpus=0).remote(b) for b in ("returns", "hangs")]
    ray.get([actor.__ray_ready__.remote() for actor in actors])  # on a loaded machine, starting one may take seconds
    started = time.monotonic()
    stats = runs_within([actor.run.remote() for actor in actors], timeout_s=3)
    assert time.monotonic() - started < 30
    assert stats == [{"steps": 7, "swaps": []}, LOST_RUN]
    for actor in actors:
        ray.kill(actor)


def test_a_producer_that_raised_still_raises(ray_runtime):
    ray = ray_runtime
    actor = ray.remote(Producer).options(num_cpus=0).remote("raises")
    with pytest.raises(ray.exceptions.RayTaskError, match="the producer failed"):
        runs_within([actor.run.remote()], timeout_s=30)
    ray.kill(actor)


def test_a_wind_down_spends_one_budget_across_its_stages():
    """A node lost with an actor and a shard: the actors' runs use up the budget, and the shards' stats
    then get only the short time a live shard needs, not a second full wait."""
    wind_down = WindDown(0.3)
    assert 0.2 < wind_down.left(at_least=0) <= 0.3
    time.sleep(0.35)
    assert wind_down.left(at_least=1.5) == 1.5


def test_a_wind_down_reports_the_live_and_gives_up_on_the_lost(ray_runtime):
    """What every run's data plane does at its end: a lost producer's run and a lost shard's stats
    cost one short wait, and a live pair is reported whole."""
    ray = ray_runtime
    live, lost = (ray.remote(Producer).options(num_cpus=0).remote(b) for b in ("returns", "hangs"))
    ray.get([live.__ray_ready__.remote(), lost.__ray_ready__.remote()])  # the waits below are the wind-down's alone
    assert wound_down(plane_of([live], [live]), 3) == ([{"steps": 7, "swaps": []}], [{"capacity": 256}])
    started = time.monotonic()
    assert wound_down(plane_of([live, lost], [live, lost]), 3) == ([{"steps": 7, "swaps": []}, LOST_RUN], None)
    assert time.monotonic() - started < 20
    for actor in (live, lost):
        ray.kill(actor)


def test_a_finished_distillation_reports_a_dead_shard_as_unavailable(ray_runtime):
    """A shard whose actor died for good answers at once with an error, not a timeout: the run's
    summary must still be written, saying the replay figures are unavailable."""
    from atari_distill.actors.env import EnvConfig
    from atari_distill.actors.games import game_spec
    from atari_distill.pipelines.distill import GameRun, final_replay
    from atari_distill.replay.shard import UNAVAILABLE, ReplayShard

    ray = ray_runtime
    shard = ray.remote(ReplayShard).options(num_cpus=0, max_restarts=0).remote("pong", 6, 256, 5)
    ray.get(shard.__ray_ready__.remote())
    game = GameRun(game_spec("pong"), {}, EnvConfig())
    game.plane.shards = [shard]
    assert final_replay([game], WindDown(3))["shard_sizes"] == [0]
    kill_shard(ray, shard)
    assert final_replay([game], WindDown(3)) == {"unavailable": UNAVAILABLE, "stream_restarts": 0}
