"""Teacher rollouts: a teacher plays N environments and labels every observation it sees.

`TeacherRollout` is the plain loop (testable in-process); `TeacherActor` is the Ray actor
that runs it and streams encoded chunks to a replay shard with a bounded number of
inserts in flight, so a slow replay slows the actor instead of filling the object store.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from actors.env import EnvConfig, env_seeds, make_vector_env
from learner.checkpoint import build_network
from replay.chunk import Chunk, encode


class TeacherRollout:
    def __init__(self, game: str, teacher: dict, num_envs: int, *, env_config: EnvConfig = EnvConfig(),
                 epsilon: float = 0.05, seed: int = 0, actor_id: int = 0, chunk_steps: int = 128,
                 device: str = "cpu"):
        self.game, self.num_envs, self.epsilon = game, num_envs, epsilon
        self.actor_id, self.chunk_steps, self.device = actor_id, chunk_steps, torch.device(device)
        self.env = make_vector_env(game, num_envs, env_config)
        self.rng = np.random.default_rng([seed, actor_id])
        self.set_teacher(teacher)
        self.obs, _ = self.env.reset(seed=env_seeds(seed, num_envs))
        self.first = np.ones(num_envs, bool)
        self.resetting = np.zeros(num_envs, bool)  # ended last step: the env resets on the next step
        self.chunk_index = 0
        self.timings = {"env_s": 0.0, "inference_s": 0.0}

    def set_teacher(self, teacher: dict) -> None:
        self.net = build_network(teacher).to(self.device).eval()
        self.num_actions = teacher["heads"][self.game]
        self.teacher_version = int(teacher.get("teacher_version", 0))

    def _q_values(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            q = self.net(torch.from_numpy(obs).to(self.device), self.game)
        return q.float().cpu().numpy()

    def _act(self, q: np.ndarray) -> np.ndarray:
        actions = q.argmax(axis=1)
        explore = self.rng.random(self.num_envs) < self.epsilon
        actions[explore] = self.rng.integers(0, self.num_actions, int(explore.sum()))
        return actions.astype(np.int64)

    def step(self) -> dict[str, np.ndarray]:
        """One labelled step of every environment: what it saw and what followed.

        `obs` may be a buffer the environment reuses; callers that keep it copy it."""
        started = time.perf_counter()
        q = self._q_values(self.obs)
        actions = self._act(q)
        labelled = time.perf_counter()
        record = {"obs": self.obs, "frames": self.obs[:, -1].copy(), "q": q, "actions": actions,
                  "first": self.first}
        self.obs, rewards, terminated, truncated, _ = self.env.step(actions)
        # NEXT_STEP autoreset: term/trunc come with an episode's last observation; the env resets
        # on the following step, whose observation is the new episode's first.
        self.first, self.resetting = self.resetting, terminated | truncated
        record.update(rewards=rewards.astype(np.float32), terminated=terminated, truncated=truncated)
        self.timings["inference_s"] += labelled - started
        self.timings["env_s"] += time.perf_counter() - labelled
        return record

    def next_chunk(self) -> Chunk:
        steps = [self.step() for _ in range(self.chunk_steps)]
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
        obs, q = [], []
        while sum(len(o) for o in obs) < num_steps:
            record = self.step()
            obs.append(record["obs"].copy())
            q.append(record["q"])
        return np.concatenate(obs)[:num_steps], np.concatenate(q)[:num_steps]


class TeacherActor:
    """Runs a TeacherRollout until stopped; Ray runs it with max_concurrency=2 so `stop` gets in.

    One insert in flight: Ray does not order calls to a threaded actor (the shard), so a
    second would let chunks overtake each other; the next chunk is generated meanwhile."""

    def __init__(self, shard, max_inflight: int = 1, **rollout_kwargs):
        torch.set_num_threads(1)
        self.rollout = TeacherRollout(**rollout_kwargs)
        self.shard, self.max_inflight = shard, max_inflight
        self.stopping = threading.Event()
        self.steps = 0
        self.timings = {"encode_s": 0.0, "send_wait_s": 0.0}

    def run(self, max_chunks: int | None = None) -> dict:
        import ray

        inflight, sent = [], 0
        while not self.stopping.is_set() and (max_chunks is None or sent < max_chunks):
            chunk = self.rollout.next_chunk()
            started = time.perf_counter()
            message = encode(chunk)
            encoded = time.perf_counter()
            if len(inflight) >= self.max_inflight:
                done, inflight = ray.wait(inflight, num_returns=1)
                ray.get(done)
            inflight.append(self.shard.insert.remote(message))
            self.timings["encode_s"] += encoded - started
            self.timings["send_wait_s"] += time.perf_counter() - encoded
            self.steps += chunk.steps * chunk.envs
            sent += 1
        ray.get(inflight)
        return self.stats()

    def stop(self) -> None:
        self.stopping.set()

    def set_teacher(self, teacher: dict) -> None:
        self.rollout.set_teacher(teacher)

    def stats(self) -> dict:
        return {"actor_id": self.rollout.actor_id, "steps": self.steps,
                "teacher_version": self.rollout.teacher_version, **self.rollout.timings, **self.timings}
