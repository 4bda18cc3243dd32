"""The replay's memory plan: what every shard will hold, checked against what Ray has.

The numbers are exact, not estimates: a shard's ring allocates `bytes_per_step` for
each step it can hold plus one zero frame, and the replay benchmark measures resident
memory on a filled ring against the same figure. Beside its ring a shard lends its
learners shared batch slots, at most `slot_bytes` (learner/batches.py sizes them from the
batch and the requests in flight), which the plan reserves too. A plan is refused before
anything starts when the cluster lacks the memory, or when no single node could hold one
shard.
"""

from __future__ import annotations

from dataclasses import dataclass

from atari_distill.replay.frame_ring import FRAME_BYTES, bytes_per_step
from atari_distill.runners import handles

GIB = 1024**3
STEPS_PER_HOUR = 54_000  # 60 Hz / frame skip 4 * 3600 s


class MemoryPlanError(ValueError):
    pass


@dataclass(frozen=True)
class ShardPlan:
    game: str
    index: int
    steps: int
    bytes: int  # the ring
    slot_bytes: int = 0  # batch slots lent to learners

    @property
    def memory(self) -> int:
        return self.bytes + self.slot_bytes


@dataclass(frozen=True)
class MemoryPlan:
    games: dict[str, int]  # game -> action count
    steps_per_game: int
    shards_per_game: int
    slot_bytes: int = 0  # per shard

    @property
    def shards(self) -> list[ShardPlan]:
        out = []
        for game, actions in self.games.items():
            for index in range(self.shards_per_game):
                steps = self.shard_steps(index)
                out.append(ShardPlan(game, index, steps, steps * bytes_per_step(actions) + FRAME_BYTES,
                                     self.slot_bytes))
        return out

    def shard_steps(self, index: int) -> int:
        base, extra = divmod(self.steps_per_game, self.shards_per_game)
        return base + (index < extra)

    def game_bytes(self, game: str) -> int:
        return sum(s.memory for s in self.shards if s.game == game)

    @property
    def total_bytes(self) -> int:
        return sum(s.memory for s in self.shards)

    def table(self, available: float | None = None, title: str = "memory plan") -> str:
        lines = [f"{title}: {len(self.games)} game(s) x {self.shards_per_game} shard(s), "
                 f"{self.steps_per_game:,} steps per game"]
        for game, actions in self.games.items():
            steps = self.shard_steps(0)
            lines.append(f"  {game}: {bytes_per_step(actions):,} bytes/step ({FRAME_BYTES:,} frame + {4 * actions} Q "
                         f"+ {bytes_per_step(actions) - FRAME_BYTES - 4 * actions} metadata); "
                         f"{steps:,} steps = {steps * bytes_per_step(actions) / GIB:.2f} GiB per shard"
                         + (f" + {self.slot_bytes / 2**20:.0f} MiB batch slots" if self.slot_bytes else "") + "; "
                         f"{self.game_bytes(game) / GIB:.2f} GiB per game")
        free = f"; {_reporter()} reports {available / GIB:.2f} GiB free" if available is not None else ""
        lines.append(f"  total {self.total_bytes / GIB:.2f} GiB{free}")
        return "\n".join(lines)

    def check(self, available: float, largest_node: float) -> None:
        """Refuses a plan the cluster cannot hold; the message names the flag to change."""
        total, biggest = self.total_bytes, max(s.memory for s in self.shards)
        if total > available:
            raise MemoryPlanError(
                f"replay needs {total / GIB:.2f} GiB ({len(self.games)} game(s) x {self.steps_per_game:,} steps) "
                f"but {_reporter()} reports {available / GIB:.2f} GiB free; lower --capacity-hours "
                f"(at most {self.max_hours(available):.2f} fits)" + ("" if handles.is_local() else " or add nodes"))
        if biggest > largest_node:
            raise MemoryPlanError(
                f"one replay shard needs {biggest / GIB:.2f} GiB but the largest node has {largest_node / GIB:.2f} GiB;"
                f" raise --replay-shards to split it (or lower --capacity-hours)")

    def max_hours(self, available: float) -> float:
        per_step = sum(bytes_per_step(a) for a in self.games.values())
        slots = self.slot_bytes * self.shards_per_game * len(self.games)
        return max(0.0, available - slots) / per_step / STEPS_PER_HOUR

    def as_dict(self, available: float | None = None) -> dict:
        return {
            "steps_per_game": self.steps_per_game, "shards_per_game": self.shards_per_game,
            "bytes_per_step": {g: bytes_per_step(a) for g, a in self.games.items()},
            "shards": [s.__dict__ for s in self.shards], "total_bytes": self.total_bytes,
            "ray_free_bytes": available,
        }


def _reporter() -> str:
    return "this machine" if handles.is_local() else "Ray"


def local_memory() -> tuple[float, float]:
    """(memory free now, this machine's memory): what the local runner's one process may use."""
    import os

    page = os.sysconf("SC_PAGE_SIZE")
    free = float(os.sysconf("SC_AVPHYS_PAGES") * page)
    try:  # what can be had without swapping (the page cache gives way), where Linux says
        with open("/proc/meminfo") as meminfo:
            free = next(float(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    return free, float(os.sysconf("SC_PHYS_PAGES") * page)
