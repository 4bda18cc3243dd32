"""Online distillation (Rusu et al. §4): a DQN trains while a student learns from its best checkpoint so far.

The DQN side is DQNTraining. Beside it run teacher actors that label with the registry's
best checkpoint, a distillation replay and a student learner. When the registry's best
changes, the driver sends the new checkpoint to every labelling actor, which switches at
its next chunk boundary, so every chunk is labelled by exactly one version and carries
it. The DQN's score swings; the student follows only the best teacher seen.

timeline.jsonl gets one row per DQN checkpoint: its frames and score, the best so far
once it was scored, and the student's score at the moment the checkpoint was taken.
"""

from __future__ import annotations

from atari_distill.actors.env import actor_seed
from atari_distill.evaluation.episodes import collect_evaluation, submit_evaluation
from atari_distill.evaluation.protocol import REPORT, SELECTION
from atari_distill.actors.games import game_spec
from atari_distill.cluster.runtime import NO_TASK_EVENTS, WindDown
from atari_distill.learner.batches import shard_slot_bytes
from atari_distill.learner.learner import Learner, LearnerConfig
from atari_distill.models.checkpoint import load_checkpoint, payload_params
from atari_distill.pipelines.stopping import StopToken
from atari_distill.pipelines.config import ConfigError, OnlineConfig
from atari_distill.evaluation.statistics import compare, majority_baseline, submit_holdouts
from atari_distill.rundir.directory import RunDir
from atari_distill.pipelines.data_plane import DataPlane
from atari_distill.pipelines.skeleton import ResumeMarks, RunStart, counters_at, on_its_runner, start_run
from atari_distill.pipelines.teacher import DQNTraining, memory_plan, score_checkpoint, teacher_placement
from atari_distill.replay.memory_plan import MemoryPlan
from atari_distill.replay.rate_limiter import RateLimit
from atari_distill.replay.shard import UNAVAILABLE, replay_totals
from atari_distill.runners import handles

DISTILL_SEED_OFFSET = 1_000  # labelling actors' ids start here: their env seeds never meet the DQN actors'


def distill_memory_plan(cfg: OnlineConfig) -> MemoryPlan:
    spec = game_spec(cfg.acting.game)
    return MemoryPlan({spec.name: spec.num_actions}, cfg.distill_replay.capacity_steps, 1,
                      shard_slot_bytes(cfg.student.batch_size, cfg.replay.prefetch))


class Distillation:
    """The student side: shards, labelling actors (started once a best exists), learner."""

    def __init__(self, cfg: OnlineConfig, training: DQNTraining, run: RunDir, resume: dict | None, echo):
        self.cfg, self.training, self.run, self.echo = cfg, training, run, echo
        self.spec = training.spec
        self.resume = resume
        self.updates = int(resume["updates"]) if resume else 0
        self.last_checkpoint = self.updates
        self.base = counters_at(run, "student", self.updates)  # a resume's lines go on from these
        self.marks = ResumeMarks(["student"] if self.base else [])
        self.version, self.teacher_ref = None, None
        self.train_ref = self.ready_ref = None
        self.plane = DataPlane(self.spec)

    def start(self, plan: MemoryPlan, learner_gpu_share: float, slots: dict) -> None:
        self.slots = slots
        cfg = self.cfg
        self.plane.open_shards(plan, RateLimit(cfg.distill_replay.replay_ratio, cfg.acting.chunk_size,
                                               cfg.distill_replay.min_replay, cfg.student.batch_size),
                               writers=cfg.distill_actors, readers=cfg.replay.prefetch, seed=cfg.run.seed + 1,
                               placement=slots["shards"])
        config = LearnerConfig(student=cfg.student, prefetch=cfg.replay.prefetch,
                               min_replay=cfg.distill_replay.min_replay,
                               device=cfg.run.device, seed=cfg.run.seed)
        self.learner = handles.remote(Learner, num_cpus=1, num_gpus=learner_gpu_share, **slots["learner"], **NO_TASK_EVENTS).remote(
            config, {self.spec.name: self.spec.num_actions}, {self.spec.name: self.plane.shards}, self.resume)

    def follow(self, best: dict | None, actor_options: dict, actor_device: str) -> bool:
        """Hot swap: labels from now on with `best`, if it is new. Returns whether it swapped."""
        if best is None or best["version"] == self.version:
            return False
        teacher = load_checkpoint(best["checkpoint"])
        self.version, self.teacher_ref = best["version"], handles.put(teacher)
        if not self.plane.producers:
            cfg, restarts = self.cfg, self.training.restarts
            self.plane.start_actors(
                [{**actor_options, **self.slots["actors"][i]} for i in range(cfg.distill_actors)], self.teacher_ref,
                lambda i: dict(game=self.spec.name, num_envs=cfg.acting.envs_per_actor,
                               env_config=self.training.env_config, epsilon=self.training.protocol.holdout_epsilon,
                               seed=actor_seed(cfg.run.seed, DISTILL_SEED_OFFSET + i + cfg.distill_actors * restarts),
                               actor_id=i, chunk_steps=cfg.acting.chunk_steps, device=actor_device,
                               groups=cfg.acting.groups(actor_device), label_losses=cfg.student.label_losses()))
            self.ready_ref = self.learner.wait_for_replay.remote()
        else:
            self.plane.tell("set_teacher", self.teacher_ref)
        self.echo(f"[online] labelling with checkpoint {best['version']} (score {best['score']:.2f} on "
                  f"{best.get('episodes')} selection episodes)")
        return True

    def on_ready(self) -> None:
        self.ready_ref = None
        self.train_ref = self.learner.train.remote(self.cfg.run.log_every)

    def after_train(self, metrics: dict, elapsed_s: float | None, again: bool = True) -> None:
        self.updates = metrics["updates"]
        metrics.pop("samples_per_game", None)
        replay = self.plane.stats()
        self.run.log(self.marks.mark({"kind": "student", **metrics, "teacher_version": self.version,
                                      "labelled_steps": replay["labelled_steps"] + self.base.get("labelled_steps", 0),
                                      "elapsed_s": None if elapsed_s is None else self.base.get("elapsed_s", 0.0)
                                      + elapsed_s}, "student"))
        if self.updates - self.last_checkpoint >= self.cfg.run.checkpoint_every:
            self.checkpoint()
        self.train_ref = self.learner.train.remote(self.cfg.run.log_every) if again else None

    def checkpoint(self) -> None:
        self.run.save_checkpoint(handles.get(self.learner.state.remote({"game": self.spec.name})), series="student")
        self.last_checkpoint = self.updates

    def stop(self) -> dict:
        self.plane.halt()  # the learner's last call no longer waits for labels
        if self.train_ref is not None:
            self.after_train(handles.get(self.train_ref), None, again=False)
        budget = WindDown()
        actor_stats = self.plane.stop(budget, halted=True)
        shard_stats = self.plane.shard_stats(budget)
        self.plane.free()
        if shard_stats is None:
            return {"actors": actor_stats, "replay": {"unavailable": UNAVAILABLE}, "teacher_versions": []}
        return {"actors": actor_stats, "replay": replay_totals(shard_stats),
                "teacher_versions": [change for s in shard_stats for change in s["teacher_versions"]]}


class Timeline:
    """One row per DQN checkpoint, complete once the DQN score and the student's score are in."""

    def __init__(self, run: RunDir, cfg: OnlineConfig, game: str, protocol, echo):
        self.run, self.cfg, self.game, self.protocol, self.echo = run, cfg, game, protocol, echo
        self.rows = {row["version"]: row for row in run.metrics("timeline.jsonl")}
        self.open: dict[int, dict] = {}
        self.student_evals: dict[int, list] = {}

    def checkpoint_taken(self, version: int, frames: int, dqn_updates: int, student: Distillation) -> None:
        row = {"version": version, "frames": frames, "dqn_updates": dqn_updates, "dqn_score": None,
               "best_version": None, "best_score": None, "student_updates": None, "student_score": None,
               "teacher_version": student.version}
        if student.ready_ref is None and student.plane.producers:
            row["student_updates"] = student.updates
            self.student_evals[version] = submit_evaluation(
                student.learner.state.remote(), self.game, self.protocol.selection_episodes, 1,
                **self.protocol.play(SELECTION))
        self.open[version] = row

    def scored(self, result: dict, best: dict | None) -> None:
        row = self.open.get(result["version"])
        if row is None:  # taken before a restart: its student score is lost with the process
            row = self.open[result["version"]] = {"version": result["version"], "frames": result["frames"],
                                                  "dqn_updates": result["updates"],
                                                  "student_updates": None, "student_score": None,
                                                  "teacher_version": None}
        row.update(dqn_score=result["score"], best_version=best and best["version"], best_score=best and best["score"])

    def poll(self, wait: bool = False) -> None:
        for version, refs in list(self.student_evals.items()):
            if wait or not handles.wait(refs, num_returns=len(refs), timeout=0)[1]:
                self.open[version]["student_score"] = collect_evaluation(refs, self.cfg.evaluation.epsilon,
                                                                         self.cfg.acting.noop_max).mean
                del self.student_evals[version]
        for version, row in sorted(self.open.items()):
            if row.get("dqn_score") is not None and version not in self.student_evals:
                self.run.log(row, "timeline.jsonl")
                self.run.to_tensorboard("online", {k: row[k] for k in ("dqn_score", "best_score", "student_score",
                                                                       "frames")}, row["dqn_updates"])
                if row["student_score"] is not None:
                    self.echo.evaluation("student", f"{row['student_score']:.2f} on {self.protocol.selection_episodes} "
                                                    f"selection episodes after {row['student_updates']} updates (at "
                                                    f"DQN checkpoint {version})")
                self.rows[version] = self.open.pop(version)

    def as_list(self) -> list[dict]:
        return [self.rows[v] for v in sorted(self.rows)]


@on_its_runner
def run_online(cfg: OnlineConfig, run: RunDir | None = None, resume: dict | None = None, echo=print,
               scorer=score_checkpoint, stop: StopToken | None = None) -> dict:
    """`resume` maps "dqn" and "student" to their last checkpoints; `scorer` scores each DQN
    checkpoint for the registry (DQNTraining's)."""
    resume = resume or {}
    dqn_plan, distill_plan = memory_plan(cfg), distill_memory_plan(cfg)
    start = start_run(cfg.KIND, cfg, run, echo, cpus=cfg.acting.actors + cfg.distill_actors + 4,
                      memory=[("memory plan, DQN replay", dqn_plan), ("memory plan, distillation replay", distill_plan)],
                      placement=lambda gpu: teacher_placement(cfg, dqn_plan, gpu, distill_plan),
                      progress=(cfg.frames, "frames"),
                      roles=f"{cfg.acting.actors} DQN and {cfg.distill_actors} labelling actor(s), two learners, "
                            f"two evaluators", stop=stop)
    training = DQNTraining(cfg, start.run, resume.get("dqn"), start.echo, scorer)
    student = Distillation(cfg, training, start.run, resume.get("student"), start.echo)
    gpu_share = 0.5 if start.use_gpu else 0  # both learners share one GPU
    shards, actors = len(dqn_plan.shards), cfg.acting.actors
    training.start(dqn_plan, start.actor_options, start.actor_device, gpu_share,
                   start.placement.slots(0, range(shards), range(actors)))
    student.start(distill_plan, gpu_share, start.placement.slots(1, range(shards, shards + len(distill_plan.shards)),
                                                                 range(actors, actors + cfg.distill_actors)))
    timeline = Timeline(start.run, cfg, training.spec.name, training.protocol, start.echo)
    student.follow(training.best(), start.actor_options, start.actor_device)  # a resumed run labels with its best
    handles.get(training.ready)
    start.echo(f"[online] {training.spec.title}: DQN replay holds {cfg.replay.min_replay}+ steps; the student "
               f"starts with "
               f"the first scored checkpoint")
    frames_at_start = training.frames
    if not train_both(start, training, student, timeline):
        student.stop()
        if student.updates != student.last_checkpoint:
            student.checkpoint()
        handles.kill(student.learner)
        return start.stopped({**training.stopped_summary(), "student_updates": student.updates})
    return finish(cfg, start, training, student, timeline, frames_at_start)


def train_both(start: RunStart, training: DQNTraining, student: Distillation, timeline: Timeline) -> bool:
    """The DQN and the student train side by side until the frame budget is spent (True) or a stop
    is asked for (False: the DQN's interval in flight is logged, its side wound down)."""
    dqn_ref = training.submit_train()
    while True:
        waiting = [r for r in (dqn_ref, student.train_ref, student.ready_ref) if r is not None]
        done, _ = handles.wait(waiting, num_returns=1, timeout=1.0)
        if student.ready_ref in done:
            student.on_ready()
        if student.train_ref in done:
            student.after_train(handles.get(student.train_ref), start.elapsed())
        if dqn_ref in done:
            version = training.version
            finished = training.after_train(handles.get(dqn_ref), start.elapsed())
            for new in range(version + 1, training.version + 1):
                timeline.checkpoint_taken(new, training.frames, training.updates, student)
            if finished:
                return True
            dqn_ref = training.submit_train()
        results = training.poll_scores()
        best = training.best()
        for result in results:
            timeline.scored(result, best)
        student.follow(best, start.actor_options, start.actor_device)
        timeline.poll()
        if start.stop.requested():  # finish the interval in flight, so its metrics are logged once
            training.after_train(handles.get(dqn_ref), start.elapsed())
            training.abandon()
            return False


def finish(cfg: OnlineConfig, start: RunStart, training: DQNTraining, student: Distillation, timeline: Timeline,
           frames_at_start: int) -> dict:
    """The last DQN checkpoint scored, the student's labelling stopped, then the student and the best
    teacher played on the same episodes' seeds."""
    results = training.finish(lambda new: timeline.checkpoint_taken(new, training.frames, training.updates, student))
    best = training.best()
    for result in results:
        timeline.scored(result, best)
    timeline.poll(wait=True)
    if best is None or student.ready_ref is not None or not student.plane.producers:
        raise ConfigError(f"the student never trained: no DQN checkpoint was scored and replayed within "
                          f"--frames {cfg.frames:,} (the DQN's run directory is kept); raise --frames or lower "
                          f"--eval-every and --distill-min-replay")
    distilled = student.stop()
    start.placement.release("actors")  # their CPUs go to the final evaluations
    student.checkpoint()
    final_student = handles.get(student.learner.state.remote({"game": training.spec.name}))
    teacher = load_checkpoint(best["checkpoint"])
    scores = final_scores(cfg, training, student, teacher, final_student)
    handles.kill(student.learner)
    history = handles.get(training.registry.history.remote())
    handles.kill(training.registry)
    return start.finish({
        "game": training.spec.name, "frames": training.frames, "updates": training.updates,
        "student": cfg.student.preset, "student_params": payload_params(final_student), "loss": cfg.student.loss,
        **cfg.student.loss_settings(),
        "student_updates": final_student["updates"], "teacher_params": payload_params(teacher),
        "best": best, "evaluations": history, **scores,
        "timeline": [{**row, "seeds": SELECTION} for row in timeline.as_list()] + [{
            "version": best["version"], "frames": training.frames, "dqn_updates": training.updates, "seeds": REPORT,
            "best_version": best["version"], "best_score": scores["teacher_score"]["mean"],
            "student_updates": final_student["updates"], "student_score": scores["student_score"]["mean"],
            "teacher_version": best["version"], "final": True}],
        "teacher_versions_in_replay": distilled["teacher_versions"],
        "swaps_per_actor": [a["swaps"] for a in distilled["actors"]],
        "distill_replay": distilled["replay"],
        "eval_protocol": training.protocol.text(), "protocol": training.protocol.as_dict(),
        "frames_per_s": (training.frames - frames_at_start) / start.elapsed(),
        "learner_device": "cuda" if start.use_gpu else "cpu",
    })


def final_scores(cfg: OnlineConfig, training: DQNTraining, student: Distillation, teacher: dict,
                 final_student: dict) -> dict:
    """The best teacher's, the student's and the random policy's scores on the report seeds (the
    registry chose the best on selection seeds), and agreement on frames the best teacher labelled."""
    game, protocol = training.spec.name, training.protocol
    holdouts = submit_holdouts(game, teacher, protocol)
    teacher_ref = handles.put(teacher)
    pending = [submit_evaluation(ref, game, protocol.episodes, 2, **protocol.play(REPORT, random_policy=random))
               for ref, random in ((teacher_ref, False), (handles.put(final_student), False), (teacher_ref, True))]
    teacher_eval, student_eval, random_eval = (
        collect_evaluation(p, epsilon, cfg.acting.noop_max).as_dict()
        for p, epsilon in zip(pending, (protocol.epsilon, protocol.epsilon, 1.0)))
    agreement, baseline = {}, {}
    for key, ref in holdouts.items():
        obs, q, _ = handles.get(ref)
        agreement[key] = handles.get(student.learner.agreement.remote(obs, q, game))
        baseline[key] = majority_baseline(q)
    return {"teacher_score": teacher_eval, "student_score": student_eval, "random_score": random_eval,
            **compare(student_eval, teacher_eval, random_eval),
            "action_agreement": agreement["plain"], "action_agreement_sticky": agreement["sticky"],
            "majority_baseline": baseline["plain"], "majority_baseline_sticky": baseline["sticky"]}
