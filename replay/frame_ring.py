"""A replay ring that stores each frame once and rebuilds 4-frame stacks at sample time.

Invariant: for every step the ring can sample, the stack it returns is bit-for-bit the
observation the teacher labelled. The environment emits [0, 0, 0, f] at an episode's first
step and otherwise shifts in one frame per step, so the stack of step s is its own frame
preceded by up to three predecessors of the same environment stream, with zeros in place
of every frame from before the episode's first step.

Each slot stores its step's global sequence number `seq`, its predecessor's `prev` and its
successor's `next` (-1 when unknown); `next` lets a DQN learner walk n steps forward, and a chunk
sets it on its stream's previous step only while that step's slot still holds it. A predecessor
is usable only while its slot still holds that sequence number, so overwriting a slot silently
retires the few steps that needed it; such steps, and steps whose stream history never
arrived (an actor's chunk lost in transit), are never sampled. Sampling is uniform over every
sampleable step.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from atari_distill.replay.chunk import FRAME_SHAPE, Chunk

STACK = 4
_FIRST, _TERMINATED, _TRUNCATED = 1, 2, 4
FRAME_BYTES = FRAME_SHAPE[0] * FRAME_SHAPE[1]
# seq (8) + prev (8) + next (8) + rewards (4) + teacher_version (4) + actions (1) + flags (1)
METADATA_BYTES_PER_STEP = 34


# A batch's gather is split over threads (NumPy's take runs without the GIL) once it moves this many
# bytes: batch 256 (7.2 MB of stacks), not batch 32, whose thread hand-offs would cost more than they save.
GATHER_SPLIT_BYTES = 2 << 20
GATHER_THREADS = min(4, os.cpu_count() or 1)
_gather_pool: ThreadPoolExecutor | None = None


def gather(frames: np.ndarray, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """frames[rows] into `out`, in up to GATHER_THREADS parts at once when it is large: the one copy
    that sets a shard's sampling rate, so a shard serving a GPU learner is not held to one core."""
    global _gather_pool
    if out is None:
        out = np.empty((*rows.shape, *frames.shape[1:]), frames.dtype)
    parts = min(GATHER_THREADS, out.nbytes // GATHER_SPLIT_BYTES)
    if parts <= 1:
        return np.take(frames, rows, axis=0, out=out, mode="clip")  # "raise" would buffer `out`
    if _gather_pool is None:
        _gather_pool = ThreadPoolExecutor(GATHER_THREADS, thread_name_prefix="gather")
    bounds = np.linspace(0, len(rows), parts + 1).astype(int)
    for done in [_gather_pool.submit(np.take, frames, rows[a:b], 0, out[a:b], "clip")
                 for a, b in zip(bounds[:-1], bounds[1:])]:
        done.result()
    return out


def bytes_per_step(num_actions: int) -> int:
    return FRAME_BYTES + 4 * num_actions + METADATA_BYTES_PER_STEP


class FrameRing:
    def __init__(self, capacity: int, num_actions: int):
        if capacity < 1:
            raise ValueError(f"replay capacity must be at least 1 step, got {capacity}")
        self.capacity = capacity
        self.num_actions = num_actions
        # np.zeros maps untouched pages lazily: memory is committed as the ring fills.
        # One extra row stays zero: it pads stacks at episode starts inside the same gather.
        self.frames = np.zeros((capacity + 1, *FRAME_SHAPE), np.uint8)
        self.q = np.zeros((capacity, num_actions), np.float32)
        self.actions = np.zeros(capacity, np.uint8)
        self.rewards = np.zeros(capacity, np.float32)
        self.flags = np.zeros(capacity, np.uint8)
        self.teacher_version = np.zeros(capacity, np.int32)
        self.seq = np.full(capacity, -1, np.int64)
        self.prev = np.full(capacity, -1, np.int64)
        self.next = np.full(capacity, -1, np.int64)
        self.inserted = 0  # total steps ever inserted; the next step's seq
        self._streams: dict[int, tuple[int, np.ndarray]] = {}  # actor -> (chunk index, last seq per env)

    @property
    def size(self) -> int:
        return min(self.inserted, self.capacity)

    def insert(self, chunk: Chunk) -> None:
        """Copies the chunk in (no reference to its buffers is kept), one env's steps contiguous."""
        steps, envs = chunk.steps, chunk.envs
        if chunk.num_actions != self.num_actions:
            raise ValueError(f"chunk has {chunk.num_actions} actions, this replay holds {self.num_actions}")
        if steps * envs > self.capacity:
            raise ValueError(f"a chunk of {steps * envs} steps does not fit a replay of {self.capacity}")
        seqs = self.inserted + np.arange(steps * envs, dtype=np.int64).reshape(envs, steps)
        prev = np.empty_like(seqs)
        prev[:, 1:] = seqs[:, :-1]
        last = self._streams.get(chunk.actor_id)
        if last is not None and last[0] == chunk.chunk_index - 1 and len(last[1]) == envs:
            prev[:, 0] = last[1]
            held = self.seq[last[1] % self.capacity] == last[1]  # a wrapped ring gave the slot to another step
            self.next[last[1][held] % self.capacity] = seqs[held, 0]
        else:
            prev[:, 0] = -1
        following = np.full_like(seqs, -1)
        following[:, :-1] = seqs[:, 1:]
        slots = (seqs % self.capacity).ravel()
        env_major = lambda array: np.swapaxes(array, 0, 1).reshape(steps * envs, *array.shape[2:])
        self.frames[slots] = env_major(chunk.frames)
        self.q[slots] = env_major(chunk.q)
        self.actions[slots] = env_major(chunk.actions)
        self.rewards[slots] = env_major(chunk.rewards)
        self.flags[slots] = env_major(
            chunk.first * _FIRST + chunk.terminated * _TERMINATED + chunk.truncated * _TRUNCATED
        ).astype(np.uint8)
        self.teacher_version[slots] = chunk.teacher_version
        self.prev[slots] = prev.ravel()
        self.next[slots] = following.ravel()
        self.seq[slots] = seqs.ravel()
        self.inserted += steps * envs
        self._streams[chunk.actor_id] = (chunk.chunk_index, seqs[:, -1].copy())

    def _history(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of `frames` that make each slot's stack (the zero row pads) and a completeness mask.

        Reads metadata only, so incomplete draws are redrawn before a single frame is copied."""
        rows = np.full((len(slots), STACK), self.capacity, np.int64)
        rows[:, -1] = slots
        complete = np.ones(len(slots), bool)
        alive = (self.flags[slots] & _FIRST) == 0  # still inside the episode, going back
        current = slots
        for position in range(STACK - 2, -1, -1):
            want = self.prev[current]
            want_slot = np.where(want >= 0, want % self.capacity, 0)
            present = alive & (want >= 0) & (self.seq[want_slot] == want)
            complete &= ~alive | present
            rows[present, position] = want_slot[present]
            alive = present & ((self.flags[want_slot] & _FIRST) == 0)
            current = np.where(present, want_slot, current)
        return rows, complete

    def stacks(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The observations of `slots` and a mask of those whose history is complete."""
        rows, complete = self._history(slots)
        return self.frames[rows], complete

    def _gather(self, rows: np.ndarray, out: dict | None, key: str) -> np.ndarray:
        """Stacks of frames, written into `out[key]` (a shared-memory slot) when one is given."""
        return gather(self.frames, rows, None if out is None else out[key])

    def sample(self, batch_size: int, rng: np.random.Generator, max_rounds: int = 64,
               out: dict | None = None) -> dict[str, np.ndarray]:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay")
        slots = rng.integers(0, self.size, batch_size)
        rows, ok = self._history(slots)
        for _ in range(max_rounds):
            if ok.all():
                break
            redo = np.flatnonzero(~ok)
            slots[redo] = rng.integers(0, self.size, len(redo))
            rows[redo], ok[redo] = self._history(slots[redo])
        else:
            raise RuntimeError("replay holds too few steps with a complete frame history to sample")
        return {
            "obs": self._gather(rows, out, "obs"),
            "q": self.q[slots],
            "actions": self.actions[slots],
            "teacher_version": self.teacher_version[slots],
            "seq": self.seq[slots],
        }

    def _successor(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        following = self.next[slots]
        following_slot = np.where(following >= 0, following % self.capacity, 0)
        return following_slot, (following >= 0) & (self.seq[following_slot] == following)

    def _n_step(self, slots: np.ndarray, n: int, gamma: float) -> dict[str, np.ndarray]:
        """Clipped n-step returns from `slots`, metadata only.

        A walk stops at a terminal step (no bootstrap) or a truncated one (bootstrap from the
        step after it, whose stack is the episode's last observation). A slot is usable only
        if every step it walks is stored, and it is not the step in which the environment
        resets (its successor starts an episode, and the action it records was ignored)."""
        returns = np.zeros(len(slots), np.float32)
        discount = np.ones(len(slots), np.float32)
        done = np.zeros(len(slots), bool)
        bootstrap = slots.copy()
        ok = np.ones(len(slots), bool)
        walking, current = np.ones(len(slots), bool), slots
        for _ in range(n):
            flags = self.flags[current]
            returns += np.where(walking, discount * np.sign(self.rewards[current]), 0.0).astype(np.float32)
            discount = np.where(walking, discount * gamma, discount).astype(np.float32)
            terminal = walking & ((flags & _TERMINATED) > 0)
            done |= terminal
            following, present = self._successor(current)
            needs = walking & ~terminal
            ok &= ~needs | (present & ((self.flags[following] & _FIRST) == 0))
            bootstrap = np.where(needs, following, bootstrap)
            walking = needs & ((flags & _TRUNCATED) == 0)
            current = np.where(walking, following, current)
        return {"returns": returns, "discount": np.where(done, 0.0, discount).astype(np.float32),
                "bootstrap": bootstrap, "ok": ok}

    def sample_transitions(self, batch_size: int, n: int, gamma: float, rng: np.random.Generator,
                           max_rounds: int = 64, out: dict | None = None) -> dict[str, np.ndarray]:
        """Uniform n-step transitions for DQN: the target is returns + discount * max_a Q(next_obs, a); with
        the teacher's Q labels of `obs`, for a student that distils and learns from the reward at once.

        Rewards are clipped to their sign, as in the Nature DQN; `discount` is 0 after a terminal step."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay")
        slots = rng.integers(0, self.size, batch_size)
        redo = np.arange(batch_size)
        walk = {}
        for _ in range(max_rounds):
            part = self._n_step(slots[redo], n, gamma)
            rows, complete = self._history(slots[redo])
            next_rows, next_complete = self._history(part["bootstrap"])
            ok = part.pop("ok") & complete & next_complete
            for key, value in {**part, "rows": rows, "next_rows": next_rows}.items():
                if key not in walk:
                    walk[key] = np.empty((batch_size, *value.shape[1:]), value.dtype)
                walk[key][redo] = value
            redo = redo[~ok]
            if len(redo) == 0:
                break
            slots[redo] = rng.integers(0, self.size, len(redo))
        else:
            raise RuntimeError("replay holds too few steps with a complete n-step future to sample")
        return {
            "obs": self._gather(walk["rows"], out, "obs"), "next_obs": self._gather(walk["next_rows"], out, "next_obs"),
            "actions": self.actions[slots], "returns": walk["returns"], "discount": walk["discount"],
            "q": self.q[slots], "teacher_version": self.teacher_version[slots], "seq": self.seq[slots],
        }

    def nbytes(self) -> int:
        arrays = (self.frames, self.q, self.actions, self.rewards, self.flags,
                  self.teacher_version, self.seq, self.prev, self.next)
        return sum(a.nbytes for a in arrays)
