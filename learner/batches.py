"""Batches from replay shards, with `prefetch` sample requests always in flight.

Both learners (distillation and DQN) train from this stream: while one batch trains the
next few are already on their way, and the time still spent waiting is measured. A game
is drawn by the schedule, a shard in proportion to how much it holds, which keeps sampling
uniform over every step stored for the game.
"""

from __future__ import annotations

import collections
import time

import numpy as np

from learner.schedule import GameSchedule
from replay.shard import pick_shard


class BatchStream:
    def __init__(self, shards: dict[str, list], batch_size: int, prefetch: int, schedule: GameSchedule,
                 seed: int = 0, timeout_s: float = 600.0, method: str = "sample", **method_kwargs):
        self.shards, self.batch_size, self.prefetch = shards, batch_size, prefetch
        self.schedule, self.timeout_s = schedule, timeout_s
        self.method, self.method_kwargs = method, method_kwargs
        self.shard_sizes = {game: np.ones(len(handles)) for game, handles in shards.items()}
        self.rng = np.random.default_rng(seed)
        self.pending: collections.deque = collections.deque()

    def _request(self) -> None:
        game = self.schedule.next()
        index = pick_shard(self.shard_sizes[game], self.rng)
        call = getattr(self.shards[game][index], self.method)
        self.pending.append((game, index, call.remote(self.batch_size, **self.method_kwargs)))

    def wait_for_replay(self, min_replay: int, timeout_s: float = 600.0) -> None:
        import ray

        deadline = time.monotonic() + timeout_s
        while True:
            sizes = {g: np.array(ray.get([s.size.remote() for s in h]), float) for g, h in self.shards.items()}
            if all(s.sum() >= min_replay for s in sizes.values()):
                self.shard_sizes = sizes
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay holds {dict((g, int(s.sum())) for g, s in sizes.items())} steps after "
                                   f"{timeout_s:.0f}s, below min_replay={min_replay}; are the actors running?")
            time.sleep(0.2)

    def next(self) -> tuple[str, dict, float]:
        """(game, batch, seconds waited for it)."""
        import ray

        while len(self.pending) < self.prefetch:
            self._request()
        game, index, ref = self.pending.popleft()
        before = time.perf_counter()
        try:
            batch = ray.get(ref, timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"no batch from {game} replay shard {index} in {self.timeout_s:.0f}s; "
                               f"are its actors alive?") from None
        waited = time.perf_counter() - before
        self.shard_sizes[game][index] = float(batch["shard_size"])
        del ref
        self._request()
        return game, batch, waited

    def replay_size(self) -> dict[str, int]:
        return {g: int(s.sum()) for g, s in self.shard_sizes.items()}
