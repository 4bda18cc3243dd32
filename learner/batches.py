"""Batches from replay shards, asked for ahead of the updates that will train on them.

Both learners (distillation and DQN) train from this stream: while one batch trains the
next few are already on their way, and the time still spent waiting is measured. A game
is drawn by the schedule, a shard in proportion to how much it holds, which keeps sampling
uniform over every step stored for the game. The stream numbers the batches it asks for and a
shard draws each from its number (replay/shard.py), so the batches do not depend on the order in
which the shard's threads serve the requests in flight.

A shard on the learner's node hands its batches' frames over in shared memory slots
(replay/batch_slots.py); the stream gives each slot back with its next request to that shard,
once the update that read it is over (the next call to `next`). Where a slot cannot be mapped,
the stream falls back to batches through Ray for good.
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np

from atari_distill.learner.schedule import GameSchedule
from atari_distill.replay.batch_slots import SlotReader, slot_bytes
from atari_distill.replay.shard import pick_shard, unpack_batches
from atari_distill.runners import handles


PER_CALL = 4  # batches one request brings back from a single game's shard: a call's own cost is paid once
# At small batches a request's own cost, not its bytes, sets a stream's rate (batch 32 on 2 cores: 1,393
# batches/s at 1 a request, 2,858 at 4, 3,901 at 8, against a gather ceiling of 17,950), and a GPU learner
# takes 2,148 a second: a request carries at least this many samples, up to MAX_PER_CALL batches.
SAMPLES_PER_CALL = 512
MAX_PER_CALL = 16


def request_shape(prefetch: int, batch_size: int, per_call: int | None = None) -> tuple[int, int]:
    """(requests in flight, batches per request): `prefetch` batches ahead, PER_CALL a request, or more
    at small batches (at least SAMPLES_PER_CALL samples: 16 batches of 32); with several per request,
    at least two requests, so one is always on its way."""
    if per_call is None:
        per_call = max(PER_CALL, min(MAX_PER_CALL, SAMPLES_PER_CALL // batch_size))
    return (prefetch if per_call == 1 else max(2, -(-prefetch // per_call))), per_call


def per_call_within(samples: float, prefetch: int, batch_size: int) -> int:
    """The most batches a request may carry (request_shape's default at most) with the stream's
    look-ahead, `calls * per_call` batches, within `samples`; at least 1."""
    per_call = request_shape(prefetch, batch_size)[1]
    while per_call > 1 and math.prod(request_shape(prefetch, batch_size, per_call)) * batch_size > samples:
        per_call -= 1
    return per_call


def slots_lent(prefetch: int, batch_size: int, per_call: int | None = None) -> int:
    """The most slots one stream holds from one shard when that shard serves a request: what the
    stream looks ahead, one request more, and two on their way back. A stream gives a shard's slots
    back with its next request to that shard, before the shard lends it more, and asks a game for more
    only while what it holds of that game falls short of what the schedule will draw from it, so
    however many games or shards it draws from, each shard's share stays within this."""
    calls, per_call = request_shape(prefetch, batch_size, per_call)
    return (calls + 1) * per_call + 2


def shard_slot_bytes(batch_size: int, prefetch: int, streams: int = 1, stacks: int = 1,
                     per_call: int | None = None) -> int:
    """The shared memory a shard lends to `streams` learners at most: what the memory plan reserves,
    and the shard's cap (past it, batches go through the object store)."""
    return streams * slots_lent(prefetch, batch_size, per_call) * slot_bytes(batch_size, stacks)


class BatchStream:
    def __init__(self, shards: dict[str, list], batch_size: int, prefetch: int, schedule: GameSchedule,
                 seed: int = 0, timeout_s: float = 600.0, method: str = "sample", shared: bool = True,
                 per_call: int | None = None, first_batch: int = 0, **method_kwargs):
        """`prefetch`: batches requested ahead; `per_call`: batches per request (see request_shape);
        `first_batch`: the number of the first batch asked for (a resumed learner's update count, so it
        does not draw its first batches again).

        The stream draws the schedule `calls * per_call` games ahead and keeps, for each game, at
        least as many batches fetched or on their way as those games hold of it, asking a game's shard
        for `per_call` more whenever it falls short: batches come out in the schedule's order, and a
        request of several batches still serves a multi-task schedule that alternates games."""
        self.shards, self.batch_size = shards, batch_size
        self.calls, self.per_call = request_shape(prefetch, batch_size, per_call)
        self.schedule, self.timeout_s = schedule, timeout_s
        self.method, self.method_kwargs = method, method_kwargs
        self.shard_sizes = {game: np.ones(len(game_shards)) for game, game_shards in shards.items()}
        self.seed, self.numbered = seed, first_batch  # numbered: the next batch's number
        self.rng = np.random.default_rng(seed)
        self.upcoming: collections.deque = collections.deque()  # the schedule's next games, in order
        self.wanted = collections.Counter()  # game -> how many times it is in `upcoming`
        self.coming = collections.Counter()  # game -> batches fetched or asked for, not yet handed out
        self.pending: collections.deque = collections.deque()  # (game, shard index, first number, ref), oldest first
        self.ready = collections.defaultdict(collections.deque)  # game -> (shard index, number, batch) fetched, unused
        self.shared, self.node = shared, None
        self.readers = collections.defaultdict(SlotReader)  # (game, shard index) -> its slots, mapped
        self.to_release = collections.defaultdict(list)  # (game, shard index) -> tokens of slots done with
        self.held = None  # (game, shard index, token): the slot of the batch handed out last
        self.slot_batches = self.object_store_batches = 0  # batches read in place, and through Ray

    def _call(self, game: str, index: int, count: int, first: int):
        kwargs = dict(self.method_kwargs, key=(self.seed, first))
        if self.shared:
            if self.node is None:
                self.node = handles.node_id()
            kwargs["node"] = self.node
        if self.to_release.get((game, index)):
            kwargs["release"] = self.to_release.pop((game, index))
        return self.shards[game][index].sample_batches.remote(self.method, self.batch_size, count, **kwargs)

    def _look_ahead(self) -> None:
        """Draws the schedule up to `calls * per_call` games ahead and asks for what they lack."""
        while len(self.upcoming) < self.calls * self.per_call:
            game = self.schedule.next()
            self.upcoming.append(game)
            self.wanted[game] += 1
            if self.coming[game] < self.wanted[game]:
                index = pick_shard(self.shard_sizes[game], self.rng)
                first, self.numbered = self.numbered, self.numbered + self.per_call
                self.pending.append((game, index, first, self._call(game, index, self.per_call, first)))
                self.coming[game] += self.per_call

    def _open(self, game: str, index: int, number: int, batch: dict) -> dict:
        """The batch with its frames read in place from the shard's slot, or, where the slot cannot be
        mapped, fetched again through Ray (and the stream stops asking for slots)."""
        while "slot" in batch:
            described = batch.pop("slot")
            try:
                if self.shared:
                    batch.update(self.readers[(game, index)].arrays(described))
                    self.held = (game, index, described["token"])
                    self.slot_batches += 1
                    return batch
            except OSError:
                self.shared = False
            self.to_release[(game, index)].append(described["token"])
            batch = unpack_batches(handles.get(self._call(game, index, 1, number), timeout=self.timeout_s))[0]
        self.object_store_batches += 1
        return batch

    def wait_for_replay(self, min_replay: int, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            sizes = {g: np.array(handles.get([s.size.remote() for s in h]), float) for g, h in self.shards.items()}
            if all(s.sum() >= min_replay for s in sizes.values()):
                self.shard_sizes = sizes
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay holds {dict((g, int(s.sum())) for g, s in sizes.items())} steps after "
                                   f"{timeout_s:.0f}s, below min_replay={min_replay}; are the actors running?")
            time.sleep(0.2)

    def _fetch(self, game: str) -> float:
        """Waits for the oldest request for `game`; returns the seconds waited."""
        at = next(i for i, (asked, *_) in enumerate(self.pending) if asked == game)
        _, index, first, ref = self.pending[at]
        del self.pending[at]
        before = time.perf_counter()
        try:
            batches = unpack_batches(handles.get(ref, timeout=self.timeout_s))
        except handles.AnswerTimeout:
            raise TimeoutError(f"no batch from {game} replay shard {index} in {self.timeout_s:.0f}s; "
                               f"are its actors alive?") from None
        self.ready[game].extend((index, first + i, batch) for i, batch in enumerate(batches))
        return time.perf_counter() - before

    def next(self) -> tuple[str, dict, float]:
        """(game, batch, seconds waited for it)."""
        if self.held is not None:  # the update that read it is over
            game, index, token = self.held
            self.to_release[(game, index)].append(token)
            self.held = None
        self._look_ahead()
        game = self.upcoming.popleft()
        self.wanted[game] -= 1
        self.coming[game] -= 1
        waited = 0.0 if self.ready[game] else self._fetch(game)
        index, number, batch = self.ready[game].popleft()
        batch = self._open(game, index, number, batch)
        self.shard_sizes[game][index] = float(batch["shard_size"])
        return game, batch, waited

    def close(self) -> None:
        """Gives back every slot this stream holds or has asked for, so the shards can lend them again."""
        tokens = collections.defaultdict(list, self.to_release)
        if self.held is not None:
            tokens[self.held[:2]].append(self.held[2])
        fetched = [(game, index, batch) for game, batches in self.ready.items() for index, _, batch in batches]
        for game, index, _, ref in self.pending:
            try:
                fetched += [(game, index, batch) for batch in unpack_batches(handles.get(ref, timeout=self.timeout_s))]
            except (handles.ActorLost, handles.AnswerTimeout):
                continue  # the shard is gone, and its slots with it
        for game, index, batch in fetched:
            if "slot" in batch:
                tokens[(game, index)].append(batch["slot"]["token"])
        for (game, index), given in tokens.items():
            self.shards[game][index].release.remote(given)
        self.pending.clear()
        self.ready.clear()
        self.to_release.clear()
        self.held = None

    def replay_size(self) -> dict[str, int]:
        return {g: int(s.sum()) for g, s in self.shard_sizes.items()}
