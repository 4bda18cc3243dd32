"""The learner: owns the student and its optimizer, pulls batches, reports and checkpoints.

It keeps `prefetch` sample requests in flight across the replay shards, so the next
batch is already on its way while the current one trains; the time it still waits is
reported as `wait_fraction`. A shard is chosen in proportion to how much it holds, which
keeps sampling uniform over everything stored. All file I/O stays with the driver: the
learner hands its state over, so it can run on any node of a cluster.
"""

from __future__ import annotations

import collections
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from learner.checkpoint import make_payload
from learner.losses import make_loss
from learner.networks import QNetwork
from learner.schedule import GameSchedule
from replay.shard import pick_shard

# Batches arrive as read-only views of Ray's object store; the learner only reads them.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


@dataclass(frozen=True)
class LearnerConfig:
    student: str = "paper-25"
    loss: str = "kl"
    tau: float = 0.01
    lr: float = 2.5e-4
    batch_size: int = 32
    prefetch: int = 4
    min_replay: int = 1000
    device: str = "auto"  # "auto": CUDA when visible, else CPU
    amp: bool = True  # bf16 autocast on CUDA only
    seed: int = 0
    batch_timeout_s: float = 600.0


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Learner:
    def __init__(self, config: LearnerConfig, heads: dict[str, int], shards: dict[str, list], resume: dict | None = None,
                 weights: dict[str, float] | None = None):
        torch.manual_seed(config.seed)
        self.config = config
        self.device = pick_device(config.device)
        self.student = QNetwork(config.student, heads).to(self.device)
        self.optimizer = torch.optim.RMSprop(self.student.parameters(), lr=config.lr, alpha=0.95, eps=1e-5)
        self.loss_fn = make_loss(config.loss, config.tau)
        self.shards = shards
        self.shard_sizes = {game: np.ones(len(handles)) for game, handles in shards.items()}
        self.rng = np.random.default_rng(config.seed)
        self.pending: collections.deque = collections.deque()
        self.updates = 0
        self.samples = 0
        weights = weights or {game: 1.0 for game in shards}
        # `requests` runs ahead by the prefetch depth; `trained` is what a checkpoint records
        self.requests, self.trained = GameSchedule(weights), GameSchedule(weights)
        if resume is not None:
            self.student.load_state_dict(resume["model"])
            if resume.get("optimizer"):
                self.optimizer.load_state_dict(resume["optimizer"])
            self.updates = int(resume["updates"])
            schedule = resume.get("extra", {}).get("schedule")
            if schedule:
                self.requests.load(schedule)
                self.trained.load(schedule)

    def _request(self) -> None:
        game = self.requests.next()
        index = pick_shard(self.shard_sizes[game], self.rng)
        ref = self.shards[game][index].sample.remote(self.config.batch_size)
        self.pending.append((game, index, ref))

    def wait_for_replay(self, timeout_s: float = 600.0) -> None:
        import ray

        deadline = time.monotonic() + timeout_s
        while True:
            sizes = {g: np.array(ray.get([s.size.remote() for s in h]), float) for g, h in self.shards.items()}
            if all(s.sum() >= self.config.min_replay for s in sizes.values()):
                self.shard_sizes = sizes
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay holds {dict((g, int(s.sum())) for g, s in sizes.items())} steps after "
                                   f"{timeout_s:.0f}s, below min_replay={self.config.min_replay}; are the actors running?")
            time.sleep(0.2)

    def _update(self, game: str, batch: dict) -> float:
        obs = torch.from_numpy(batch["obs"]).to(self.device, non_blocking=True)
        q_teacher = torch.from_numpy(batch["q"]).to(self.device, non_blocking=True)
        amp = self.config.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            q_student = self.student(obs, game)
        loss = self.loss_fn(q_student.float(), q_teacher)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train(self, num_updates: int) -> dict:
        import ray

        started, waited = time.perf_counter(), 0.0
        losses = []
        while len(self.pending) < self.config.prefetch:
            self._request()
        for _ in range(num_updates):
            game, index, ref = self.pending.popleft()
            before = time.perf_counter()
            try:
                batch = ray.get(ref, timeout=self.config.batch_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise TimeoutError(f"no batch from {game} replay shard {index} in {self.config.batch_timeout_s:.0f}s; "
                                   f"are its actors alive?") from None
            waited += time.perf_counter() - before
            self.shard_sizes[game][index] = float(batch["shard_size"])
            del ref
            self._request()
            losses.append(self._update(game, batch))
            self.trained.next()
            self.updates += 1
            self.samples += self.config.batch_size
        elapsed = time.perf_counter() - started
        return {
            "updates": self.updates,
            "loss": float(torch.stack(losses).mean()) if losses else float("nan"),
            "updates_per_s": num_updates / elapsed,
            "samples_per_s": num_updates * self.config.batch_size / elapsed,
            "wait_fraction": waited / elapsed,
            "replay_size": {g: int(s.sum()) for g, s in self.shard_sizes.items()},
            "samples_per_game": {g: n * self.config.batch_size for g, n in self.trained.counts.items()},
        }

    def state(self, extra: dict | None = None) -> dict:
        extra = {**(extra or {}), "schedule": self.trained.state()}
        return make_payload(self.student, "student", updates=self.updates,
                            optimizer=self.optimizer.state_dict(), extra=extra)

    def agreement(self, obs: np.ndarray, q_teacher: np.ndarray, game: str | None = None, batch: int = 512) -> float:
        """Fraction of frames where the student's greedy action equals the teacher's."""
        self.student.eval()
        matches = 0
        with torch.inference_mode():
            for start in range(0, len(obs), batch):
                x = torch.from_numpy(obs[start:start + batch]).to(self.device)
                q = self.student(x, game).float().cpu().numpy()
                matches += int((q.argmax(1) == q_teacher[start:start + batch].argmax(1)).sum())
        self.student.train()
        return matches / len(obs)
