"""Training a DQN teacher: epsilon-greedy actors -> transition replay -> DQN learner.

Every `eval_every` frames the learner's network is written to teachers/teacher-V.pt,
registered with the checkpoint registry (a Ray actor, state in registry.json), and
scored by an evaluator task that reports to the registry itself. `launch.py teacher`
runs this alone; `launch.py online` runs it beside a distillation of the registry's best.

Frames count emulator frames (4 per agent step). Updates per frame are fixed by the
replay's sample-to-insert ratio, so more actors make a run faster, not different.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from atari_distill.actors.env import FRAME_SKIP, actor_seed, resolve_env_mode
from atari_distill.evaluation.episodes import EVALUATOR_TASK, collect_evaluation, evaluate_policy, score_text, submit_evaluation
from atari_distill.evaluation.protocol import MIN_CLAIM_EPISODES, RANDOM_EPSILON, REPORT, SELECTION, EvalProtocol
from atari_distill.actors.games import game_spec
from atari_distill.cluster.placement import PlacementPlan, plan_run
from atari_distill.cluster.registry import CheckpointRegistry
from atari_distill.cluster.runtime import NO_TASK_EVENTS, WindDown
from atari_distill.learner.batches import per_call_within, shard_slot_bytes
from atari_distill.learner.dqn import DQNConfig, DQNLearner
from atari_distill.models.checkpoint import load_checkpoint, save_checkpoint
from atari_distill.pipelines.stopping import StopToken
from atari_distill.pipelines.config import TeacherConfig
from atari_distill.evaluation.statistics import beats_beyond_chance
from atari_distill.rundir.directory import RunDir
from atari_distill.pipelines.skeleton import ResumeMarks, counters_at, on_its_runner, start_run
from atari_distill.pipelines.data_plane import DataPlane
from atari_distill.replay.memory_plan import MemoryPlan
from atari_distill.replay.rate_limiter import band
from atari_distill.replay.rate_limiter import RateLimit
from atari_distill.replay.shard import split_budget
from atari_distill.runners import handles


def dqn_config(cfg: TeacherConfig) -> DQNConfig:
    """The DQN's sample requests carry several batches, but what it asks for ahead of its updates stays
    inside the replay ratio's band (replay/rate_limiter.py), so its actors run no further ahead of its
    updates than the limiter already lets them: its checkpoints' frames and updates keep their ratio."""
    lead = band(cfg.replay.replay_ratio, cfg.acting.chunk_size, cfg.dqn.batch_size)
    return DQNConfig(dqn=cfg.dqn, prefetch=cfg.replay.prefetch, min_replay=cfg.replay.min_replay, device=cfg.run.device,
                     seed=cfg.run.seed,
                     per_call=per_call_within(lead, cfg.replay.prefetch, cfg.dqn.batch_size))


def recipe(cfg: TeacherConfig) -> dict:
    """What the DQN was trained with, for its summary and its zoo card."""
    learner = dqn_config(cfg)
    return {**dataclasses.asdict(cfg.dqn), "grad_clip": learner.grad_clip, "prefetch": learner.prefetch,
            "min_replay": learner.min_replay, "replay_ratio": cfg.replay.replay_ratio, "device": cfg.run.device,
            "seed": cfg.run.seed}


def score_checkpoint(registry, version: int, frames: int, payload: dict, game: str, protocol: EvalProtocol) -> dict:
    """An evaluator: plays the checkpoint on the protocol's selection seeds and reports its mean score
    to the registry, which chooses the best by it (so the best's own score is a selection maximum,
    never a number to state: `report_best` plays the best again on report seeds)."""
    import torch

    torch.set_num_threads(1)
    result = evaluate_policy(payload, game, protocol.selection_episodes, **protocol.play(SELECTION, payload))
    improved = handles.get(registry.report.remote(version, result.mean, result.ci95, result.episodes))
    return {"version": version, "frames": frames, "score": result.mean, "ci95": result.ci95, "improved": improved}


def report_best(best: dict | None, game: str, protocol: EvalProtocol, workers: int) -> dict:
    """The registry's best checkpoint played on the report seeds, the teacher score a summary states,
    beside the random policy on the same seeds: a score alone does not say the DQN learnt anything
    (`beats_random`: None below MIN_CLAIM_EPISODES, as compare() withholds its ratios)."""
    if best is None:
        return {"best_report_score": None, "random_score": None, "beats_random": None}
    payload = load_checkpoint(best["checkpoint"])
    ref = handles.put(payload)
    pending = [submit_evaluation(ref, game, protocol.episodes, workers,
                                 **protocol.play(REPORT, payload, random_policy=random)) for random in (False, True)]
    best_eval, random_eval = (collect_evaluation(p, epsilon, protocol.noop_max).as_dict()
                              for p, epsilon in zip(pending, (protocol.epsilon, RANDOM_EPSILON)))
    return {"best_report_score": best_eval, "random_score": random_eval,
            "beats_random": None if protocol.episodes < MIN_CLAIM_EPISODES else beats_beyond_chance(
                best_eval["mean"], best_eval["ci95"], random_eval["mean"], random_eval["ci95"])}


def memory_plan(cfg: TeacherConfig) -> MemoryPlan:
    spec = game_spec(cfg.acting.game)
    return MemoryPlan({spec.name: spec.num_actions}, cfg.replay.capacity_steps, cfg.replay.replay_shards,
                      shard_slot_bytes(cfg.dqn.batch_size, cfg.replay.prefetch, stacks=2,
                                       per_call=dqn_config(cfg).per_call))


class DQNTraining:
    """The DQN side of a run, driven step by step so an online run can interleave it with a student."""

    def __init__(self, cfg: TeacherConfig, run: RunDir, resume: dict | None, echo=print, scorer=score_checkpoint):
        """`scorer(registry, version, frames, payload, game, protocol)` runs as an evaluator task for
        every checkpoint and reports its score to the registry (tests inject one)."""
        self.cfg, self.run, self.echo, self.scorer = cfg, run, echo, scorer
        self.spec = game_spec(cfg.acting.game)
        self.env_mode = resolve_env_mode(cfg.acting.env_mode, None)  # auto: native; sb3/cleanrl press FIRE on reset
        self.protocol = dataclasses.replace(cfg.protocol(), env_mode=self.env_mode)
        self.env_config = self.protocol.env_config()
        self.resume = resume
        extra = resume["extra"] if resume else {}
        self.frames_base = int(extra.get("frames", 0))
        self.next_eval = int(extra.get("next_eval", cfg.eval_every))
        self.version = int(extra.get("versions", 0))
        self.restarts = int(extra.get("restarts", -1)) + 1
        self.frames = self.frames_base
        self.updates = int(resume["updates"]) if resume else 0
        self.last_checkpoint = self.updates
        self.earlier_s = counters_at(run, "dqn", self.updates).get("elapsed_s", 0.0)  # a resume's lines go on
        self.marks = ResumeMarks(["dqn"] if self.earlier_s else [])
        self.pending: dict = {}  # evaluator ref -> the DQN's updates when it was taken
        self.plane = DataPlane(self.spec)
        self.teachers = run.path / "teachers"
        self.teachers.mkdir(exist_ok=True)

    def start(self, plan: MemoryPlan, actor_options: dict, actor_device: str, learner_gpu_share: float,
              slots: dict) -> None:
        """`slots`: the placement-group options for this side's learner, shards and actors."""
        cfg = self.cfg
        self.registry = handles.remote(CheckpointRegistry, num_cpus=0, max_concurrency=8, **NO_TASK_EVENTS).remote(
            str(self.run.path / "registry.json"))
        self.plane.open_shards(plan, RateLimit(cfg.replay.replay_ratio, cfg.acting.chunk_size, cfg.replay.min_replay,
                                               cfg.dqn.batch_size),
                               writers=cfg.acting.actors, readers=cfg.replay.prefetch,
                               seed=cfg.run.seed + 7_919 * self.restarts, placement=slots["shards"],
                               insert_budget=split_budget((cfg.frames - self.frames_base) // FRAME_SKIP,
                                                          cfg.acting.actors, cfg.replay.replay_shards))
        self.learner = handles.remote(DQNLearner, num_cpus=1, num_gpus=learner_gpu_share, **slots["learner"],
                                                     **NO_TASK_EVENTS).remote(
            dqn_config(cfg), self.spec.name, self.spec.num_actions, self.plane.shards, self.resume)
        # an actor Ray restarts retries its `run` with this first policy (then gets fresh weights and
        # epsilon at the next push), and its new stream starts at chunk 0 with every env reset
        policy = self.learner.policy.remote(self.updates)
        epsilon = cfg.dqn.epsilon_at(self.frames)
        self.plane.start_actors(
            [{**actor_options, **slots["actors"][i]} for i in range(cfg.acting.actors)], policy,
            lambda i: dict(game=self.spec.name, num_envs=cfg.acting.envs_per_actor, epsilon=epsilon,
                           env_config=dataclasses.replace(self.env_config, life_loss_terminal=cfg.dqn.life_loss_terminal),
                           seed=actor_seed(cfg.run.seed, i + cfg.acting.actors * self.restarts), actor_id=i,
                           chunk_steps=cfg.acting.chunk_steps, device=actor_device,
                           groups=cfg.acting.groups(actor_device), half_precision=False),
            restartable=True)
        history = handles.get(self.registry.history.remote())
        # snapshots registered after the checkpoint this run resumes from (it died, not stopped) keep
        # their versions; new ones follow them
        self.version = max([self.version] + [entry["version"] for entry in history])
        for entry in history:
            if entry["score"] is None:  # registered before a crash, never scored
                self._submit_score(entry["version"], entry["frames"], load_checkpoint(entry["checkpoint"]))
        self.ready = self.learner.wait_for_replay.remote()

    def _replay(self) -> tuple[int, bool]:
        """Steps inserted so far, and whether every shard has taken its share of --frames."""
        stats = handles.get([shard.stats.remote() for shard in self.plane.shards])
        return sum(s["limiter"]["inserted"] for s in stats), all(s["budget_spent"] for s in stats)

    def submit_train(self):
        return self.learner.train.remote(self.cfg.run.log_every)

    def after_train(self, metrics: dict, elapsed_s: float) -> bool:
        """Pushes fresh weights and epsilon to the actors, logs, snapshots and checkpoints when due.

        Returns whether the frame budget is spent."""
        self.updates = metrics["updates"]
        inserted, spent = self._replay()
        self.frames = self.frames_base + FRAME_SKIP * inserted
        epsilon = self.cfg.dqn.epsilon_at(self.frames)
        policy = self.learner.policy.remote(self.updates)
        self.plane.tell("set_teacher", policy, epsilon)
        self.run.log(self.marks.mark({"kind": "dqn", **metrics, "frames": self.frames, "epsilon": epsilon,
                                      "elapsed_s": self.earlier_s + elapsed_s}, "dqn"))
        if self.frames >= self.next_eval:  # one snapshot, however many eval points the interval crossed
            self.snapshot()
            self.next_eval = (self.frames // self.cfg.eval_every + 1) * self.cfg.eval_every
        if self.updates - self.last_checkpoint >= self.cfg.run.checkpoint_every:
            self.checkpoint()
        return spent

    def snapshot(self) -> int:
        """A teacher checkpoint of the current network, registered and sent to an evaluator."""
        self.version += 1
        payload = handles.get(self.learner.policy.remote(self.version))
        payload["extra"].update(frames=self.frames, game=self.spec.name, env_mode=self.env_mode)
        path = self.teachers / f"teacher-{self.version:06d}.pt"
        save_checkpoint(path, payload)
        handles.get(self.registry.register.remote(self.version, str(path), self.frames))
        self._submit_score(self.version, self.frames, payload)
        return self.version

    def _submit_score(self, version: int, frames: int, payload: dict) -> None:
        ref = handles.remote(self.scorer, **EVALUATOR_TASK).remote(self.registry, version, frames, payload, self.spec.name,
                                                               self.protocol)
        self.pending[ref] = self.updates

    def poll_scores(self, wait: bool = False) -> list[dict]:
        """Evaluations that have finished (all of them with `wait`)."""
        if not self.pending:
            return []
        done, _ = handles.wait(list(self.pending), num_returns=len(self.pending) if wait else 1, timeout=None if wait else 0)
        results = handles.get(done)
        best = self.best() if results else None
        for ref, result in zip(done, results):
            result["updates"] = self.pending.pop(ref)
            self.run.to_tensorboard("dqn_eval", {"score": result["score"], "ci95": result["ci95"],
                                                 "frames": result["frames"], "best_score": best["score"]},
                                    result["updates"])
            scored = score_text(result["score"], result["ci95"], self.protocol.selection_episodes)
            self.echo.evaluation("dqn", f"checkpoint {result['version']} at {result['frames']:,} frames scored "
                                        f"{scored} on selection seeds; best so far {best['score']:.2f} "
                                        f"(checkpoint {best['version']})")
        return results

    def best(self) -> dict | None:
        return handles.get(self.registry.best.remote())

    def checkpoint(self) -> Path:
        extra = {"frames": self.frames, "next_eval": self.next_eval, "versions": self.version,
                 "restarts": self.restarts, "game": self.spec.name}
        path = self.run.save_checkpoint(handles.get(self.learner.state.remote(extra)), series="dqn")
        self.last_checkpoint = self.updates
        return path

    def stop_acting(self) -> list[dict]:
        budget = WindDown()
        stats = self.plane.stop(budget)
        answered = self.plane.shard_stats(budget)
        self.actor_restarts = None if answered is None else sum(s["stream_restarts"] for s in answered)
        return stats

    def abandon(self) -> None:
        """A stop was asked for: actors down, a final checkpoint, everything freed. Evaluations still
        running are dropped; the registry keeps their checkpoints unscored and a resume scores them."""
        self.actor_stats = self.stop_acting()
        if self.updates != self.last_checkpoint:
            self.checkpoint()
        self.plane.free()
        for handle in (self.learner, self.registry):
            handles.kill(handle)

    def stopped_summary(self) -> dict:
        return {"game": self.spec.name, "frames": self.frames, "updates": self.updates,
                "target_frames": self.cfg.frames}

    def finish(self, taken=lambda version: None) -> list[dict]:
        """Stops the actors, snapshots the final network (`taken` hears of it), checkpoints, waits for
        every score, and frees every actor but the registry. Returns the scores that came in."""
        self.actor_stats = self.stop_acting()
        history = handles.get(self.registry.history.remote())
        if not history or history[-1]["frames"] < self.frames:
            taken(self.snapshot())
        self.checkpoint()
        results = self.poll_scores(wait=True)
        self.plane.free()
        handles.kill(self.learner)
        return results


def teacher_placement(cfg: TeacherConfig, plan: MemoryPlan, use_gpu: bool,
                      distill_plan: MemoryPlan | None = None) -> PlacementPlan:
    """The DQN learner, shards and actors (and an online run's student side: its learner shares
    the DQN learner's GPU)."""
    shards = [(f"shard {s.game}/{s.index}", s.memory) for s in plan.shards]
    learners, actors = ["dqn learner"], cfg.acting.actors
    if distill_plan is not None:
        shards += [(f"student shard {s.game}/{s.index}", s.memory) for s in distill_plan.shards]
        learners, actors = learners + ["student learner"], actors + cfg.distill_actors
    return plan_run(learners, use_gpu, None, shards, actors, cfg.acting.actor_gpus,
                    learner_gpu_share=0.5 if distill_plan is not None else 1.0)


@on_its_runner
def run_teacher(cfg: TeacherConfig, run: RunDir | None = None, resume: dict | None = None, echo=print,
                stop: StopToken | None = None) -> dict:
    plan = memory_plan(cfg)
    start = start_run(cfg.KIND, cfg, run, echo, cpus=cfg.acting.actors + 2, memory=[("memory plan", plan)],
                      placement=lambda gpu: teacher_placement(cfg, plan, gpu), progress=(cfg.frames, "frames"),
                      roles=f"{cfg.acting.actors} actor(s), the learner, an evaluator", stop=stop)
    training = DQNTraining(cfg, start.run, resume, start.echo)
    training.start(plan, start.actor_options, start.actor_device, 1 if start.use_gpu else 0,
                   start.placement.slots(0, range(len(plan.shards)), range(cfg.acting.actors)))
    handles.get(training.ready)
    start.echo(f"[teacher] {training.spec.title}: replay holds {cfg.replay.min_replay}+ steps, "
               f"training {cfg.dqn.preset} DQN")
    frames_at_start = training.frames
    while not training.after_train(handles.get(training.submit_train()), start.elapsed()):
        training.poll_scores()
        if start.stop.requested():
            training.abandon()
            return start.stopped(training.stopped_summary())
    training.finish()
    best, history = training.best(), handles.get(training.registry.history.remote())
    handles.kill(training.registry)
    start.placement.release("actors")  # their CPUs go to the report evaluation
    scores = report_best(best, training.spec.name, training.protocol, cfg.evaluation.workers)
    return start.finish({
        "game": training.spec.name, "frames": training.frames, "updates": training.updates,
        "preset": cfg.dqn.preset, "recipe": recipe(cfg),
        "best": best, "best_teacher": best["checkpoint"] if best else None, "evaluations": history,
        **scores,
        "eval_protocol": training.protocol.text(), "protocol": training.protocol.as_dict(),
        "frames_per_s": (training.frames - frames_at_start) / start.elapsed(),
        "learner_device": "cuda" if start.use_gpu else "cpu",
        "steps_per_actor": [s["steps"] for s in training.actor_stats],
        "restarts": {"actors": training.actor_restarts},
    })
