"""A distillation run: teacher actors (or a recorded dataset) -> replay shards -> learner -> evaluation.

One game gives a single-head student; several games (`launch.py multitask`) give one student
with a head per game, each game with its own teacher, actors and replay shards, and the
learner drawing games by a fixed schedule. A sweep (`--student a,b --loss x,y`) trains one
learner per pair from the same actors and replay, so the teacher's frames are made once.
The driver only wires Ray actors together, logs what the learners report, and owns the run
directory; every heavy step runs in an actor placed by the placement plan, so the same
code drives a laptop and a cluster.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from atari_distill.actors.env import EnvConfig, actor_seed, resolve_env_mode
from atari_distill.actors.evaluate import collect_evaluation, result_of, submit_evaluation
from atari_distill.actors.games import GameSpec, game_spec
from atari_distill.actors.rollout import RolloutActor
from atari_distill.actors.teachers import load_teacher
from atari_distill.cluster.learner_group import LearnerGroup, LearnerLost
from atari_distill.cluster.placement import PLACEMENT_TIMEOUT_S, PlacementPlan, plan_run
from atari_distill.cluster.runtime import NO_TASK_EVENTS, WindDown, kill_when_answered, on_this_node, runs_within
from atari_distill.learner.batches import shard_slot_bytes
from atari_distill.learner.learner import LearnerConfig
from atari_distill.models.checkpoint import fingerprint, payload_params
from atari_distill.pipelines.stopping import StopToken
from atari_distill.pipelines.config import ConfigError, DistillConfig
from atari_distill.actors.protocol import REPORT
from atari_distill.pipelines.evaluation import compare, geometric_means, majority_baseline, submit_holdouts
from atari_distill.pipelines.score_cache import KeptOrPlayed, ScoreCache, policy_key
from atari_distill.rundir.directory import RunDir
from atari_distill.pipelines.skeleton import RunStart, on_its_runner, start_run
from atari_distill.pipelines.student_evaluations import StudentEvaluations, eval_kind
from atari_distill.replay.dataset import Dataset, DatasetFeeder
from atari_distill.replay.memory_plan import MemoryPlan
from atari_distill.replay.shard import (SHARD_ANSWER_S, UNAVAILABLE, ReplayLost, ShardWatch, launch_shards, replay_totals,
                          shard_for_actor)
from atari_distill.runners import handles


def learner_config(cfg: DistillConfig, student: str, loss: str, min_replay: int) -> LearnerConfig:
    return LearnerConfig(student=dataclasses.replace(cfg.student, preset=student, loss=loss),
                         prefetch=cfg.replay.prefetch, min_replay=min_replay, device=cfg.run.device, seed=cfg.run.seed,
                         rl=cfg.rl)


def checkpoint_series(cfg: DistillConfig) -> list[str]:
    """Checkpoint series (their files' prefix), one per student: `student` alone, `student-PRESET-LOSS` in a sweep."""
    pairs = cfg.student.pairs()
    return ["student"] if len(pairs) == 1 else [f"student-{student}-{loss}" for student, loss in pairs]


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
    per_shard = np.zeros(cfg.replay.replay_shards, np.int64)
    for record in dataset.records:
        per_shard[shard_for_actor(record.actor_id, cfg.replay.replay_shards)] += record.steps
    return bool((per_shard <= cfg.replay.capacity_steps // cfg.replay.replay_shards).all())


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
    shards: list = field(default_factory=list)
    producers: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    closing: list = field(default_factory=list)  # shards' close calls still owed an answer
    limiter: dict = field(default_factory=dict)

    def stats(self, timeout_s: float | None = None) -> dict:
        return replay_totals(handles.get([shard.stats.remote() for shard in self.shards], timeout=timeout_s))


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
    placement = start.placement
    dataset = game.dataset
    insert_steps = max(r.steps for r in dataset.records) if dataset else cfg.acting.chunk_size
    producers_per_shard = 1 if dataset else -(-cfg.acting.actors // cfg.replay.replay_shards)
    game.limiter = {"ratio": 0.0 if game.load_once else replay_ratio, "insert_steps": insert_steps,
                    "min_replay": min(cfg.replay.min_replay, dataset.steps) if dataset else cfg.replay.min_replay,
                    "batch_size": cfg.student.batch_size}
    shard_plans = [s for s in plan.shards if s.game == game.spec.name]
    first_shard = index * cfg.replay.replay_shards
    game.shards = launch_shards(game.spec.name, game.spec.num_actions, [s.steps for s in shard_plans], game.limiter,
                                concurrency=producers_per_shard + 4
                                + cfg.replay.prefetch * len(cfg.student.pairs()) * cfg.learner_gpus,
                                seed=cfg.run.seed, memory=[s.memory for s in shard_plans], slot_bytes=plan.slot_bytes,
                                placement=[placement.shard(first_shard + j) for j in range(len(shard_plans))])
    game.teacher_ref = handles.put(game.teacher)
    if dataset:
        feeder = handles.remote(DatasetFeeder, num_cpus=1, max_concurrency=2, **NO_TASK_EVENTS,
                                                   scheduling_strategy=on_this_node()).remote(dataset, game.shards)
        game.producers, game.runs = [feeder], [feeder.run.remote(loop=not game.load_once)]
        if game.load_once:
            handles.get(game.runs)
            game.closing = [shard.close.remote() for shard in game.shards]
            handles.kill(feeder)  # its CPU to the evaluators; its run's stats stay with its finished task
            game.producers = []
            start.echo(f"[distill] loaded {dataset.steps:,} steps of {dataset.path} into replay")
        return
    # Ray restarts a dead actor in its bundle and retries its `run`, which streams on
    game.producers = [
        handles.remote(RolloutActor, **start.actor_options, **NO_TASK_EVENTS, max_concurrency=2, max_restarts=-1, max_task_retries=-1,
                                         **placement.actor(index * cfg.acting.actors + i)).remote(
            game=game.spec.name, num_envs=cfg.acting.envs_per_actor, env_config=game.env_config,
            epsilon=cfg.acting.epsilon, seed=actor_seed(cfg.run.seed, i), actor_id=i,
            chunk_steps=cfg.acting.chunk_steps, device=start.actor_device,
            groups=cfg.acting.groups(start.actor_device), label_losses=cfg.student.label_losses())
        for i in range(cfg.acting.actors)
    ]
    game.runs = [actor.run.remote(game.shards[shard_for_actor(i, cfg.replay.replay_shards)], game.teacher_ref)
                 for i, actor in enumerate(game.producers)]


def interval_metrics(games: list[GameRun], previous: dict, timeout_s: float | None = None) -> dict:
    per_game = {g.spec.name: g.stats(timeout_s) for g in games}
    totals = {key: sum(r[key] for r in per_game.values()) for key in
              ("replay_size", "labelled_steps", "sampled_steps", "insert_wait_s", "sample_wait_s",
               "rejected_chunks", "dropped_steps", "stream_restarts", "student_acted_steps")}
    totals["shard_sizes"] = [size for r in per_game.values() for size in r["shard_sizes"]]
    totals["observed_replay_ratio"] = (totals["sampled_steps"] / totals["labelled_steps"]
                                       if totals["labelled_steps"] else None)
    inserted = totals["labelled_steps"] - previous.get("labelled_steps", 0)
    totals["interval_replay_ratio"] = ((totals["sampled_steps"] - previous.get("sampled_steps", 0)) / inserted
                                       if inserted else None)
    if len(games) > 1:
        totals["replay_per_game"] = per_game
    totals["from_dataset"] = all(g.dataset for g in games)  # no teacher labels anything: no labelling rate to show
    return totals


def replay_figures(games: list[GameRun], previous: dict) -> dict:
    """This interval's replay figures; a shard that does not answer in SHARD_ANSWER_S (its node left,
    and it waits to be placed again) leaves the last interval's, so the learners' own loss decides."""
    try:
        return interval_metrics(games, previous, SHARD_ANSWER_S)
    except handles.AnswerTimeout:
        return previous


def plan_placement(cfg: DistillConfig, games: list[GameRun], plan: MemoryPlan, use_gpu: bool) -> PlacementPlan:
    labels = [f"learner {student}/{loss} rank {rank}" for student, loss in cfg.student.pairs()
              for rank in range(cfg.learner_gpus)]
    shards = [(f"shard {s.game}/{s.index}", s.memory) for s in plan.shards]
    actors = sum(0 if g.dataset else cfg.acting.actors for g in games)
    return plan_run(labels, use_gpu, cfg.learner_resource, shards, actors, cfg.acting.actor_gpus)


def train_learners(cfg: DistillConfig, run: RunDir, groups: list[LearnerGroup], games: list[GameRun],
                   resume: dict, started: float, evaluations: StudentEvaluations, echo,
                   stop: StopToken) -> dict[str, int]:
    """Trains every student to cfg.updates (or until a stop is asked for), logging each interval,
    checkpointing and scoring it every cfg.eval_every updates; a learner that dies is rebuilt
    from its last checkpoint while the others go on. Returns each student's update count."""
    extra = checkpoint_extra(games)
    updates = {g.series: (resume.get(g.series) or {}).get("updates", 0) for g in groups}
    saved = dict(updates)
    previous = interval_metrics(games, {})
    watch = ShardWatch({g.spec.name: g.shards for g in games}, PLACEMENT_TIMEOUT_S)
    abandoned = set()
    while any(updates[g.series] < cfg.updates for g in groups) and not stop.requested():
        active = [g for g in groups if updates[g.series] < cfg.updates]
        calls = {g.series: g.submit_train(interval(cfg, updates[g.series])) for g in active}
        replay = None
        for k, group in enumerate(active):
            try:  # a learner lost mid-interval, or before its checkpoint is taken, is rebuilt from the last one
                metrics = group.collect(calls[group.series], watch)
                updates[group.series] = metrics["updates"]
                if replay is None:
                    replay = previous = replay_figures(games, previous)
                metrics.update(replay, elapsed_s=time.monotonic() - started, learner_restarts=group.restarts)
                if len(groups) > 1:
                    metrics["kind"] = metrics_kind(group.series)
                if len(games) == 1:
                    metrics.pop("samples_per_game")
                run.log(metrics)
                if updates[group.series] % cfg.run.checkpoint_every == 0 or updates[group.series] >= cfg.updates:
                    run.save_checkpoint(group.state(extra), group.series)
                    saved[group.series] = updates[group.series]
            except (handles.ActorLost, ReplayLost) as error:
                if isinstance(error, ReplayLost):  # every student samples every shard: none can go on
                    stop.request(str(error))
                else:
                    updates[group.series] = saved[group.series] = rebuild(run, group, error, echo, stop)
                if not stop.requested():
                    continue
                for waiting in active[k + isinstance(error, handles.ActorLost):]:
                    # the others' intervals are not waited for (on a lost node or replay they may never
                    # end): each student stops at its last checkpoint, and a resume goes on from there
                    waiting.abandon(calls[waiting.series])
                    updates[waiting.series] = saved[waiting.series]
                    abandoned.add(waiting.series)
                break
            if cfg.eval_every and updates[group.series] % cfg.eval_every == 0 and updates[group.series] < cfg.updates:
                evaluations.submit(group, metrics_kind(group.series), updates[group.series], extra)
            if cfg.drive.student_drives() and updates[group.series] % cfg.drive.behaviour_every == 0:
                push_student(group, games, cfg.drive.beta(updates[group.series]))
        evaluations.poll()
    if stop.requested():  # a final checkpoint where the last interval ended
        for group in groups:
            if saved[group.series] != updates[group.series] and group.series not in abandoned:
                run.save_checkpoint(group.state(extra), group.series)
    return updates


def push_student(group: LearnerGroup, games: list[GameRun], beta: float) -> None:
    """The student's current weights to every teacher actor, to act with in a share 1 - beta of the
    episodes (--behaviour); not waited on: an actor takes them at its next chunk boundary."""
    policy = group.policy()
    for game in games:
        for actor in game.producers:
            actor.set_student.remote(policy, beta)


def rebuild(run: RunDir, group: LearnerGroup, error: Exception, echo, stop: StopToken) -> int:
    """A dead learner again, from its last checkpoint (its metrics logged past it dropped); returns
    its update count. One that cannot be placed again asks the run to stop, with every other
    student's final checkpoint."""
    state, skipped = run.latest_checkpoint(group.series)
    echo(f"[distill] learner {group.label} died ({type(error).__name__}); restarting from update "
         f"{state['updates'] if state else 0}" + (f", skipping {len(skipped)} unreadable" if skipped else ""))
    updates = state["updates"] if state else 0
    run.trim_metrics(metrics_kind(group.series), updates)
    run.trim_metrics(eval_kind(metrics_kind(group.series)), updates)  # its curve points past it are drawn again
    try:
        group.restart(state)
    except LearnerLost as lost:
        stop.request(str(lost))
    return updates


def interval(cfg: DistillConfig, done: int) -> int:
    """Updates until the next log line, checkpoint, evaluation or the end, whichever comes first, so
    each happens at its exact multiple whatever the other flags are."""
    every = [cfg.run.log_every, cfg.run.checkpoint_every] + ([cfg.eval_every] if cfg.eval_every else []) + (
        [cfg.drive.behaviour_every] if cfg.drive.student_drives() else [])
    return min([m - done % m for m in every] + [cfg.updates - done])


def metrics_kind(series: str) -> str:
    """The `kind` of a learner's metrics records: `distill` (implicit) alone, `distill-PRESET-LOSS` in a sweep."""
    return series.replace("student", "distill", 1)


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
    for game in games:
        for producer in game.producers:
            producer.stop.remote()
        game.closing = [shard.close.remote() for shard in game.shards]
    stats = iter(runs_within([run for g in games for run in g.runs], budget.left()))
    return {g.spec.name: [next(stats) for _ in g.runs] for g in games}


def final_replay(games: list[GameRun], budget: WindDown) -> dict:
    try:
        return interval_metrics(games, {}, timeout_s=budget.left())
    except (handles.AnswerTimeout, handles.ActorLost):  # a shard lost with its node, or dead
        return {"unavailable": UNAVAILABLE, "stream_restarts": 0}


def free_producers(games: list[GameRun]) -> None:
    """Kills the actors and shards, freeing their CPUs and memory (for the evaluators)."""
    for g in games:
        kill_when_answered([*g.producers, *g.shards], g.closing)


def stop_early(cfg: DistillConfig, start: RunStart, games: list[GameRun], groups: list[LearnerGroup],
               updates: dict) -> dict:
    """After a stop was asked for: everything down, and a summary that says how far it got."""
    for group in groups:  # first, so no learner is left waiting on a shard that goes away
        group.kill()
    budget = WindDown()
    stop_producers(games, budget)
    replay = final_replay(games, budget)
    free_producers(games)
    return start.stopped({"student": cfg.student.preset, "loss": cfg.student.loss, "updates": max(updates.values()),
                          "updates_per_student": updates, "target_updates": cfg.updates, "replay": replay,
                          "restarts": {"actors": replay["stream_restarts"],
                                       "learners": sum(g.restarts for g in groups)}})


def student_results(cfg: DistillConfig, group: LearnerGroup, student: dict, games: list[GameRun], holdouts: dict,
                    teacher_evals: dict, pending: dict, echo) -> dict:
    per_game = {}
    for g in games:
        name = g.spec.name
        result = collect_evaluation(pending[name], cfg.evaluation.epsilon, cfg.acting.noop_max)
        echo.evaluation(f"{group.label} {name}", result.text())
        teacher, random = teacher_evals[name]
        agreement = {key: handles.get(group.agreement(obs, q, name)) for key, (obs, q, _) in holdouts[name].items()}
        per_game[name] = {"student_score": result.as_dict(), **compare(result.as_dict(), teacher.as_dict(),
                                                                         random.as_dict()),
                          "action_agreement": agreement["plain"], "action_agreement_sticky": agreement["sticky"]}
    settings = group.config.student
    row = {"student": settings.preset, "loss": settings.loss, "student_params": payload_params(student),
           "updates": student["updates"], "replicas": group.replicas, "learner_restarts": group.restarts,
           "checkpoint_series": group.series}
    if len(games) == 1:
        return {**row, **per_game[games[0].spec.name]}
    return {**row, "per_game": per_game, **geometric_means(per_game),
            "mean_action_agreement": float(np.mean([r["action_agreement"] for r in per_game.values()]))}


def rl_results(cfg: DistillConfig, start: RunStart, game: GameRun, group: LearnerGroup, student: dict,
               best: dict | None, best_pending: list | None, teacher_scores: dict) -> dict:
    """A student that learnt from the reward too: its handoff, when its selection score reached the
    teacher's and when it passed it (its lower 95% bound above), and its best selection-seed checkpoint
    played on the report seeds (the final student's score stays the summary's own; a best chosen on
    selection seeds is stated on the others, as a DQN's)."""
    from atari_distill.pipelines.student_evaluations import first_update

    kind = eval_kind(metrics_kind(group.series))
    result = {"rl_weight": cfg.rl.rl_weight, "handoff": cfg.rl.handoff, "n_step": cfg.rl.rl_n_step,
              "gamma": cfg.rl.rl_gamma, "target_every": cfg.rl.rl_target_every,
              "life_loss_terminal": cfg.rl.rl_life_loss_terminal,
              "distill_weight": student["extra"].get("distill_weight"),
              "selection_episodes": cfg.evaluation.selection_episodes, "best": None}
    records = start.run.metrics()
    apart = [r["teacher_apart_from_random"] for r in records if r.get("kind") == kind and "teacher_apart_from_random" in r]
    result.update(reached_teacher_at=first_update(records, kind, "reached_teacher"),
                  passed_teacher_at=first_update(records, kind, "passed_teacher"),
                  teacher_apart_from_random=apart[-1] if apart else None)
    if best is not None:
        name = game.spec.name
        played = collect_evaluation(best_pending, cfg.evaluation.epsilon, cfg.acting.noop_max)
        start.echo.evaluation(f"{group.label} best (update {best['updates']:,}) {name}", played.text())
        teacher, random = teacher_scores[name]
        result["best"] = {"updates": best["updates"], "selection_score": best["score"],
                          "student_score": played.as_dict(), **compare(played.as_dict(), teacher.as_dict(),
                                                                         random.as_dict())}
    return result


class TeacherEvaluation:
    """The teacher's and the random policy's scores on the report seeds and the teacher's held-out
    frames (across whole episodes, with and without sticky actions), made while the students train.
    Report episodes an earlier run played with the same teacher, seeds and code are read from the
    score cache instead (pipelines/score_cache.py)."""

    def __init__(self, cfg: DistillConfig, games: list[GameRun], scores: ScoreCache | None = None):
        self.cfg, self.games, self.protocol = cfg, games, cfg.protocol()
        self.scores = scores or ScoreCache.default()
        self.holdout_refs = {g.spec.name: submit_holdouts(g.spec.name, g.teacher_ref, self.protocol) for g in games}
        self.baselines = {(g.spec.name, random): self.baseline(g, random) for g in games for random in (False, True)}
        self.pending = {g.spec.name: self.baselines[g.spec.name, False].pending for g in games}

    def keep_if_played(self) -> None:
        for baseline in self.baselines.values():
            baseline.keep_if_played()

    def submit(self, g: GameRun, policy, random_policy: bool = False) -> list:
        return submit_evaluation(policy, g.spec.name, self.protocol.episodes, self.cfg.evaluation.workers,
                                 **self.protocol.play(REPORT, g.teacher, random_policy=random_policy))

    def baseline(self, g: GameRun, random_policy: bool) -> KeptOrPlayed:
        play = self.protocol.play(REPORT, g.teacher, random_policy=random_policy)
        key = self.scores.key(g.spec.name, policy_key(g.teacher, g.spec.num_actions, random_policy),
                              self.protocol.episodes, self.cfg.evaluation.workers, play)
        return KeptOrPlayed(self.scores, key, lambda: self.submit(g, g.teacher_ref, random_policy))

    def results(self, producer_stats: dict, echo) -> tuple[dict, dict, dict]:
        """Held-out frames, (teacher, random) results and each game's teacher record for the summary."""
        cfg = self.cfg
        holdouts = {name: {key: handles.get(ref) for key, ref in refs.items()} for name, refs in self.holdout_refs.items()}
        scores, per_game = {}, {}
        for g in self.games:
            name = g.spec.name
            result, random = (result_of(self.baselines[name, r].rows(), 1.0 if r else cfg.evaluation.epsilon,
                                        cfg.acting.noop_max) for r in (False, True))
            scores[name] = (result, random)
            kept = {r: " (kept)" if self.baselines[name, r].kept else "" for r in (False, True)}
            echo.evaluation(f"teacher {name}", result.text() + kept[False])
            echo.evaluation(f"random policy {name}", random.text() + kept[True])
            plain, sticky = holdouts[name]["plain"], holdouts[name]["sticky"]
            per_game[name] = {
                "teacher": g.teacher["extra"].get("source", "random"), "teacher_fingerprint": fingerprint(g.teacher),
                "teacher_params": payload_params(g.teacher), "num_actions": g.spec.num_actions,
                "steps_labelled": sum(s["steps"] for s in producer_stats[name]), "teacher_score": result.as_dict(),
                "random_score": random.as_dict(),
                "majority_baseline": majority_baseline(plain[1]), "majority_baseline_sticky": majority_baseline(sticky[1]),
                "holdout_steps": int(len(plain[1])), "holdout": {"plain": plain[2], "sticky": sticky[2]},
                "env_mode": g.env_mode,
                "scores_kept": [who for who, r in (("teacher", False), ("random", True)) if self.baselines[name, r].kept],
            }
        if any(b.kept for b in self.baselines.values()):
            echo(f"[distill] (kept): read from {self.scores.folder}, where an earlier run left the same episodes "
                 f"played by the same code; delete it to play them again")
        return holdouts, scores, per_game


def start_learners(cfg: DistillConfig, games: list[GameRun], start: RunStart, resume: dict) -> list[LearnerGroup]:
    """One learner group per student of the sweep, each from its checkpoint in `resume` if any."""
    heads = {g.spec.name: g.spec.num_actions for g in games}
    shards = {g.spec.name: g.shards for g in games}
    min_replay = min(g.limiter["min_replay"] for g in games)
    groups = []
    for k, ((student, loss), series) in enumerate(zip(cfg.student.pairs(), checkpoint_series(cfg))):
        weights = cfg.schedule_weights()
        if cfg.balanced() and resume.get(series):  # the shares the balancing had reached
            stored = resume[series].get("extra", {}).get("schedule", {})
            weights = stored.get("next_weights") or stored.get("weights", weights)
        group = LearnerGroup(f"{student}/{loss}", series, learner_config(cfg, student, loss, min_replay), heads, shards,
                             weights, cfg.learner_gpus, start.use_gpu,
                             [start.placement.learner(k * cfg.learner_gpus + r) for r in range(cfg.learner_gpus)],
                             start.stop.requested)
        group.start(resume.get(series))
        groups.append(group)
    return groups


@on_its_runner
def run_distill(cfg: DistillConfig, run: RunDir | None = None, resume: dict | None = None, echo=print,
                stop: StopToken | None = None) -> dict:
    """Distils one game, or several into one multi-head student, into one student or a sweep of
    them; runs into `run` (resuming from `resume`, checkpoint series -> state) or a new run
    directory at cfg.run.out, made once the memory and placement plans are known to fit; `stop` ends
    it early with a final checkpoint."""
    resume = resume or {}
    games = prepare_games(cfg, echo)
    sweep = cfg.student.pairs()
    plan = MemoryPlan({g.spec.name: g.spec.num_actions for g in games}, cfg.replay.capacity_steps,
                      cfg.replay.replay_shards, shard_slot_bytes(cfg.student.batch_size, cfg.replay.prefetch,
                                                                 streams=len(sweep) * cfg.learner_gpus,
                                                                 stacks=2 if cfg.rl.active() else 1))
    start = start_run(cfg.KIND, cfg, run, echo,
                      cpus=sum(1 if g.dataset else cfg.acting.actors for g in games) + len(sweep) * cfg.learner_gpus
                      + 1,
                      memory=[("memory plan", plan)], placement=lambda gpu: plan_placement(cfg, games, plan, gpu),
                      progress=(cfg.updates, "updates"),
                      capacity={s.game: s.steps * cfg.replay.replay_shards for s in plan.shards}, stop=stop)
    for index, game in enumerate(games):  # each student samples at the set ratio: the shards admit len(sweep) x that
        start_game(cfg, game, index, plan, start, cfg.replay.replay_ratio * len(sweep))
    groups = start_learners(cfg, games, start, resume)
    teacher = TeacherEvaluation(cfg, games)
    evaluations = StudentEvaluations(cfg, games, teacher.holdout_refs, teacher.pending, start.run, start.echo,
                                     start.started, start.stop)
    if evaluations.handoff is not None and resume:
        evaluations.handoff.resume(groups[0], eval_kind(metrics_kind(groups[0].series)))
    if not all(group.wait_for_replay() for group in groups):  # a stop before the first update
        teacher.keep_if_played()
        return stop_early(cfg, start, games, groups, {g.series: 0 for g in groups})
    start.echo(f"[distill] {', '.join(g.spec.title for g in games)}: replay holds "
               f"{min(g.limiter['min_replay'] for g in games)}+ steps per game, training "
               f"{', '.join(g.label for g in groups)}"
               + (f" on {cfg.learner_gpus} data-parallel replicas each" if cfg.learner_gpus > 1 else ""))
    updates = train_learners(cfg, start.run, groups, games, resume, start.started, evaluations, start.echo,
                             start.stop)
    if start.stop.requested():
        teacher.keep_if_played()
        return stop_early(cfg, start, games, groups, updates)
    evaluations.poll(wait=True)
    return finish(cfg, start, games, groups, plan, teacher, evaluations)


def finish(cfg: DistillConfig, start: RunStart, games: list[GameRun], groups: list[LearnerGroup], plan: MemoryPlan,
           teacher: TeacherEvaluation, evaluations: StudentEvaluations) -> dict:
    """Producers down (their CPUs go to the evaluators), every student played on the teacher's
    episodes' seeds, and the summary."""
    budget = WindDown()
    producer_stats = stop_producers(games, budget)
    replay = final_replay(games, budget)
    free_producers(games)
    start.placement.release("actors")
    students = [group.state(checkpoint_extra(games)) for group in groups]
    refs = [handles.put(student) for student in students]
    pending = {g.spec.name: [teacher.submit(g, ref) for ref in refs] for g in games}
    best = evaluations.handoff.best_so_far() if evaluations.handoff else None
    best_pending = teacher.submit(games[0], handles.put(best["state"])) if best else None
    holdouts, teacher_scores, per_game = teacher.results(producer_stats, start.echo)
    rows = [student_results(cfg, group, student, games, holdouts, teacher_scores,
                            {name: pending[name][k] for name in pending}, start.echo)
            for k, (group, student) in enumerate(zip(groups, students))]
    if cfg.rl.active():
        rows[0]["rl"] = rl_results(cfg, start, games[0], groups[0], students[0], best, best_pending, teacher_scores)
    for group in groups:
        group.kill()
    replay.update(replay_ratio=max(g.limiter["ratio"] for g in games), memory_plan=plan.as_dict(start.free_memory))
    summary = {
        "loss": cfg.student.loss, **cfg.student.loss_settings(), "student": cfg.student.preset,
        "batch_size": cfg.student.batch_size, "behaviour": cfg.drive.behaviour,
        "eval_protocol": teacher.protocol.text(), "protocol": teacher.protocol.as_dict(),
        "replay": replay, "learner_device": "cuda" if start.use_gpu else "cpu", "learner_replicas": cfg.learner_gpus,
        "placement": start.plan.as_dict(), "students": rows,
        "restarts": {"actors": replay["stream_restarts"], "learners": sum(g.restarts for g in groups)},
    }
    return start.finish(with_games(cfg, summary, games, per_game, rows, producer_stats, students))


def with_games(cfg: DistillConfig, summary: dict, games: list[GameRun], per_game: dict, rows: list[dict],
               producer_stats: dict, students: list[dict]) -> dict:
    """One game's results at the summary's top level; several games' under per_game (merged with
    the student's where there is one student)."""
    single = {k: v for k, v in rows[0].items() if k not in ("student", "loss")} if len(rows) == 1 else {}
    if len(games) == 1:
        name = games[0].spec.name
        summary.update(game=name, **per_game[name], **single,
                       dataset=({"path": cfg.dataset, **producer_stats[name][0]} if cfg.dataset else None))
        summary["eval_protocol"] = summary["protocol"]["text"] = cfg.protocol().text(per_game[name]["env_mode"])
        summary["protocol"]["env_mode"] = per_game[name]["env_mode"]
        return summary
    for g in games:
        if g.dataset:
            per_game[g.spec.name]["dataset"] = {"path": str(g.dataset.path), **producer_stats[g.spec.name][0]}
    if single:
        single["per_game"] = {g: {**per_game[g], **r} for g, r in single["per_game"].items()}
    summary.update(
        games=[g.spec.name for g in games], per_game=single.pop("per_game", per_game), schedule=cfg.schedule,
        schedule_weights=students[0]["extra"]["schedule"].get("weights", cfg.schedule_weights()),
        samples_per_game={g: n * cfg.student.batch_size for g, n in students[0]["extra"]["schedule"]["counts"].items()},
        steps_labelled=sum(r["steps_labelled"] for r in per_game.values()), **single)
    return summary
