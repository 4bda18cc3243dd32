"""Teacher rollouts: a teacher plays N environments and labels every observation it sees.

`TeacherRollout` is the plain loop (testable in-process); `RolloutActor` is the Ray actor
that runs it and streams encoded chunks to a replay shard with a bounded number of
inserts in flight, so a slow replay slows the actor instead of filling the object store.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import numpy as np
import torch

from atari_distill.actors.env import EnvConfig, env_seeds, make_vector_env, restarted_actor_seed
from atari_distill.actors.precision import STRICTEST_LOSS, half_precision_keeps_target
from atari_distill.evaluation.protocol import HOLDOUT, STICKY_HOLDOUT, EvalProtocol
from atari_distill.models.checkpoint import build_network
from atari_distill.replay.chunk import Chunk, encode
from atari_distill.runners import handles


def half_keeps_targets(net: torch.nn.Module, game: str, device: torch.device, losses) -> tuple[bool, str]:
    """Half precision is used only if it keeps the target `losses` train on (actors/precision.py), on
    held-out frames: the same greedy action is not enough for a KL at a small tau."""
    from atari_distill.actors.teachers import calibration_frames

    frames = calibration_frames(game, seed=EvalProtocol().seed_base(HOLDOUT) + STICKY_HOLDOUT // 2).to(device)
    ok, _, line = half_precision_keeps_target(net, frames, losses, game)
    return ok, line


class _EnvGroup:
    """Some of an actor's environments in their own AtariVectorEnv, stepped with send/recv."""

    def __init__(self, game: str, seeds: np.ndarray, env_config: EnvConfig, rng: np.random.Generator):
        self.env = make_vector_env(game, len(seeds), env_config)
        self.obs, info = self.env.reset(seed=seeds)
        self.life_loss_terminal = env_config.life_loss_terminal
        self.lives = info["lives"]
        self.first = np.ones(len(seeds), bool)
        self.resetting = np.zeros(len(seeds), bool)  # ended last step: the env resets on the next step
        self.student_episode = np.zeros(len(seeds), bool)  # the student chooses this episode's actions
        self.rng = rng
        self.pending: dict | None = None  # labelled and sent; the env is computing what follows


class TeacherRollout:
    """A teacher labelling `num_envs` environments, split into `groups` pipelined groups.

    While one group's environments step in ale-py's C++ threads, the teacher labels the
    next group's observations, so inference and emulation overlap instead of taking turns.
    Each environment's column in a chunk is still its own consecutive stream; the groups
    are only half a step out of phase."""

    def __init__(self, game: str, teacher: dict, num_envs: int, *, env_config: EnvConfig = EnvConfig(),
                 epsilon: float = 0.05, seed: int = 0, actor_id: int = 0, chunk_steps: int = 128,
                 device: str = "cpu", groups: int = 2, half_precision: bool = True,
                 label_losses=STRICTEST_LOSS):
        self.game, self.num_envs, self.epsilon = game, num_envs, epsilon
        self.actor_id, self.chunk_steps, self.device = actor_id, chunk_steps, torch.device(device)
        self.half_precision, self.net = half_precision, None
        self.student_net, self.beta = None, 1.0  # beta: the teacher's share of new episodes
        self.label_losses = label_losses  # what the labels train: float16 only if it keeps their targets
        self.set_teacher(teacher)
        seeds = env_seeds(seed, num_envs)
        self.groups = [_EnvGroup(game, part, env_config, np.random.default_rng([seed, actor_id, g]))
                       for g, part in enumerate(np.array_split(seeds, max(1, min(groups, num_envs))))]
        self.keep_obs = False  # labelled_stacks needs whole observations; chunks need only frames
        self.chunk_index = 0
        self.timings = {"env_s": 0.0, "inference_s": 0.0}

    def set_teacher(self, teacher: dict) -> None:
        """Call between chunks only (RolloutActor does), so each chunk is labelled by one version."""
        same_shape = (self.net is not None and self.net.preset_name == teacher["preset"]
                      and self.net.head_sizes == teacher["heads"] and not self.half)
        if same_shape:  # a DQN actor's frequent weight pushes: no rebuild
            self.net.load_state_dict(teacher["model"])
        else:
            self.net = build_network(teacher).to(self.device).eval()
        self.num_actions = teacher["heads"][self.game]
        self.teacher_version = int(teacher.get("teacher_version", 0))
        self.half, self.half_check = False, "float32 labels: float16 is tried on CUDA only"
        if self.half_precision and self.device.type == "cuda":
            self.half, self.half_check = half_keeps_targets(self.net, self.game, self.device, self.label_losses)
        if self.half:
            self.net.half()

    def set_student(self, student: dict, beta: float) -> None:
        """The student whose greedy actions drive the episodes the teacher does not (a share 1 - beta of
        those that start from now; all at once when beta is 0). The teacher still labels every step.
        Call between chunks only, as set_teacher."""
        if self.student_net is not None and self.student_net.preset_name == student["preset"]:
            self.student_net.load_state_dict(student["model"])
        else:
            self.student_net = build_network(student).to(self.device).eval()
        self.beta = float(beta)
        if self.beta == 0.0:
            for group in self.groups:
                group.student_episode[:] = True

    def _q_values(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(obs).to(self.device, non_blocking=True)
            q = self.net(x.half() / 255.0 if self.half else x, self.game)
        return q.float().cpu().numpy()

    def _greedy(self, group: _EnvGroup, q: np.ndarray) -> np.ndarray:
        """The teacher's greedy actions, or the student's in the episodes it drives."""
        actions = q.argmax(axis=1)
        if self.student_net is None:
            return actions
        starting = group.first
        group.student_episode[starting] = group.rng.random(int(starting.sum())) >= self.beta
        if group.student_episode.any():
            with torch.inference_mode():
                q_student = self.student_net(torch.from_numpy(group.obs).to(self.device), self.game)
            actions = np.where(group.student_episode, q_student.argmax(dim=1).cpu().numpy(), actions)
        return actions

    def _launch(self, group: _EnvGroup) -> None:
        started = time.perf_counter()
        q = self._q_values(group.obs)
        actions = self._greedy(group, q)
        explore = group.rng.random(len(actions)) < self.epsilon
        actions[explore] = group.rng.integers(0, self.num_actions, int(explore.sum()))
        group.pending = {"frames": group.obs[:, -1].copy(), "q": q, "actions": actions, "first": group.first}
        if self.student_net is not None:
            group.pending["student_acted"] = group.student_episode.copy()
        if self.keep_obs:
            group.pending["obs"] = group.obs.copy()
        group.env.send(actions.astype(np.int64))
        self.timings["inference_s"] += time.perf_counter() - started

    def _land(self, group: _EnvGroup) -> dict:
        started = time.perf_counter()
        group.obs, rewards, terminated, truncated, info = group.env.recv()
        self.timings["env_s"] += time.perf_counter() - started
        record, group.pending = group.pending, None
        # NEXT_STEP autoreset: term/trunc come with an episode's last observation; the env resets
        # on the following step, whose observation is the new episode's first.
        group.first, group.resetting = group.resetting, terminated | truncated
        if group.life_loss_terminal:
            terminated = terminated | (info["lives"] < group.lives)
        group.lives = info["lives"]
        record.update(rewards=rewards.astype(np.float32), terminated=terminated, truncated=truncated)
        return record

    def step(self, relaunch: bool = True) -> dict[str, np.ndarray]:
        """One labelled step of every environment: what it saw and what followed.

        With `relaunch` each group is labelled and sent on as soon as it lands, so its next
        step runs while the following groups are labelled."""
        for group in self.groups:
            if group.pending is None:
                self._launch(group)
        records = []
        for group in self.groups:
            records.append(self._land(group))
            if relaunch:
                self._launch(group)
        return {key: np.concatenate([r[key] for r in records]) for key in records[0]}

    def close(self) -> None:
        """Each group's environments closed, a step still in flight landed first (on the local runner an
        environment left to the interpreter's exit aborts it, its C++ threads still running)."""
        for group in self.groups:
            if group.pending is not None:
                group.env.recv()
                group.pending = None
            group.env.close()

    def next_chunk(self) -> Chunk:
        """The next `chunk_steps` steps; the last step drains the pipeline, so a chunk is all one teacher's."""
        steps = [self.step(relaunch=t < self.chunk_steps - 1) for t in range(self.chunk_steps)]
        stacked = {key: np.stack([s[key] for s in steps]) for key in steps[0] if key != "obs"}
        chunk = Chunk(
            game=self.game, actor_id=self.actor_id, chunk_index=self.chunk_index,
            teacher_version=self.teacher_version,
            **stacked,
        )
        self.chunk_index += 1
        return chunk

    def labelled_stacks(self, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Full observations and Q vectors, for held-out agreement (never enters replay)."""
        self.keep_obs = True
        obs, q = [], []
        while sum(len(o) for o in obs) < num_steps:
            record = self.step()
            obs.append(record["obs"])
            q.append(record["q"])
        return np.concatenate(obs)[:num_steps], np.concatenate(q)[:num_steps]


# On a node the actors share with a learner, the learner runs first: the run waits on it, and the
# rate limiter holds the actors to its pace anyway. Set on the thread that builds the actor, which
# the emulator's threads inherit; every thread of the process niced measured no gain (bench/RESULTS.md,
# ten games on one node).
NICENESS = 10


class RolloutActor:
    """Runs a TeacherRollout until stopped; Ray runs it with max_concurrency=2 so `stop` and
    `set_teacher` get in. A new teacher (a hot swap, or a DQN actor's fresh weights and
    epsilon) takes effect at the next chunk boundary; `swaps` logs each version from the first
    chunk it labels, as the replay records them.

    One insert in flight: Ray does not order calls to a threaded actor (the shard), so a
    second would let chunks overtake each other; the next chunk is generated meanwhile.

    The shard and the first teacher come with `run`; the constructor takes plain settings only. An
    actor Ray restarts is built again from its constructor's arguments, and Ray keeps those only as
    long as the driver happens to (ray-project/ray#53727; it logs an error for any restartable actor
    given object refs or actor handles), while the `run` it retries comes with the call's own
    arguments, which Ray keeps until the call is done."""

    def __init__(self, max_inflight: int = 1, **rollout_kwargs):
        torch.set_num_threads(1)
        os.nice(NICENESS)
        if handles.restarted():
            # Ray restarted this actor: new episodes, not a replay of the first incarnation's
            rollout_kwargs["seed"] = restarted_actor_seed(int(rollout_kwargs.get("seed", 0)), os.getpid())
        self.rollout_kwargs, self.rollout = rollout_kwargs, None
        self.max_inflight = max_inflight
        self.stopping = threading.Event()
        self.next_teacher: tuple[dict, float | None] | None = None
        self.next_student: tuple[dict, float] | None = None
        self._swap_lock = threading.Lock()  # set_teacher runs on Ray's other thread
        self.swaps = collections.deque(maxlen=1024)  # (first chunk, version)
        self.steps = 0
        self.timings = {"encode_s": 0.0, "send_wait_s": 0.0}

    def _apply_swap(self) -> None:
        with self._swap_lock:  # else a teacher sent between the read and the clear is lost
            pending, self.next_teacher = self.next_teacher, None
            student, self.next_student = self.next_student, None
        if student is not None:
            self.rollout.set_student(*student)
        if pending is None:
            return
        teacher, epsilon = pending
        self.rollout.set_teacher(teacher)
        version = self.rollout.teacher_version
        if epsilon is not None:
            self.rollout.epsilon = epsilon
        if self.swaps[-1][0] == self.rollout.chunk_index:  # it labelled no chunk
            self.swaps.pop()
        if not self.swaps or self.swaps[-1][1] != version:
            self.swaps.append((self.rollout.chunk_index, version))

    def run(self, shard, teacher: dict, max_chunks: int | None = None) -> dict:
        """Streams chunks into `shard`, labelled by `teacher` until `set_teacher` sends another."""
        if self.rollout is None:
            self.rollout = TeacherRollout(teacher=teacher, **self.rollout_kwargs)
            self.swaps.append((0, self.rollout.teacher_version))
        inflight, sent = [], 0
        while not self.stopping.is_set() and (max_chunks is None or sent < max_chunks):
            self._apply_swap()
            chunk = self.rollout.next_chunk()
            started = time.perf_counter()
            message = encode(chunk)
            encoded = time.perf_counter()
            if len(inflight) >= self.max_inflight:
                done, inflight = handles.wait(inflight, num_returns=1)
                handles.get(done)
            inflight.append(shard.insert.remote(message))
            self.timings["encode_s"] += encoded - started
            self.timings["send_wait_s"] += time.perf_counter() - encoded
            self.steps += chunk.steps * chunk.envs
            sent += 1
        handles.get(inflight)
        if self.stopping.is_set():  # told to stop: this actor streams no more
            self.rollout.close()
        return self.stats()

    def stop(self) -> None:
        self.stopping.set()

    def set_student(self, student: dict, beta: float) -> None:
        """The student's newest weights and the teacher's share of new episodes (--behaviour), from the
        next chunk on."""
        with self._swap_lock:
            self.next_student = (student, beta)

    def set_teacher(self, teacher: dict, epsilon: float | None = None) -> None:
        with self._swap_lock:
            self.next_teacher = (teacher, epsilon)

    def stats(self) -> dict:
        if self.rollout is None:  # before `run` has built it (or a restarted actor before its retried run)
            return {"actor_id": self.rollout_kwargs.get("actor_id", 0), "steps": self.steps, "built": False,
                    "swaps": [list(s) for s in self.swaps], **self.timings}
        return {"actor_id": self.rollout.actor_id, "steps": self.steps, "device": str(self.rollout.device),
                "half_precision": self.rollout.half, "half_check": self.rollout.half_check,
                "teacher_version": self.rollout.teacher_version,
                "epsilon": self.rollout.epsilon, "beta": self.rollout.beta, "swaps": [list(s) for s in self.swaps],
                **self.rollout.timings, **self.timings}
