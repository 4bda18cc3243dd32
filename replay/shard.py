"""A replay shard: one game's frame ring behind a Ray actor's narrow interface.

Actors call `insert` with encoded chunks; learners call `sample`. The shard decodes,
checks the chunk belongs to its game, and copies it into its ring, so no Ray object stays
pinned by the replay (RLlib's Ape-X runs filled the object store that way).
"""

from __future__ import annotations

import time

import numpy as np

from replay.chunk import ChunkError, decode
from replay.frame_ring import FrameRing


class ReplayShard:
    def __init__(self, game: str, num_actions: int, capacity: int, seed: int = 0):
        self.game = game
        self.ring = FrameRing(capacity, num_actions)
        self.rng = np.random.default_rng(seed)
        self.rejected = 0
        self.sampled = 0
        self.started = time.monotonic()

    def insert(self, message: bytes) -> int:
        try:
            chunk = decode(message)
            if chunk.game != self.game:
                raise ChunkError(f"chunk is for game {chunk.game!r}, this shard holds {self.game!r}")
            self.ring.insert(chunk)
        except (ChunkError, ValueError):
            self.rejected += 1
            raise
        return self.ring.size

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        batch = self.ring.sample(batch_size, self.rng)
        batch["shard_size"] = np.int64(self.ring.size)
        self.sampled += batch_size
        return batch

    def size(self) -> int:
        return self.ring.size

    def stats(self) -> dict:
        return {
            "game": self.game, "size": self.ring.size, "capacity": self.ring.capacity,
            "inserted": self.ring.inserted, "sampled": self.sampled, "rejected": self.rejected,
        }
