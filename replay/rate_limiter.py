"""Reverb's SampleToInsertRatio, held per replay shard.

The limiter keeps `inserted * ratio - sampled` inside a band of +/- `error_buffer`
around `min_size * ratio`: when the learner runs ahead, sampling waits for inserts; when
the actors run ahead, inserting waits for samples. The learner therefore sees the same
number of samples per labelled step on a laptop and on a cluster, whatever the relative
speed of the two sides. Both sides can always make progress as long as the band is wider
than one insert plus one sample (`error_buffer >= chunk_steps * ratio + batch_size`).

A ratio of 0 turns the limiter off: sampling needs only `min_size` steps stored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """What a run asks of one game's replay: `ratio` sampled steps per inserted one (0: no limit), inserts
    of `insert_steps`, samples of `batch_size`, and `min_replay` steps stored, over all its shards, before
    the first sample."""

    ratio: float
    insert_steps: int
    min_replay: int
    batch_size: int

    def for_shard(self, shards: int, steps: int) -> "SampleToInsertRatio":
        """One of `shards` shards' limiter, holding at most `steps`: min_replay is split evenly over them."""
        min_size = max(1, -(-self.min_replay // shards))
        return SampleToInsertRatio.for_shard(self.ratio, min(min_size, steps), self.insert_steps, self.batch_size)


def band(ratio: float, insert_steps: int, batch_size: int) -> float:
    """The narrowest band that can never stall both sides at once, doubled for jitter: how far, in
    sampled steps, either side may run ahead of the other."""
    return 2.0 * (insert_steps * ratio + batch_size)


@dataclass
class SampleToInsertRatio:
    ratio: float  # sampled steps per inserted step; 0 disables the limit
    min_size: int  # steps stored before the first sample
    error_buffer: float  # slack, in sampled steps, either side of the target
    inserted: int = 0
    sampled: int = 0

    def __post_init__(self):
        if self.ratio < 0 or self.min_size < 1 or self.error_buffer < 0:
            raise ValueError(f"bad rate limit: ratio {self.ratio}, min_size {self.min_size}, "
                             f"error_buffer {self.error_buffer}")

    @classmethod
    def for_shard(cls, ratio: float, min_size: int, insert_steps: int, batch_size: int) -> "SampleToInsertRatio":
        return cls(ratio, min_size, band(ratio, insert_steps, batch_size))

    def _diff(self) -> float:
        return self.inserted * self.ratio - self.sampled

    def can_insert(self, steps: int, size: int) -> bool:
        if self.ratio == 0 or size + steps <= self.min_size:
            return True
        return self._diff() + steps * self.ratio <= self.min_size * self.ratio + self.error_buffer

    def can_sample(self, steps: int, size: int) -> bool:
        if size < self.min_size:
            return False
        if self.ratio == 0:
            return True
        return self._diff() - steps >= self.min_size * self.ratio - self.error_buffer

    def state(self) -> dict:
        return {"ratio": self.ratio, "inserted": self.inserted, "sampled": self.sampled,
                "observed_ratio": self.sampled / self.inserted if self.inserted else None}
