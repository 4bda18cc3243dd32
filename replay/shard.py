"""A replay shard: one game's frame ring behind a Ray actor's narrow interface.

Actors call `insert` with encoded chunks; learners call `sample`. The shard decodes,
checks the chunk belongs to its game, and copies it into its ring, so no Ray object stays
pinned by the replay (RLlib's Ape-X runs filled the object store that way). Ray runs it
as a threaded actor: a call the rate limiter holds back waits on a condition while the
other side's calls get in, and `close` releases every waiter at the end of a run.

Sharding: actor i streams to shard `shard_for_actor(i, K)` only, so a stream's frames
stay in one ring and every stack can be rebuilt; the learner picks a shard with
probability proportional to what it holds (`pick_shard`), which keeps sampling uniform
over every step stored for the game.

A learner's stream numbers its batches, and the shard draws batch n from a stream of random
numbers of its own, keyed by (shard seed, stream seed, n): the shard's threads serve the requests in
flight in whatever order they arrive, and with one shared generator each request would get other
indices on every run. Keyed, a batch depends on the ring's contents alone, so a run whose replay is
filled before training starts (a dataset that fits) draws the same batches every time.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from atari_distill.replay.batch_slots import SlotPool, stack_layout
from atari_distill.replay.chunk import ChunkError, decode
from atari_distill.replay.frame_ring import FrameRing
from atari_distill.replay.rate_limiter import RateLimit, SampleToInsertRatio
from atari_distill.runners import handles


def shard_for_actor(actor_id: int, num_shards: int) -> int:
    return actor_id % num_shards


def split_budget(steps: int, num_actors: int, num_shards: int) -> list[int]:
    """Each shard's share of a step budget, in proportion to the actors that feed it."""
    feeding = [sum(shard_for_actor(i, num_shards) == k for i in range(num_actors)) for k in range(num_shards)]
    return [steps * n // num_actors for n in feeding]


def pick_shard(sizes: np.ndarray, rng: np.random.Generator) -> int:
    """P(shard) = size / total, so P(step) = 1 / total for every stored step."""
    total = sizes.sum()
    if total <= 0:
        return int(rng.integers(len(sizes)))
    return int(rng.choice(len(sizes), p=sizes / total))


PACKED_BYTES = 1 << 16  # arrays up to this size travel stacked; larger ones (frames not in a slot) as they are


def pack_batches(batches: list[dict]) -> dict:
    """One array per key for a request's small arrays (Q vectors, actions, returns...): Ray serializes
    each array on its own, and 16 batches of 6 cost 3x what 6 stacked ones do."""
    first = batches[0]
    keys = [k for k, v in first.items() if isinstance(v, np.ndarray) and v.nbytes <= PACKED_BYTES
            and all(k in b for b in batches)]
    return {"stacked": {k: np.stack([b.pop(k) for b in batches]) for k in keys}, "rest": batches}


def unpack_batches(reply: dict) -> list[dict]:
    """The batches pack_batches packed, each array a view of the stacked one."""
    return [{**{k: v[i] for k, v in reply["stacked"].items()}, **rest} for i, rest in enumerate(reply["rest"])]


class ReplayShard:
    def __init__(self, game: str, num_actions: int, capacity: int, seed: int = 0,
                 limiter: SampleToInsertRatio | None = None, insert_budget: int | None = None,
                 slot_bytes: int | None = None):
        """`insert_budget`: the most steps this shard takes (a DQN run's --frames share); the chunk
        that would pass it closes the shard instead, so the budget is an upper bound however many
        actors insert at once. `slot_bytes`: the most shared memory it lends its learners (the
        memory plan's; SlotPool's default without one)."""
        self.game = game
        self.insert_budget = insert_budget
        self.budget_spent = insert_budget == 0  # no actor feeds it
        self.ring = FrameRing(capacity, num_actions)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.keyed = np.random.Generator(np.random.Philox(seed))
        self.limiter = limiter or SampleToInsertRatio(ratio=0.0, min_size=1, error_buffer=0.0)
        self.changed = threading.Condition()
        self.closed = False
        self.rejected = 0
        self.dropped = 0
        self.waits = {"insert_s": 0.0, "sample_s": 0.0}
        self.version_changes: list[tuple[int, int, int]] = []  # (actor, chunk index, teacher version)
        self._last_version: dict[int, int] = {}
        self.stream_restarts = 0  # a known actor starting over at chunk 0: Ray restarted it
        self.replayed_steps = 0  # inserted again by a dataset's later pass
        self.student_steps = 0  # steps whose action the student chose (--behaviour student|mixed)
        self.slots = SlotPool() if slot_bytes is None else SlotPool(slot_bytes)
        self.slot_batches = 0
        self._node_id = None

    def _wait(self, ready, side: str) -> None:
        started = time.perf_counter()
        while not self.closed and not ready():
            self.changed.wait(timeout=1.0)
        self.waits[side] += time.perf_counter() - started

    def insert(self, message: bytes, replayed: bool = False) -> int:
        """Copies a chunk in once the rate limiter allows; a closed shard drops it. `replayed`: a dataset's
        later pass, whose steps were labelled once (not again) and whose streams start over by design (no
        actor was restarted)."""
        try:
            chunk = decode(message)
            if chunk.game != self.game:
                raise ChunkError(f"chunk is for game {chunk.game!r}, this shard holds {self.game!r}")
            if chunk.num_actions != self.ring.num_actions:
                raise ChunkError(f"chunk has {chunk.num_actions} actions, this replay holds {self.ring.num_actions}")
        except ChunkError:
            with self.changed:
                self.rejected += 1
            raise
        steps = chunk.steps * chunk.envs
        with self.changed:
            self._wait(lambda: self.limiter.can_insert(steps, self.ring.size), "insert_s")
            if not self.closed and self.insert_budget is not None and \
                    self.limiter.inserted + steps > self.insert_budget:
                self.closed = self.budget_spent = True
                self.changed.notify_all()
            if self.closed:
                self.dropped += steps
                return self.ring.size
            if chunk.chunk_index == 0 and chunk.actor_id in self._last_version and not replayed:
                self.stream_restarts += 1
                self._last_version.pop(chunk.actor_id)
            self.ring.insert(chunk)
            self.limiter.inserted += steps
            self.replayed_steps += steps if replayed else 0
            self.student_steps += chunk.student_steps
            if self._last_version.get(chunk.actor_id) != chunk.teacher_version:
                self._last_version[chunk.actor_id] = chunk.teacher_version
                self.version_changes.append((chunk.actor_id, chunk.chunk_index, chunk.teacher_version))
            self.changed.notify_all()
            return self.ring.size

    def node_id(self) -> str | None:
        if self._node_id is None:
            self._node_id = handles.node_id()
        return self._node_id

    def _generator(self, key: tuple[int, int] | None) -> np.random.Generator:
        """Batch `key` = (stream seed, batch number)'s own random numbers, or without a key the shard's.
        Philox is counter-based: keyed by (shard seed, stream seed), with the batch number in the
        counter's second word (a batch's draws advance the first), every batch of a stream has numbers of
        its own, and setting one costs a microsecond where a new generator cost a tenth of sampling at
        batch 32. One generator for the shard, so only under the lock. A sweep's students share the run's
        seed, so from a recording they draw the same batches in the same order: common random numbers,
        which leave the preset and the loss as the only differences between them."""
        if key is None:
            return self.rng
        self.keyed.bit_generator.state = {
            "bit_generator": "Philox", "buffer": np.zeros(4, np.uint64), "buffer_pos": 4, "has_uint32": 0,
            "uinteger": 0, "state": {"counter": np.array([0, key[1], 0, 0], np.uint64),
                                     "key": np.array([self.seed, key[0]], np.uint64)}}
        return self.keyed

    def _draw(self, batch_size: int, draw, stacks: tuple[str, ...], node: str | None, release, key) -> dict:
        """A batch; its stacks of frames go into a shared slot (replay/batch_slots.py) when the
        learner asking is on this node (`node`) and a slot is free, else through Ray."""
        with self.changed:
            self.slots.release(release)
            self._wait(lambda: self.limiter.can_sample(batch_size, self.ring.size), "sample_s")
            slot = None
            if node and node == self.node_id():
                placed, size = stack_layout(batch_size, stacks)
                slot = self.slots.acquire(size)
            batch = draw(self._generator(key), slot.arrays(placed) if slot else None)
            if slot is not None:
                for name in stacks:
                    del batch[name]  # it is in the slot
                batch["slot"] = self.slots.describe(slot, placed)
                self.slot_batches += 1
            self.limiter.sampled += batch_size
            self.changed.notify_all()
            batch["shard_size"] = np.int64(self.ring.size)
            return batch

    def sample(self, batch_size: int, node: str | None = None, release=(), key: tuple[int, int] | None = None) -> dict:
        """Observations and teacher Q vectors, for distillation. `node`: the learner's, for a shared
        slot; `release`: tokens of the slots its finished batches used; `key`: (stream seed, batch
        number), which alone decides the indices drawn (without it, the shard's own generator)."""
        return self._draw(batch_size, lambda rng, out: self.ring.sample(batch_size, rng, out=out), ("obs",),
                          node, release, key)

    def sample_transitions(self, batch_size: int, n: int, gamma: float, node: str | None = None,
                           release=(), key: tuple[int, int] | None = None) -> dict:
        """n-step transitions, for a DQN learner."""
        return self._draw(batch_size, lambda rng, out: self.ring.sample_transitions(batch_size, n, gamma, rng,
                                                                                      out=out),
                          ("obs", "next_obs"), node, release, key)

    def release(self, tokens) -> None:
        """Slots a learner gives back without asking for more (it is ending)."""
        with self.changed:
            self.slots.release(tokens)

    def sample_batches(self, method: str, batch_size: int, count: int, node: str | None = None, release=(),
                       key: tuple[int, int] | None = None, **kwargs) -> dict:
        """`count` batches of `method` (sample, sample_transitions) in one call, so the call's own cost
        (a Ray task each way) is paid once for all of them; packed (see pack_batches). `key`: the
        first batch's (stream seed, batch number); the others follow it in number."""
        draw = {"sample": self.sample, "sample_transitions": self.sample_transitions}[method]
        return pack_batches([draw(batch_size, node=node, release=release if i == 0 else (),
                                  key=None if key is None else (key[0], key[1] + i), **kwargs)
                             for i in range(count)])

    def close(self) -> None:
        """No more inserts: later chunks are dropped and sampling no longer waits for data."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def stop(self) -> None:
        """Killed on the local runner (which cannot end a thread from outside): a learner waiting on a
        sample is answered at once rather than when the run's threads are given up on."""
        self.close()

    def size(self) -> int:
        return self.ring.size

    def stats(self) -> dict:
        with self.changed:
            return {
                "game": self.game, "size": self.ring.size, "capacity": self.ring.capacity,
                "inserted": self.ring.inserted, "sampled": self.limiter.sampled, "rejected": self.rejected,
                "dropped": self.dropped, "stream_restarts": self.stream_restarts, "limiter": self.limiter.state(),
                "replayed_steps": self.replayed_steps,
                "student_steps": self.student_steps,
                "budget_spent": self.budget_spent, **self.waits, "slot_batches": self.slot_batches,
                "slot_bytes": self.slots.bytes_held(),
                "teacher_versions": [list(change) for change in self.version_changes],
            }

    def resident_bytes(self) -> int:
        """This process's resident memory, for the benchmark's measured bytes per step."""
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found in /proc/self/status")


def launch_shards(game: str, num_actions: int, shard_steps: list[int], rate: RateLimit, concurrency: int,
                  seed: int = 0, memory: list[int] | None = None, placement: list[dict] | None = None,
                  insert_budget: list[int] | None = None, slot_bytes: int | None = None) -> list:
    """Starts one threaded Ray actor per shard, each reserving the memory its ring will fill.

    A shard Ray restarts (its node left) comes back empty and refills; the calls in flight to it
    are retried. `insert_budget`: each shard's most steps, `slot_bytes` its batch slots (see ReplayShard)."""
    shards = []
    for index, steps in enumerate(shard_steps):
        # hundreds of calls a second: no Ray task events (cluster/runtime.py::NO_TASK_EVENTS, a layer up)
        options = {"num_cpus": 0, "max_concurrency": concurrency, "max_restarts": -1, "max_task_retries": -1,
                   "enable_task_events": False,
                   **(placement[index] if placement else {})}
        if memory is not None:
            options["memory"] = memory[index]
        budget = None if insert_budget is None else insert_budget[index]
        shards.append(handles.remote(ReplayShard, **options).remote(
            game, num_actions, steps, seed + index, rate.for_shard(len(shard_steps), steps), budget, slot_bytes))
    return shards


SHARD_ANSWER_S = 30.0
UNAVAILABLE = "a replay shard did not answer (its node left the cluster)"


def stats_if_answered(shards: list, timeout_s: float = SHARD_ANSWER_S) -> list[dict] | None:
    """Every shard's stats, or None when one does not answer in time: a wind-down reports what it can
    rather than wait for ever on a shard lost with its node."""
    try:
        return handles.get([shard.stats.remote() for shard in shards], timeout=timeout_s)
    except (handles.AnswerTimeout, handles.ActorLost):
        return None


class ReplayLost(RuntimeError):
    pass


class ShardWatch:
    """Says when a replay shard has not answered for `lost_after_s`: its node left the cluster and
    Ray could not place it again, so learners that sample it would otherwise wait out their batch
    timeout and fail. Each `check` is cheap: it looks at one small call per shard, sent earlier."""

    def __init__(self, shards: dict[str, list], lost_after_s: float):
        self.shards, self.lost_after_s = shards, lost_after_s
        self.asked: dict[tuple[str, int], tuple] = {}  # (game, index) -> (call, when it was sent)

    def check(self) -> None:
        """Raises ReplayLost naming the first shard silent for `lost_after_s`."""
        now = time.monotonic()
        for game, game_shards in self.shards.items():
            for index, shard in enumerate(game_shards):
                call, sent = self.asked.get((game, index), (None, now))
                if call is not None:
                    answered, _ = handles.wait([call], timeout=0)
                    if not answered:
                        if now - sent > self.lost_after_s:
                            raise ReplayLost(f"replay shard {game}/{index} could not be placed again within "
                                             f"{self.lost_after_s:.0f} s: its node left the cluster and no live "
                                             f"node has room for it")
                        continue
                self.asked[(game, index)] = (shard.size.remote(), now)


def replay_totals(stats: list[dict]) -> dict:
    """Every shard's stats (from `ReplayShard.stats`) summed into one replay's."""
    inserted, sampled = sum(s["limiter"]["inserted"] for s in stats), sum(s["sampled"] for s in stats)
    replayed = sum(s.get("replayed_steps", 0) for s in stats)
    return {
        "replay_size": sum(s["size"] for s in stats), "shard_sizes": [s["size"] for s in stats],
        "labelled_steps": inserted - replayed, "replayed_steps": replayed, "sampled_steps": sampled,
        "observed_replay_ratio": sampled / inserted if inserted else None,
        "insert_wait_s": sum(s["insert_s"] for s in stats), "sample_wait_s": sum(s["sample_s"] for s in stats),
        "rejected_chunks": sum(s["rejected"] for s in stats), "dropped_steps": sum(s["dropped"] for s in stats),
        "stream_restarts": sum(s["stream_restarts"] for s in stats),
        "student_acted_steps": sum(s.get("student_steps", 0) for s in stats),
    }
