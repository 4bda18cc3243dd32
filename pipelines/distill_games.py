"""A distillation run's games: each game's teacher, environment, recording and data plane, checked
before anything starts, started, watched through its shards' figures and stopped."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from atari_distill.actors.env import EnvConfig, actor_seed, resolve_env_mode
from atari_distill.actors.games import GameSpec, game_spec
from atari_distill.actors.teachers import load_teacher
from atari_distill.cluster.runtime import WindDown
from atari_distill.models.checkpoint import fingerprint
from atari_distill.pipelines.config import ConfigError, DistillConfig
from atari_distill.pipelines.data_plane import DataPlane
from atari_distill.pipelines.skeleton import CUMULATIVE_COUNTS, RunStart
from atari_distill.replay.dataset import Dataset
from atari_distill.replay.memory_plan import MemoryPlan
from atari_distill.replay.rate_limiter import RateLimit
from atari_distill.replay.shard import SHARD_ANSWER_S, UNAVAILABLE, shard_for_actor
from atari_distill.runners import handles


def teacher_seed(cfg: DistillConfig, dataset: Dataset | None) -> int:
    """A recorded random teacher is rebuilt from the seed it was recorded with."""
    return int(dataset.index["teacher"].get("seed", cfg.run.seed)) if dataset else cfg.run.seed


def check_dataset(cfg: DistillConfig, dataset: Dataset, source: str, teacher: dict, echo) -> bool:
    """Refuses a dataset the run cannot use; returns whether it fits the replay (load once)."""
    recorded = dataset.index["teacher"]
    if fingerprint(teacher) != recorded.get("fingerprint"):
        message = (f"teacher {source!r} (fingerprint {fingerprint(teacher)}) is not the teacher that recorded "
                   f"{str(dataset.path)!r} ({recorded.get('source')}, fingerprint {recorded.get('fingerprint')})")
        if source != "random" or recorded.get("source") != "random":
            raise ConfigError(message + "; pass the recording teacher's checkpoint")
        echo(f"[distill] warning: {message}; the random teacher was rebuilt on another machine")
    streams = len(dataset.actors)
    if cfg.replay.replay_shards > streams:
        raise ConfigError(f"--replay-shards {cfg.replay.replay_shards} exceeds the {streams} actor stream(s) in "
                          f"{str(dataset.path)!r}; each stream feeds one shard, so lower --replay-shards")
    for line in dataset.damage:
        echo(f"[distill] skipping damaged data: {line}")
    return bool((shard_fill(dataset, cfg.replay.replay_shards) <= cfg.replay.capacity_steps // cfg.replay.replay_shards)
                .all())


def shard_fill(dataset: Dataset, shards: int) -> np.ndarray:
    """The steps each of `shards` shards takes from a recording (each actor stream feeds one shard)."""
    per_shard = np.zeros(shards, np.int64)
    for record in dataset.records:
        per_shard[shard_for_actor(record.actor_id, shards)] += record.steps
    return per_shard


def replay_steps(cfg: DistillConfig, games: list["GameRun"]) -> int:
    """Steps per game the replay holds: --capacity-hours, or, where every game is a recording that fits in
    less, what the largest shard of them takes (ten recordings of 2,048 steps need megabytes, not the 36
    GiB that an hour of play a game would)."""
    if not games or not all(g.dataset is not None and g.load_once for g in games):
        return cfg.replay.capacity_steps
    shards = cfg.replay.replay_shards
    return min(cfg.replay.capacity_steps, shards * max(int(shard_fill(g.dataset, shards).max()) for g in games))


@dataclass
class GameRun:
    """One game's part of a run: its teacher, environment, replay shards and producers."""

    spec: GameSpec
    teacher: dict
    env_config: EnvConfig
    dataset: Dataset | None = None
    load_once: bool = False
    env_mode: str = "native"  # how the teacher saw the game; the student is played the same way
    teacher_ref: object = None
    plane: DataPlane = field(init=False)

    def __post_init__(self):
        self.plane = DataPlane(self.spec)


def prepare_games(cfg: DistillConfig, echo) -> list[GameRun]:
    """Loads every teacher and dataset before Ray starts, so bad files fail fast."""
    games, recordings = [], cfg.game_datasets()
    for name, source in cfg.game_teachers():
        spec = game_spec(name)
        dataset = Dataset.open(recordings[name], cfg.skip_damaged) if recordings[name] else None
        teacher = load_teacher(source, spec, teacher_seed(cfg, dataset))
        load_once = check_dataset(cfg, dataset, source, teacher, echo) if dataset else False
        env_config = dataclasses.replace(cfg.acting.env_config(teacher), life_loss_terminal=cfg.rl.rl_life_loss_terminal)
        games.append(GameRun(spec, teacher, env_config, dataset, load_once,
                             env_mode=resolve_env_mode(cfg.acting.env_mode, teacher)))
    return games


def start_game(cfg: DistillConfig, game: GameRun, index: int, plan: MemoryPlan, start: RunStart,
               replay_ratio: float) -> None:
    dataset = game.dataset
    rate = RateLimit(ratio=0.0 if game.load_once else replay_ratio,
                     insert_steps=max(r.steps for r in dataset.records) if dataset else cfg.acting.chunk_size,
                     min_replay=min(cfg.replay.min_replay, dataset.steps) if dataset else cfg.replay.min_replay,
                     batch_size=cfg.student.batch_size)
    first_shard = index * cfg.replay.replay_shards
    game.plane.open_shards(plan, rate, writers=1 if dataset else cfg.acting.actors,
                           readers=cfg.replay.prefetch * len(cfg.student.pairs()) * cfg.learner_gpus, seed=cfg.run.seed,
                           placement=[start.placement.shard(first_shard + j) for j in range(cfg.replay.replay_shards)])
    game.teacher_ref = handles.put(game.teacher)
    if dataset:
        game.plane.feed(dataset, game.load_once)
        if game.load_once:
            start.echo(f"[distill] loaded {dataset.steps:,} steps of {dataset.path} into replay")
        return
    game.plane.start_actors(
        [{**start.actor_options, **start.placement.actor(index * cfg.acting.actors + i)} for i in range(cfg.acting.actors)],
        game.teacher_ref,
        lambda i: dict(game=game.spec.name, num_envs=cfg.acting.envs_per_actor, env_config=game.env_config,
                       epsilon=cfg.acting.epsilon, seed=actor_seed(cfg.run.seed, i), actor_id=i,
                       chunk_steps=cfg.acting.chunk_steps, device=start.actor_device,
                       groups=cfg.acting.groups(start.actor_device), label_losses=cfg.student.label_losses()),
        restartable=True)


def interval_metrics(games: list[GameRun], previous: dict, timeout_s: float | None = None) -> dict:
    per_game = {g.spec.name: g.plane.stats(timeout_s) for g in games}
    totals = {key: sum(r[key] for r in per_game.values()) for key in
              ("replay_size", "labelled_steps", "replayed_steps", "sampled_steps", "insert_wait_s", "sample_wait_s",
               "rejected_chunks", "dropped_steps", "stream_restarts", "student_acted_steps")}
    totals["shard_sizes"] = [size for r in per_game.values() for size in r["shard_sizes"]]
    into = totals["labelled_steps"] + totals["replayed_steps"]  # what the rate limiter counts
    totals["observed_replay_ratio"] = totals["sampled_steps"] / into if into else None
    inserted = into - previous.get("labelled_steps", 0) - previous.get("replayed_steps", 0)
    totals["interval_replay_ratio"] = ((totals["sampled_steps"] - previous.get("sampled_steps", 0)) / inserted
                                       if inserted else None)
    if len(games) > 1:
        totals["replay_per_game"] = per_game
    totals["from_dataset"] = all(g.dataset for g in games)  # no teacher labels anything: no labelling rate to show
    return totals


def continued(replay: dict, base: dict) -> dict:
    """This segment's replay figures on from `base` (counters_at), each game's too; its ratios stay the
    segment's own."""
    figures = {**replay, **{key: replay[key] + base[key] for key in CUMULATIVE_COUNTS if key in base and key in replay}}
    if isinstance(replay.get("replay_per_game"), dict) and base.get("replay_per_game"):
        figures["replay_per_game"] = {game: continued(own, base["replay_per_game"].get(game, {}))
                                      for game, own in replay["replay_per_game"].items()}
    return figures


def replay_figures(games: list[GameRun], previous: dict) -> dict:
    """This interval's replay figures; a shard that does not answer in SHARD_ANSWER_S (its node left,
    and it waits to be placed again) leaves the last interval's, so the learners' own loss decides."""
    try:
        return interval_metrics(games, previous, SHARD_ANSWER_S)
    except handles.AnswerTimeout:
        return previous


def checkpoint_extra(games: list[GameRun]) -> dict:
    """What a student checkpoint says besides its weights: its game(s) and the env mode each was played in
    (`evaluate` and `export` read `env_modes`, so a student of a CleanRL teacher plays with FIRE on reset)."""
    modes = {"env_modes": {g.spec.name: g.env_mode for g in games}}
    if len(games) == 1:
        return {"game": games[0].spec.name, "env_mode": games[0].env_mode, **modes}
    return {"games": [g.spec.name for g in games], **modes}


def stop_producers(games: list[GameRun], budget: WindDown) -> dict[str, list[dict]]:
    """Actors stop, shards stop waiting; each game's producer stats once every `run` has returned (or
    was given up on: an actor lost with its node)."""
    return {g.spec.name: g.plane.stop(budget) for g in games}


def final_replay(games: list[GameRun], budget: WindDown) -> dict:
    try:
        return interval_metrics(games, {}, timeout_s=budget.left())
    except (handles.AnswerTimeout, handles.ActorLost):  # a shard lost with its node, or dead
        return {"unavailable": UNAVAILABLE, "stream_restarts": 0}


def free_producers(games: list[GameRun]) -> None:
    """Kills the actors and shards, freeing their CPUs and memory (for the evaluators)."""
    for g in games:
        g.plane.free()
