"""A single-game distillation run: teacher actors (or a recorded dataset) -> replay shards -> learner -> evaluation.

The driver only wires Ray actors together, logs what the learner reports, and owns the
run directory; every heavy step runs in an actor, so the same code drives a laptop and a
cluster.
"""

from __future__ import annotations

import time

import numpy as np

from actors.env import EVAL_SEED_OFFSET, HOLDOUT_SEED_OFFSET, EnvConfig, actor_seed, resolve_env_mode
from actors.evaluate import collect_evaluation, submit_evaluation
from actors.games import game_spec
from actors.teacher import TeacherActor, TeacherRollout
from actors.teachers import load_teacher
from cluster.config import ConfigError, DistillConfig
from cluster.rundir import RunDir
from cluster.runtime import connect, has_gpu, on_this_node
from learner.checkpoint import fingerprint, payload_params
from learner.learner import Learner, LearnerConfig
from replay.dataset import Dataset, DatasetFeeder
from replay.memory_plan import MemoryPlan, ray_memory
from replay.shard import launch_shards, shard_for_actor



def _holdout(game: str, teacher: dict, steps: int, env_config: EnvConfig, epsilon: float, seed: int):
    rollout = TeacherRollout(game, teacher, num_envs=8, env_config=env_config, epsilon=epsilon,
                             seed=seed + HOLDOUT_SEED_OFFSET, actor_id=0)
    return rollout.labelled_stacks(steps)


def majority_baseline(q_teacher: np.ndarray) -> float:
    counts = np.bincount(q_teacher.argmax(axis=1), minlength=q_teacher.shape[1])
    return float(counts.max() / counts.sum())


def pct_of_teacher(student: float, teacher: float) -> float | None:
    """Rusu et al.'s ratio; undefined (None) when the teacher's mean score is not positive."""
    return 100.0 * student / teacher if teacher > 0 else None


def learner_config(cfg: DistillConfig, min_replay: int) -> LearnerConfig:
    return LearnerConfig(student=cfg.student, loss=cfg.loss, tau=cfg.tau, lr=cfg.lr, batch_size=cfg.batch_size,
                         prefetch=cfg.prefetch, min_replay=min_replay, device=cfg.device, seed=cfg.seed)


def teacher_seed(cfg: DistillConfig, dataset: Dataset | None) -> int:
    """A recorded random teacher is rebuilt from the seed it was recorded with."""
    return int(dataset.index["teacher"].get("seed", cfg.seed)) if dataset else cfg.seed


def check_dataset(cfg: DistillConfig, dataset: Dataset, teacher: dict, echo) -> bool:
    """Refuses a dataset the run cannot use; returns whether it fits the replay (load once)."""
    recorded = dataset.index["teacher"]
    if fingerprint(teacher) != recorded.get("fingerprint"):
        message = (f"--teacher {cfg.teacher!r} (fingerprint {fingerprint(teacher)}) is not the teacher that recorded "
                   f"{cfg.dataset!r} ({recorded.get('source')}, fingerprint {recorded.get('fingerprint')})")
        if cfg.teacher != "random":
            raise ConfigError(message + "; pass the recording teacher's checkpoint")
        echo(f"[distill] warning: {message}; the random teacher was rebuilt on another machine")
    streams = len(dataset.actors)
    if cfg.replay_shards > streams:
        raise ConfigError(f"--replay-shards {cfg.replay_shards} exceeds the {streams} actor stream(s) in "
                          f"{cfg.dataset!r}; each stream feeds one shard, so lower --replay-shards")
    for line in dataset.damage:
        echo(f"[distill] skipping damaged data: {line}")
    per_shard = np.zeros(cfg.replay_shards, np.int64)
    for record in dataset.records:
        per_shard[shard_for_actor(record.actor_id, cfg.replay_shards)] += record.steps
    return bool((per_shard <= cfg.capacity_steps // cfg.replay_shards).all())


def replay_totals(stats: list[dict]) -> dict:
    inserted, sampled = sum(s["limiter"]["inserted"] for s in stats), sum(s["sampled"] for s in stats)
    return {
        "replay_size": sum(s["size"] for s in stats), "shard_sizes": [s["size"] for s in stats],
        "labelled_steps": inserted, "sampled_steps": sampled,
        "observed_replay_ratio": sampled / inserted if inserted else None,
        "insert_wait_s": sum(s["insert_s"] for s in stats), "sample_wait_s": sum(s["sample_s"] for s in stats),
        "rejected_chunks": sum(s["rejected"] for s in stats), "dropped_steps": sum(s["dropped"] for s in stats),
    }


def run_distill(cfg: DistillConfig, run: RunDir | None = None, resume_state: dict | None = None, echo=print) -> dict:
    """Runs into `run` (resuming) or a new run directory at cfg.out, made once the plan is known to fit."""
    import ray

    started = time.monotonic()
    game = game_spec(cfg.game)
    dataset = Dataset.open(cfg.dataset, cfg.skip_damaged) if cfg.dataset else None
    teacher = load_teacher(cfg.teacher, game, teacher_seed(cfg, dataset))
    load_once = check_dataset(cfg, dataset, teacher, echo) if dataset else False
    env_config = cfg.env_config(teacher)
    connect(cfg.address, cpus_needed=(1 if dataset else cfg.actors) + 2)
    use_gpu = cfg.device != "cpu" and has_gpu()
    actor_options, actor_device = cfg.actor_options()

    plan = MemoryPlan({game.name: game.num_actions}, cfg.capacity_steps, cfg.replay_shards)
    free, largest_node = ray_memory()
    echo(plan.table(free))
    plan.check(free, largest_node)
    run = run or RunDir.create(cfg.out, cfg.to_json())

    insert_steps = max(r.steps for r in dataset.records) if dataset else cfg.chunk_size
    producers_per_shard = 1 if dataset else -(-cfg.actors // cfg.replay_shards)
    min_replay = min(cfg.min_replay, dataset.steps) if dataset else cfg.min_replay
    limiter = {"ratio": 0.0 if load_once else cfg.replay_ratio, "min_replay": min_replay,
               "insert_steps": insert_steps, "batch_size": cfg.batch_size}
    shard_plans = [s for s in plan.shards if s.game == game.name]
    shards = launch_shards(game.name, game.num_actions, [s.steps for s in shard_plans], limiter,
                           concurrency=producers_per_shard + cfg.prefetch + 4, seed=cfg.seed,
                           memory=[s.bytes for s in shard_plans])
    teacher_ref = ray.put(teacher)
    if dataset:
        feeder = ray.remote(DatasetFeeder).options(num_cpus=1, max_concurrency=2,
                                                   scheduling_strategy=on_this_node()).remote(dataset, shards)
        producers, runs = [feeder], [feeder.run.remote(loop=not load_once)]
        if load_once:
            ray.get(runs)
            for shard in shards:
                shard.close.remote()
            echo(f"[distill] loaded {dataset.steps} steps of {cfg.dataset} into replay")
    else:
        producers = [
            ray.remote(TeacherActor).options(**actor_options, max_concurrency=2).remote(
                shards[shard_for_actor(i, cfg.replay_shards)], game=game.name, teacher=teacher_ref,
                num_envs=cfg.envs_per_actor, env_config=env_config, epsilon=cfg.epsilon,
                seed=actor_seed(cfg.seed, i), actor_id=i, chunk_steps=cfg.chunk_steps, device=actor_device,
                groups=cfg.groups(actor_device))
            for i in range(cfg.actors)
        ]
        runs = [actor.run.remote() for actor in producers]
    learner = ray.remote(Learner).options(num_cpus=1, num_gpus=1 if use_gpu else 0).remote(
        learner_config(cfg, min_replay), {game.name: game.num_actions}, {game.name: shards}, resume_state)
    ray.get(learner.wait_for_replay.remote())
    echo(f"[distill] {game.title}: replay holds {min_replay}+ steps, training {cfg.student} with {cfg.loss}")

    updates = resume_state["updates"] if resume_state else 0
    previous = replay_totals(ray.get([shard.stats.remote() for shard in shards]))
    while updates < cfg.updates:
        step = min(cfg.log_every, cfg.updates - updates)
        metrics = ray.get(learner.train.remote(step))
        updates = metrics["updates"]
        replay = replay_totals(ray.get([shard.stats.remote() for shard in shards]))
        inserted = replay["labelled_steps"] - previous["labelled_steps"]
        replay["interval_replay_ratio"] = (replay["sampled_steps"] - previous["sampled_steps"]) / inserted if inserted else None
        previous = replay
        metrics.update(replay, elapsed_s=time.monotonic() - started)
        run.log(metrics)
        echo(f"[distill] update {updates}/{cfg.updates} loss {metrics['loss']:.4f} "
             f"{metrics['updates_per_s']:.1f} upd/s wait {100 * metrics['wait_fraction']:.0f}% "
             f"replay {replay['replay_size']} labelled {replay['labelled_steps']}")
        if updates % cfg.checkpoint_every == 0 or updates >= cfg.updates:
            run.save_checkpoint(ray.get(learner.state.remote({"game": game.name})))

    for producer in producers:
        producer.stop.remote()
    for shard in shards:
        shard.close.remote()
    producer_stats = ray.get(runs)
    replay = replay_totals(ray.get([shard.stats.remote() for shard in shards]))
    student = ray.get(learner.state.remote({"game": game.name}))

    holdout_obs, holdout_q = ray.get(ray.remote(_holdout).options(num_cpus=1).remote(
        game.name, teacher_ref, cfg.holdout_steps, env_config, cfg.epsilon, cfg.seed))
    agreement = ray.get(learner.agreement.remote(holdout_obs, holdout_q, game.name))
    eval_kwargs = dict(env_config=env_config, epsilon=cfg.eval_epsilon, seed=cfg.seed + EVAL_SEED_OFFSET)
    pending = [submit_evaluation(payload, game.name, cfg.eval_episodes, cfg.eval_workers, **eval_kwargs)
               for payload in (teacher_ref, ray.put(student))]  # both on the same episodes' seeds, at once
    teacher_eval, student_eval = (collect_evaluation(p, cfg.eval_epsilon, cfg.noop_max) for p in pending)
    for handle in [*producers, learner, *shards]:
        ray.kill(handle)

    summary = {
        "complete": True,
        "game": game.name, "loss": cfg.loss, "tau": cfg.tau, "student": cfg.student,
        "teacher": teacher["extra"].get("source", cfg.teacher), "teacher_fingerprint": fingerprint(teacher),
        "student_params": payload_params(student), "teacher_params": payload_params(teacher),
        "updates": student["updates"], "batch_size": cfg.batch_size,
        "steps_labelled": sum(s["steps"] for s in producer_stats),
        "teacher_score": teacher_eval.as_dict(), "student_score": student_eval.as_dict(),
        "student_pct_of_teacher": pct_of_teacher(student_eval.mean, teacher_eval.mean),
        "action_agreement": agreement, "majority_baseline": majority_baseline(holdout_q),
        "holdout_steps": int(len(holdout_q)),
        "eval_protocol": f"no-op starts (max {cfg.noop_max}), epsilon {cfg.eval_epsilon}, "
                         f"{cfg.eval_episodes} episodes, sticky actions {'on' if cfg.sticky_actions else 'off'}, "
                         f"env mode {resolve_env_mode(cfg.env_mode, teacher)}",
        "replay": {**replay, "replay_ratio": limiter["ratio"], "memory_plan": plan.as_dict(free)},
        "dataset": ({"path": cfg.dataset, **producer_stats[0]} if dataset else None),
        "learner_device": "cuda" if use_gpu else "cpu",
        "wall_s": time.monotonic() - started,
    }
    run.write_summary(summary)
    return summary


def config_for_resume(run: RunDir) -> DistillConfig:
    return DistillConfig.from_dict(run.read_config()).validate()
