"""A single-game distillation run: teacher actors -> replay shard -> learner -> evaluation.

The driver only wires Ray actors together, logs what the learner reports, and owns the
run directory; every heavy step runs in an actor, so the same code drives a laptop and a
cluster.
"""

from __future__ import annotations

import time

import numpy as np

from actors.env import EnvConfig
from actors.evaluate import evaluate_policy
from actors.games import game_spec
from actors.teacher import TeacherActor, TeacherRollout
from actors.teachers import load_teacher
from cluster.config import DistillConfig
from cluster.rundir import RunDir
from cluster.runtime import connect, has_gpu
from learner.checkpoint import payload_params
from learner.learner import Learner, LearnerConfig
from replay.shard import ReplayShard

HOLDOUT_SEED_OFFSET = 7_919  # held-out frames come from environments no actor ever seeds


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


def learner_config(cfg: DistillConfig) -> LearnerConfig:
    return LearnerConfig(student=cfg.student, loss=cfg.loss, tau=cfg.tau, lr=cfg.lr, batch_size=cfg.batch_size,
                         prefetch=cfg.prefetch, min_replay=cfg.min_replay, device=cfg.device, seed=cfg.seed)


def run_distill(cfg: DistillConfig, run: RunDir | None = None, resume_state: dict | None = None, echo=print) -> dict:
    """Runs into `run` (resuming) or a new run directory at cfg.out, made once the teacher loads."""
    import ray

    started = time.monotonic()
    game = game_spec(cfg.game)
    teacher = load_teacher(cfg.teacher, game, cfg.seed)
    env_config = EnvConfig(noop_max=cfg.noop_max, sticky_actions=cfg.sticky_actions)
    connect(cfg.address, cpus_needed=cfg.actors + 2)
    use_gpu = cfg.device != "cpu" and has_gpu()
    run = run or RunDir.create(cfg.out, cfg.to_json())

    shard = ray.remote(ReplayShard).options(num_cpus=0).remote(game.name, game.num_actions, cfg.capacity_steps, cfg.seed)
    teacher_ref = ray.put(teacher)
    actors = [
        ray.remote(TeacherActor).options(num_cpus=1, max_concurrency=2).remote(
            shard, game=game.name, teacher=teacher_ref, num_envs=cfg.envs_per_actor, env_config=env_config,
            epsilon=cfg.epsilon, seed=cfg.seed + 1_000 * i, actor_id=i, chunk_steps=cfg.chunk_steps)
        for i in range(cfg.actors)
    ]
    runs = [actor.run.remote() for actor in actors]
    learner = ray.remote(Learner).options(num_cpus=1, num_gpus=1 if use_gpu else 0).remote(
        learner_config(cfg), {game.name: game.num_actions}, {game.name: [shard]}, resume_state)
    ray.get(learner.wait_for_replay.remote())
    echo(f"[distill] {game.title}: replay holds {cfg.min_replay}+ steps, training {cfg.student} with {cfg.loss}")

    updates = resume_state["updates"] if resume_state else 0
    while updates < cfg.updates:
        step = min(cfg.log_every, cfg.updates - updates)
        metrics = ray.get(learner.train.remote(step))
        updates = metrics["updates"]
        replay = ray.get(shard.stats.remote())
        metrics.update(labelled_steps=replay["inserted"], elapsed_s=time.monotonic() - started)
        run.log(metrics)
        echo(f"[distill] update {updates}/{cfg.updates} loss {metrics['loss']:.4f} "
             f"{metrics['updates_per_s']:.1f} upd/s wait {100 * metrics['wait_fraction']:.0f}% "
             f"replay {replay['size']} labelled {replay['inserted']}")
        if updates % cfg.checkpoint_every == 0 or updates >= cfg.updates:
            run.save_checkpoint(ray.get(learner.state.remote({"game": game.name})))

    for actor in actors:
        actor.stop.remote()
    actor_stats = ray.get(runs)
    student = ray.get(learner.state.remote({"game": game.name}))

    holdout_obs, holdout_q = ray.get(ray.remote(_holdout).options(num_cpus=1).remote(
        game.name, teacher_ref, cfg.holdout_steps, env_config, cfg.epsilon, cfg.seed))
    agreement = ray.get(learner.agreement.remote(holdout_obs, holdout_q, game.name))
    evaluate = ray.remote(evaluate_policy).options(num_cpus=1)
    eval_kwargs = dict(env_config=env_config, epsilon=cfg.eval_epsilon, seed=cfg.seed + 10_007)
    teacher_eval, student_eval = ray.get([
        evaluate.remote(teacher_ref, game.name, cfg.eval_episodes, **eval_kwargs),
        evaluate.remote(student, game.name, cfg.eval_episodes, **eval_kwargs),
    ])
    for actor in actors:
        ray.kill(actor)
    ray.kill(learner)
    ray.kill(shard)

    summary = {
        "complete": True,
        "game": game.name, "loss": cfg.loss, "tau": cfg.tau, "student": cfg.student,
        "teacher": teacher["extra"].get("source", cfg.teacher),
        "student_params": payload_params(student), "teacher_params": payload_params(teacher),
        "updates": student["updates"], "batch_size": cfg.batch_size,
        "steps_labelled": sum(s["steps"] for s in actor_stats),
        "teacher_score": teacher_eval.as_dict(), "student_score": student_eval.as_dict(),
        "student_pct_of_teacher": pct_of_teacher(student_eval.mean, teacher_eval.mean),
        "action_agreement": agreement, "majority_baseline": majority_baseline(holdout_q),
        "holdout_steps": int(len(holdout_q)),
        "eval_protocol": f"no-op starts (max {cfg.noop_max}), epsilon {cfg.eval_epsilon}, "
                         f"{cfg.eval_episodes} episodes, sticky actions {'on' if cfg.sticky_actions else 'off'}",
        "learner_device": "cuda" if use_gpu else "cpu",
        "wall_s": time.monotonic() - started,
    }
    run.write_summary(summary)
    return summary


def config_for_resume(run: RunDir) -> DistillConfig:
    return DistillConfig.from_dict(run.read_config()).validate()
