"""Batches handed from a shard to a learner on its node through shared memory, not the object store.

Through Ray, a batch is gathered from the ring into a new array, copied into the object store
and mapped by the learner: one 7 MB batch of 256 stacks costs the shard a gather and a copy.
Here the shard gathers straight into a slot the learner maps once, and only a small descriptor
travels through Ray; the learner hands the slot back (with its next request to that shard)
once the update that read it is done, and the shard never writes a slot it has handed out.

Each slot is an anonymous memory file (memfd): it is not in /dev/shm, so a container's small
/dev/shm cannot limit it, and the kernel frees it with the last process that maps it, so a
killed shard leaks nothing. The learner opens it through /proc/PID/fd/FD and checks a random
token in the slot's header, so it never reads another process's file by mistake (another
node, another PID namespace); a learner that cannot map a slot falls back to the Ray path.
"""

from __future__ import annotations

import mmap
import os
import secrets

import numpy as np

from atari_distill.replay.chunk import FRAME_SHAPE
from atari_distill.replay.frame_ring import STACK

HEADER = 64  # the token, then padding that keeps the arrays aligned
ALIGN = 64
PAGE = 4096


def layout(arrays: dict[str, tuple[tuple[int, ...], str]]) -> tuple[dict[str, tuple[int, tuple, str]], int]:
    """{key: (offset, shape, dtype)} for arrays laid out one after another, and the bytes they take."""
    offset, placed = HEADER, {}
    for key, (shape, dtype) in arrays.items():
        placed[key] = (offset, tuple(shape), dtype)
        offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // ALIGN) * ALIGN
    return placed, offset


def stack_layout(batch_size: int, keys: tuple[str, ...]) -> tuple[dict[str, tuple[int, tuple, str]], int]:
    """A batch's stacks of frames (`obs`, and `next_obs` for transitions) in one slot."""
    return layout({key: ((batch_size, STACK, *FRAME_SHAPE), "uint8") for key in keys})


def slot_bytes(batch_size: int, stacks: int = 1) -> int:
    """The memory one slot of a batch takes, in whole pages."""
    size = stack_layout(batch_size, ("obs", "next_obs")[:stacks])[1]
    return -(-size // PAGE) * PAGE


def views(buffer, placed: dict) -> dict[str, np.ndarray]:
    """The arrays `layout` placed in `buffer` (a slot's memory, writable for the shard, read-only for the learner)."""
    return {key: np.frombuffer(buffer, np.dtype(dtype), int(np.prod(shape)), offset).reshape(shape)
            for key, (offset, shape, dtype) in placed.items()}


class Slot:
    def __init__(self, size: int):
        size = max(size, HEADER)
        self.fd = os.memfd_create("atari-distill-batch", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            os.posix_fallocate(self.fd, 0, size)  # commit now: no memory, no slot (rather than SIGBUS later)
            self.memory = mmap.mmap(self.fd, size)
        except OSError:
            os.close(self.fd)
            raise
        self.size = size
        self.token = secrets.token_hex(8)
        self.memory[:16] = self.token.encode()

    def arrays(self, placed: dict) -> dict[str, np.ndarray]:
        return views(self.memory, placed)


class SlotPool:
    """The shard's side: slots made as needed, up to `max_bytes`; none free means the Ray path."""

    def __init__(self, max_bytes: int = 128 << 20):
        self.max_bytes = max_bytes
        self.free: list[Slot] = []
        self.lent: dict[str, Slot] = {}
        self.failed = not hasattr(os, "memfd_create")  # Linux only; elsewhere batches go through Ray

    def acquire(self, size: int) -> Slot | None:
        for i, slot in enumerate(self.free):
            if slot.size >= size:
                return self._lend(self.free.pop(i))
        if self.failed or self.bytes_held() + size > self.max_bytes:
            return None
        try:
            return self._lend(Slot(size))
        except OSError:  # no memory for it: stop trying
            self.failed = True
            return None

    def bytes_held(self) -> int:
        return sum(s.size for s in [*self.free, *self.lent.values()])

    def _lend(self, slot: Slot) -> Slot:
        self.lent[slot.token] = slot
        return slot

    def release(self, tokens) -> None:
        """Slots the learner is done with; a token from before a restart is not ours, and is ignored."""
        for token in tokens:
            slot = self.lent.pop(token, None)
            if slot is not None:
                self.free.append(slot)

    def describe(self, slot: Slot, placed: dict) -> dict:
        return {"pid": os.getpid(), "fd": slot.fd, "size": slot.size, "token": slot.token, "arrays": placed}


class SlotReader:
    """The learner's side, one per shard: maps each slot once and returns read-only views of a batch in it."""

    def __init__(self):
        self.maps: dict[str, mmap.mmap] = {}
        self.pid = None

    def arrays(self, described: dict) -> dict[str, np.ndarray]:
        """Raises OSError when the slot cannot be mapped or is not the one described."""
        if described["pid"] != self.pid:  # the shard restarted: its old slots go once no batch views them
            self.maps, self.pid = {}, described["pid"]
        memory = self.maps.get(described["token"])
        if memory is None:
            fd = os.open(f"/proc/{described['pid']}/fd/{described['fd']}", os.O_RDONLY)
            try:
                memory = mmap.mmap(fd, described["size"], prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            if memory[:16] != described["token"].encode():
                memory.close()
                raise OSError("the slot mapped is not the shard's (another node or PID namespace)")
            self.maps[described["token"]] = memory
        return views(memory, described["arrays"])
