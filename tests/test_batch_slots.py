"""Batches through shared memory slots: bit-exact with the Ray path, slots given back and reused,
never a slot read that is not the shard's, and a learner that cannot map one falls back."""

import os

import numpy as np
import pytest

from atari_distill.replay.batch_slots import SlotPool, SlotReader, layout
from atari_distill.replay.chunk import Chunk, encode
from atari_distill.replay.frame_ring import STACK, FrameRing
from atari_distill.replay.shard import ReplayShard
from tests.test_chunk import make_chunk


def stream_chunks(count: int, steps: int = 16, envs: int = 4, actor_id: int = 0) -> list[Chunk]:
    """One actor's consecutive chunks: stacks reach across chunk boundaries and episode starts."""
    chunks = []
    for index in range(count):
        chunk = make_chunk(steps=steps, envs=envs, seed=actor_id * 100 + index)
        chunks.append(Chunk(**{**chunk.__dict__, "actor_id": actor_id, "chunk_index": index}))
    return chunks


def filled_ring(capacity: int = 256) -> FrameRing:
    ring = FrameRing(capacity, 6)
    for chunk in stream_chunks(6):
        ring.insert(chunk)
    return ring


@pytest.mark.parametrize("method", ["sample", "sample_transitions"])
def test_a_batch_gathered_into_a_slot_reads_back_bit_exact(method):
    ring, pool, reader = filled_ring(), SlotPool(), SlotReader()
    keys = ("obs",) if method == "sample" else ("obs", "next_obs")
    extra = {} if method == "sample" else {"n": 3, "gamma": 0.99}
    placed, size = layout({key: ((32, STACK, 84, 84), "uint8") for key in keys})
    slot = pool.acquire(size)
    plain = getattr(ring, method)(32, rng=np.random.default_rng(7), **extra)
    into = getattr(ring, method)(32, rng=np.random.default_rng(7), out=slot.arrays(placed), **extra)
    read = reader.arrays(pool.describe(slot, placed))  # mapped again, through /proc, as a learner does
    for key in keys:
        assert np.array_equal(read[key], plain[key]) and np.array_equal(into[key], plain[key])
        assert not read[key].flags.writeable
    assert all(np.array_equal(into[k], plain[k]) for k in plain if k not in keys)


def test_slots_are_reused_once_given_back_and_bounded_in_bytes():
    pool = SlotPool(max_bytes=3 * 4096)
    slots = [pool.acquire(4000) for _ in range(3)]
    assert all(slots) and pool.acquire(4000) is None  # the cap: the shard falls back to Ray
    pool.release([slots[1].token, "not-ours"])
    again = pool.acquire(4000)
    assert again is slots[1] and pool.acquire(4000) is None
    assert len({s.token for s in slots}) == 3


def test_a_slot_that_is_not_the_one_described_is_never_read():
    pool, reader = SlotPool(), SlotReader()
    placed, size = layout({"obs": ((2, STACK, 84, 84), "uint8")})
    first, second = pool.acquire(size), pool.acquire(size)
    described = pool.describe(first, placed)
    with pytest.raises(OSError, match="not the shard's"):  # the fd now holds another slot (a restarted shard)
        reader.arrays({**described, "fd": second.fd})
    with pytest.raises(OSError):  # a process that is gone (or on another node)
        reader.arrays({**described, "pid": 2 ** 22 + 17})
    assert reader.arrays(described)["obs"].shape == (2, STACK, 84, 84)


def test_the_shard_uses_a_slot_only_for_a_learner_on_its_node():
    shard = ReplayShard("pong", 6, capacity=256, seed=3)
    shard._node_id = "node-a"
    for chunk in stream_chunks(4):
        shard.insert(encode(chunk))
    elsewhere = shard.sample(8, node="node-b")
    assert "slot" not in elsewhere and elsewhere["obs"].shape == (8, STACK, 84, 84)
    here = shard.sample(8, node="node-a")
    assert "obs" not in here and here["slot"]["pid"] == os.getpid()
    shard.sample(8, node="node-a", release=[here["slot"]["token"]])
    assert shard.stats()["slot_batches"] == 2 and len(shard.slots.lent) == 1


@pytest.mark.parametrize("method", ["sample", "sample_transitions"])
def test_through_ray_the_slot_path_delivers_what_the_ray_path_does(ray_runtime, method):
    """Two shards with the same chunks and seed, one read through slots and one through Ray, give
    the same batches in the same order; the slots are given back, so a few serve the whole run."""
    from atari_distill.learner.batches import BatchStream, shard_slot_bytes
    from atari_distill.learner.schedule import GameSchedule

    extra = {} if method == "sample" else {"n": 3, "gamma": 0.99}
    shards = [ray_runtime.remote(ReplayShard).options(num_cpus=0, max_concurrency=8).remote("pong", 6, 256, 5)
              for _ in range(2)]
    for chunk in stream_chunks(6):
        ray_runtime.get([shard.insert.remote(encode(chunk)) for shard in shards])
    streams = [BatchStream({"pong": [shard]}, 32, 3, GameSchedule({"pong": 1.0}), method=method, shared=shared,
                           **extra) for shard, shared in zip(shards, (True, False))]
    keys = ("obs",) if method == "sample" else ("obs", "next_obs")
    seen = [[], []]  # a threaded shard serves the requests in flight in any order; a batch's number decides it
    for _ in range(40):
        for stream, batches in zip(streams, seen):
            _, batch, _ = stream.next()
            batches.append({key: np.array(batch[key]) for key in [*keys, "actions"]})
    for through_slots, through_ray in zip(*seen):
        for key in [*keys, "actions"]:
            assert np.array_equal(through_slots[key], through_ray[key]), key
    for _ in range(10):  # a batch's slot is not written again while the learner may still read it
        _, batch, _ = streams[0].next()
        before = np.array(batch["obs"])
        ray_runtime.get([ref for *_, ref in streams[0].pending])  # every request in flight served
        assert np.array_equal(batch["obs"], before)
    stats = ray_runtime.get([shard.stats.remote() for shard in shards])
    assert streams[0].slot_batches == 50 and stats[0]["slot_batches"] >= 50 and stats[1]["slot_batches"] == 0
    assert stats[0]["slot_bytes"] <= shard_slot_bytes(32, 3, stacks=len(keys))  # what the memory plan reserves
    streams[0].close()  # an ending learner gives back all it holds or asked for
    assert ray_runtime.get(shards[0].stats.remote())["slot_bytes"] > 0
    lent = ray_runtime.get(shards[0].__ray_call__.remote(lambda shard: len(shard.slots.lent)))
    assert lent == 0
    for shard in shards:
        ray_runtime.kill(shard)


def test_a_multi_task_stream_stays_within_the_slots_the_memory_plan_reserves(ray_runtime):
    """Ten games drawn in turn (one weighted double), each request 16 batches of one game: batches come
    out in the schedule's order, and no shard lends more than the memory plan reserves, so none falls
    back to the object store."""
    from atari_distill.learner.batches import BatchStream, shard_slot_bytes, slots_lent
    from atari_distill.learner.schedule import GameSchedule

    games = [f"game{i}" for i in range(10)]
    cap = shard_slot_bytes(32, 2)
    shards = {game: [ray_runtime.remote(ReplayShard).options(num_cpus=0, max_concurrency=8).remote(
        "pong", 6, 256, 5, slot_bytes=cap)] for game in games}
    for chunk in stream_chunks(6):
        ray_runtime.get([handles[0].insert.remote(encode(chunk)) for handles in shards.values()])
    weights = {game: 1.0 + (game == "game0") for game in games}
    stream, order = BatchStream(shards, 32, 2, GameSchedule(weights)), GameSchedule(weights)
    assert stream.per_call == 16  # several batches a request, each request from one game's shard
    most_lent = 0
    for _ in range(60):
        game, batch, _ = stream.next()
        assert game == order.next()  # in the schedule's order, however the requests group them
        lent = ray_runtime.get([h[0].__ray_call__.remote(lambda shard: len(shard.slots.lent)) for h in shards.values()])
        most_lent = max(most_lent, *lent)
    assert most_lent <= slots_lent(2, 32)
    assert stream.slot_batches == 60, "a batch went through the object store: a shard's slots ran out"
    stream.close()
    for handles in shards.values():
        ray_runtime.kill(handles[0])


def test_a_learner_that_cannot_map_a_slot_falls_back_to_ray(ray_runtime, monkeypatch):
    from atari_distill.learner.batches import BatchStream
    from atari_distill.learner.schedule import GameSchedule

    shard = ray_runtime.remote(ReplayShard).options(num_cpus=0, max_concurrency=8).remote("pong", 6, 256, 5)
    for chunk in stream_chunks(4):
        ray_runtime.get(shard.insert.remote(encode(chunk)))

    def refuse(self, described):
        raise OSError("no /proc here")

    monkeypatch.setattr(SlotReader, "arrays", refuse)
    stream = BatchStream({"pong": [shard]}, 16, 2, GameSchedule({"pong": 1.0}))
    for _ in range(5):
        _, batch, _ = stream.next()
        assert batch["obs"].shape == (16, STACK, 84, 84)
    assert not stream.shared and stream.slot_batches == 0
    ray_runtime.kill(shard)
