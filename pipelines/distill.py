"""A distillation run: teacher actors (or a recorded dataset) -> replay shards -> learner -> evaluation.

One game gives a single-head student; several games (`launch.py multitask`) give one student
with a head per game, each game with its own teacher, actors and replay shards, and the
learner drawing games by a fixed schedule. A sweep (`--student a,b --loss x,y`) trains one
learner per pair from the same actors and replay, so the teacher's frames are made once.
The driver only wires components together, logs what the learners report, and owns the run
directory; every heavy step runs in a component placed by the placement plan, so the same
code drives a laptop, a cluster (the Ray runner) and one process (the local runner). Its
games' data planes are pipelines/distill_games.py; what it states at the end,
pipelines/distill_results.py.
"""

from __future__ import annotations

import dataclasses
import time

from atari_distill.cluster.learner_group import LearnerGroup, LearnerLost
from atari_distill.cluster.placement import PLACEMENT_TIMEOUT_S, PlacementPlan, plan_run
from atari_distill.cluster.runtime import WindDown
from atari_distill.learner.batches import shard_slot_bytes
from atari_distill.learner.learner import LearnerConfig
from atari_distill.pipelines.config import DistillConfig
from atari_distill.pipelines.distill_games import (GameRun, checkpoint_extra, continued, final_replay,
                                                   free_producers, interval_metrics, prepare_games, replay_figures,
                                                   replay_steps, start_game, stop_producers)
from atari_distill.pipelines.distill_results import (TeacherEvaluation, metrics_kind, rl_results, student_results,
                                                     with_games)
from atari_distill.pipelines.skeleton import ResumeMarks, RunStart, counters_at, on_its_runner, start_run
from atari_distill.pipelines.stopping import StopToken
from atari_distill.evaluation.curve import StudentEvaluations, eval_kind
from atari_distill.replay.memory_plan import MemoryPlan
from atari_distill.replay.shard import ReplayLost, ShardWatch
from atari_distill.rundir.directory import ABANDONED, RunDir
from atari_distill.runners import handles

__all__ = ["run_distill", "learner_config", "checkpoint_series", "interval", "metrics_kind", "GameRun",
           "final_replay"]


def learner_config(cfg: DistillConfig, student: str, loss: str, min_replay: int) -> LearnerConfig:
    return LearnerConfig(student=dataclasses.replace(cfg.student, preset=student, loss=loss),
                         prefetch=cfg.replay.prefetch, min_replay=min_replay, device=cfg.run.device, seed=cfg.run.seed,
                         rl=cfg.rl)


def checkpoint_series(cfg: DistillConfig) -> list[str]:
    """Checkpoint series (their files' prefix), one per student: `student` alone, `student-PRESET-LOSS` in a sweep."""
    pairs = cfg.student.pairs()
    return ["student"] if len(pairs) == 1 else [f"student-{student}-{loss}" for student, loss in pairs]


def plan_placement(cfg: DistillConfig, games: list[GameRun], plan: MemoryPlan, use_gpu: bool) -> PlacementPlan:
    labels = [f"learner {student}/{loss} rank {rank}" for student, loss in cfg.student.pairs()
              for rank in range(cfg.learner_gpus)]
    shards = [(f"shard {s.game}/{s.index}", s.memory) for s in plan.shards]
    actors = sum(0 if g.dataset else cfg.acting.actors for g in games)
    return plan_run(labels, use_gpu, cfg.learner_resource, shards, actors, cfg.acting.actor_gpus)


def train_learners(cfg: DistillConfig, run: RunDir, groups: list[LearnerGroup], games: list[GameRun],
                   resume: dict, base: dict[str, dict], started: float, evaluations: StudentEvaluations, echo,
                   stop: StopToken) -> dict[str, int]:
    """Trains every student to cfg.updates (or until a stop is asked for), logging each interval,
    checkpointing and scoring it every cfg.eval_every updates; a learner that dies is rebuilt
    from its last checkpoint while the others go on. Returns each student's update count. `base`:
    each resumed series' counters where it left off (distill_games.counters_at), which its lines go on from."""
    extra = checkpoint_extra(games)
    updates = {g.series: (resume.get(g.series) or {}).get("updates", 0) for g in groups}
    saved = dict(updates)
    resumed = ResumeMarks(series for series, counters in base.items() if counters)
    previous = interval_metrics(games, {})
    watch = ShardWatch({g.spec.name: g.plane.shards for g in games}, PLACEMENT_TIMEOUT_S)
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
                run.log(interval_record(metrics, replay, base[group.series], group, started, resumed,
                                        kind=metrics_kind(group.series) if len(groups) > 1 else None,
                                        per_game=len(games) > 1))
                if updates[group.series] % cfg.run.checkpoint_every == 0 or updates[group.series] >= cfg.updates:
                    run.save_checkpoint(group.state(extra), group.series)
                    saved[group.series] = updates[group.series]
            except (handles.ActorLost, ReplayLost) as error:
                if isinstance(error, ReplayLost):  # every student samples every shard: none can go on
                    stop.request(str(error))
                else:
                    updates[group.series] = saved[group.series] = rebuild(run, group, error, echo, stop)
                    evaluations.discard(group, updates[group.series])
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


def interval_record(metrics: dict, replay: dict, counters: dict, group: LearnerGroup, started: float,
                    resumed: ResumeMarks, kind: str | None, per_game: bool) -> dict:
    """One learner's metrics line: its interval beside the replay's, counted on from `counters` (where a
    resumed series left off), the first since a resume marked (a plot draws it), `kind` in a sweep."""
    metrics.update(continued(replay, counters), learner_restarts=group.restarts,
                   elapsed_s=counters.get("elapsed_s", 0.0) + time.monotonic() - started)
    resumed.mark(metrics, group.series)
    if kind is not None:
        metrics["kind"] = kind
    if not per_game:
        metrics.pop("samples_per_game")
    return metrics


def push_student(group: LearnerGroup, games: list[GameRun], beta: float) -> None:
    """The student's current weights to every teacher actor, to act with in a share 1 - beta of the
    episodes (--behaviour); not waited on: an actor takes them at its next chunk boundary."""
    policy = group.policy()
    for game in games:
        game.plane.tell("set_student", policy, beta)


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
    run.trim_metrics(ABANDONED, updates, of=eval_kind(metrics_kind(group.series)))
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


def stop_early(cfg: DistillConfig, start: RunStart, games: list[GameRun], groups: list[LearnerGroup],
               updates: dict, budget: WindDown | None = None) -> dict:
    """After a stop was asked for: everything down within `budget`, and a summary that says how far it got."""
    for group in groups:  # first, so no learner is left waiting on a shard that goes away
        group.kill()
    budget = budget or WindDown()
    stop_producers(games, budget)
    replay = final_replay(games, budget)
    free_producers(games)
    return start.stopped({"student": cfg.student.preset, "loss": cfg.student.loss, "updates": max(updates.values()),
                          "updates_per_student": updates, "target_updates": cfg.updates, "replay": replay,
                          "restarts": {"actors": replay["stream_restarts"],
                                       "learners": sum(g.restarts for g in groups)}})


def start_learners(cfg: DistillConfig, games: list[GameRun], start: RunStart, resume: dict) -> list[LearnerGroup]:
    """One learner group per student of the sweep, each from its checkpoint in `resume` if any."""
    heads = {g.spec.name: g.spec.num_actions for g in games}
    shards = {g.spec.name: g.plane.shards for g in games}
    min_replay = min(g.plane.rate.min_replay for g in games)
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
    plan = MemoryPlan({g.spec.name: g.spec.num_actions for g in games}, replay_steps(cfg, games),
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
    base = {g.series: counters_at(start.run, metrics_kind(g.series), (resume.get(g.series) or {}).get("updates", 0))
            for g in groups}
    earlier_s = max((counters.get("elapsed_s", 0.0) for counters in base.values()), default=0.0)
    evaluations = StudentEvaluations(cfg, games, teacher.holdout_refs, start.run, start.echo,
                                     start.started - earlier_s, start.stop)  # its points' elapsed_s go on too
    if evaluations.handoff is not None and resume:
        evaluations.handoff.resume(groups[0], eval_kind(metrics_kind(groups[0].series)),
                                   (resume.get(groups[0].series) or {}).get("updates", 0))
    if not all(group.wait_for_replay() for group in groups):  # a stop before the first update
        teacher.keep_if_played()
        return stop_early(cfg, start, games, groups, {g.series: 0 for g in groups})
    start.echo(f"[distill] {', '.join(g.spec.title for g in games)}: replay holds "
               f"{min(g.plane.rate.min_replay for g in games)}+ steps per game, training "
               f"{', '.join(g.label for g in groups)}"
               + (f" on {cfg.learner_gpus} data-parallel replicas each" if cfg.learner_gpus > 1 else ""))
    updates = train_learners(cfg, start.run, groups, games, resume, base, start.started, evaluations, start.echo,
                             start.stop)
    if start.stop.requested():
        budget = WindDown()  # one for the curve points in flight and the wind-down after them
        evaluations.settle(budget)
        teacher.keep_if_played()
        return stop_early(cfg, start, games, groups, updates, budget)
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
        rows[0]["rl"] = rl_results(cfg, start, games[0], groups[0], students[0], rows[0], best, best_pending,
                                    teacher_scores)
    for group in groups:
        group.kill()
    replay.update(replay_ratio=max(g.plane.rate.ratio for g in games), memory_plan=plan.as_dict(start.free_memory))
    summary = {
        "loss": cfg.student.loss, **cfg.student.loss_settings(), "student": cfg.student.preset,
        "batch_size": cfg.student.batch_size, "behaviour": cfg.drive.behaviour,
        "eval_protocol": teacher.protocol.text(), "protocol": teacher.protocol.as_dict(),
        "replay": replay, "learner_device": "cuda" if start.use_gpu else "cpu", "learner_replicas": cfg.learner_gpus,
        "placement": start.plan.as_dict(), "students": rows,
        "restarts": {"actors": replay["stream_restarts"], "learners": sum(g.restarts for g in groups)},
    }
    return start.finish(with_games(cfg, summary, games, per_game, rows, producer_stats, students))


