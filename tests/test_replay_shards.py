"""Sharded replay: uniform sampling across unequal shards, bit-exact stacks, hostile input, memory plan."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atari_distill.replay.chunk import Chunk, ChunkError, decode, encode
from atari_distill.replay.memory_plan import GIB, MemoryPlan, MemoryPlanError
from atari_distill.replay.shard import ReplayShard, shard_for_actor, split_budget
from tests.conftest import kill_shard
from tests.test_chunk import _mutate, make_chunk
from tests.test_frame_ring import run_actors


def episode_start_chunk(actor_id: int, index: int, steps: int, envs: int = 4) -> Chunk:
    """Every step starts an episode, so every stored step is sampleable: isolates the shard choice."""
    chunk = make_chunk(steps=steps, envs=envs, seed=actor_id * 1000 + index)
    return Chunk(**{**chunk.__dict__, "actor_id": actor_id, "chunk_index": index,
                    "first": np.ones((steps, envs), bool)})


def chi_square_limit(dof: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.09: p = 0.999)."""
    return dof * (1 - 2 / (9 * dof) + z * np.sqrt(2 / (9 * dof))) ** 3


def test_sampling_is_uniform_over_shards_of_unequal_fill(ray_runtime):
    """Drives the learner's own BatchStream against shard actors holding 100, 300 and 600 steps: its
    bookkeeping of shard sizes, not a stand-in loop, must pick shards in proportion to what they
    hold, so that every stored step is drawn equally often."""
    from atari_distill.learner.batches import BatchStream
    from atari_distill.learner.schedule import GameSchedule

    fills = [1, 3, 6]  # chunks of 100 steps
    shards = [ray_runtime.remote(ReplayShard).options(num_cpus=0, max_concurrency=2).remote("pong", 6, 1000, k)
              for k in range(3)]
    ray_runtime.get([shard.insert.remote(encode(episode_start_chunk(k, index, steps=25)))
                     for k, shard in enumerate(shards) for index in range(fills[k])])
    stream = BatchStream({"pong": shards}, 32, 2, GameSchedule({"pong": 1.0}), seed=0, timeout_s=60, per_call=1)
    stream.wait_for_replay(min_replay=1000, timeout_s=60)
    sizes = [100, 300, 600]
    picked = np.zeros(3, np.int64)  # one request, one batch, one shard pick
    counts = [np.zeros(size, np.int64) for size in sizes]
    for _ in range(400):
        _, batch, _ = stream.next()
        k = sizes.index(int(batch["shard_size"]))  # the sizes tell the shards apart
        picked[k] += 1
        np.add.at(counts[k], batch["seq"] % 1000, 1)
    stream.close()
    for shard in shards:
        ray_runtime.kill(shard)
    expected = picked.sum() * np.array(sizes) / sum(sizes)
    statistic = ((picked - expected) ** 2 / expected).sum()
    assert statistic < chi_square_limit(2), (picked, expected)
    # Within each shard, given its draws (batches of 32 from one pick are not 32 independent picks):
    statistic = sum(((c - c.mean()) ** 2 / c.mean()).sum() for c in counts)  # 12,800 draws over 1,000 steps
    assert statistic < chi_square_limit(sum(sizes) - len(sizes)), statistic


def test_stacks_are_bit_exact_across_shards_actors_and_wraparound(pong_teacher):
    specs = [(0, 3, 11), (1, 2, 23), (2, 2, 37)]
    delivered, _ = run_actors(pong_teacher, chunks_per_actor=6, specs=specs)
    num_shards, capacity = 2, 96  # chunks of 32-48 steps: each shard wraps at least twice
    shards = [ReplayShard("pong", 6, capacity=capacity, seed=k) for k in range(num_shards)]
    truth = [{} for _ in shards]
    for chunk, stacks in delivered:
        k = shard_for_actor(chunk.actor_id, num_shards)
        base = shards[k].ring.inserted
        shards[k].insert(encode(chunk))
        for env in range(chunk.envs):
            for t in range(chunk.steps):
                truth[k][base + env * chunk.steps + t] = (stacks[t, env], chunk.q[t, env])
    assert {shard_for_actor(a, num_shards) for a, _, _ in specs} == {0, 1}
    for k, shard in enumerate(shards):
        assert shard.ring.inserted >= 2 * capacity
        seen = set()
        for _ in range(40):
            batch = shard.sample(64)
            for obs, q, seq in zip(batch["obs"], batch["q"], batch["seq"]):
                true_obs, true_q = truth[k][int(seq)]
                assert np.array_equal(obs, true_obs), (k, int(seq))
                assert np.array_equal(q, true_q)
                seen.add(int(seq))
        assert len(seen) > capacity // 2  # sampling covered the ring, not a corner of it


RING_ARRAYS = ("frames", "q", "actions", "rewards", "flags", "teacher_version", "seq", "prev", "next")

REFUSED_EDITS = [  # each still msgpack, and wrong in one way the decoder or the shard must catch
    lambda m: m["header"].__setitem__("game", "breakout"),
    lambda m: m["header"].__setitem__("version", 2),
    lambda m: m["header"]["fields"]["q"].__setitem__("shape", [4, 2, 5]),
    lambda m: m["data"].__setitem__("first", b"\x02" * len(m["data"]["first"])),
    lambda m: m["data"].__setitem__("q", np.full(48, np.nan, np.float32).tobytes()),
    lambda m: m["data"].__setitem__("actions", b"\x06" * len(m["data"]["actions"])),
]


def insert_checked(shard: ReplayShard, message: bytes) -> bool:
    """Whether `message` went in. One refused raises ChunkError and leaves every ring array as it
    was; one taken is exactly the encoding of the chunk it decodes to, and lands whole in the ring."""
    ring = shard.ring
    before = {name: getattr(ring, name).copy() for name in RING_ARRAYS}
    inserted, rejected = ring.inserted, shard.rejected
    try:
        shard.insert(message)
    except ChunkError:
        for name, array in before.items():
            assert np.array_equal(getattr(ring, name), array), name
        assert ring.inserted == inserted and shard.rejected == rejected + 1
        return False
    chunk = decode(message)
    assert encode(chunk) == bytes(message), "taken, but not a well-formed chunk's encoding"
    steps = chunk.steps * chunk.envs
    newest = (inserted + np.arange(steps)) % ring.capacity
    assert ring.inserted == inserted + steps
    assert np.array_equal(ring.frames[newest], np.swapaxes(chunk.frames, 0, 1).reshape(steps, 84, 84))
    assert np.array_equal(ring.q[newest], np.swapaxes(chunk.q, 0, 1).reshape(steps, -1))
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512), st.integers(min_value=0), st.integers(min_value=0, max_value=255),
       st.integers(min_value=0, max_value=len(REFUSED_EDITS) - 1))
def test_hostile_bytes_never_touch_the_ring(prefix, position, value, edit):
    """A flipped byte may leave a valid chunk (a payload byte, an actor id), which goes in; short
    garbage, a cut message and each targeted edit never can, so each must be refused."""
    shard = ReplayShard("pong", 6, capacity=64)
    good = encode(make_chunk(steps=4, envs=2))
    assert insert_checked(shard, good)
    mutated = bytearray(good)
    mutated[position % len(mutated)] = value
    insert_checked(shard, bytes(mutated))
    for refused in (prefix, good[: position % len(good)], _mutate(good, REFUSED_EDITS[edit])):
        assert not insert_checked(shard, refused)


def test_chunk_for_another_game_is_refused_by_name():
    shard = ReplayShard("breakout", 4, capacity=64)
    with pytest.raises(ChunkError, match="'pong'"):
        shard.insert(encode(make_chunk(actions=4)))
    assert shard.stats()["rejected"] == 1 and shard.size() == 0


def test_an_insert_budget_is_an_upper_bound_met_to_within_one_chunk():
    shard = ReplayShard("pong", 6, capacity=256, insert_budget=20)  # chunks of 3 x 2 = 6 steps
    for seed in range(5):
        shard.insert(encode(make_chunk(seed=seed)))
    stats = shard.stats()
    assert stats["inserted"] == 18 and stats["budget_spent"] and stats["dropped"] == 12
    assert shard.closed, "a spent shard serves the learner's last batches without waiting for inserts"
    assert split_budget(1000, num_actors=3, num_shards=2) == [666, 333]  # in proportion to the actors feeding each
    assert sum(split_budget(999, num_actors=7, num_shards=3)) <= 999


def test_memory_plan_is_exact_and_refuses_what_cannot_fit():
    plan = MemoryPlan({"pong": 6, "breakout": 4}, steps_per_game=540_000, shards_per_game=4)
    assert [s.steps for s in plan.shards[:4]] == [135_000] * 4
    assert plan.total_bytes == 540_000 * (7_114 + 7_106) + 8 * 7_056
    plan.check(available=10 * GIB, largest_node=10 * GIB)  # 7.14 GiB fits
    with pytest.raises(MemoryPlanError, match=r"needs 7\.1\d GiB .* 4\.00 GiB free; lower --capacity-hours"):
        plan.check(available=4 * GIB, largest_node=4 * GIB)
    with pytest.raises(MemoryPlanError, match="raise --replay-shards"):
        plan.check(available=100 * GIB, largest_node=0.5 * GIB)
    ten_games = MemoryPlan({f"game{i}": 18 for i in range(10)}, steps_per_game=540_000, shards_per_game=1)
    assert 38e9 < ten_games.total_bytes < 39e9  # the "about 38 GB of frames" plus Q and metadata


def test_memory_plan_reserves_each_shards_batch_slots():
    from atari_distill.learner.batches import shard_slot_bytes

    slots = shard_slot_bytes(256, 4, streams=2)  # a sweep of two students at batch 256
    assert slots == 2 * 14 * (256 * 4 * 84 * 84 + 4096)  # two requests of 4 in flight, 4 in use, 2 going back
    plan = MemoryPlan({"pong": 6}, steps_per_game=10_000, shards_per_game=2, slot_bytes=slots)
    ring = MemoryPlan({"pong": 6}, steps_per_game=10_000, shards_per_game=2)
    assert plan.total_bytes == ring.total_bytes + 2 * slots
    assert [s.memory for s in plan.shards] == [s.bytes + slots for s in ring.shards]
    assert "MiB batch slots" in plan.table()
    with pytest.raises(MemoryPlanError, match="lower --capacity-hours"):
        plan.check(available=ring.total_bytes + slots, largest_node=10 * GIB)


def test_a_wind_down_reads_every_shards_stats_or_none_when_one_is_gone(ray_runtime):
    """A run stopping after a node left must not wait for ever on the shard it took with it."""
    import time

    from atari_distill.replay.shard import stats_if_answered

    shards = [ray_runtime.remote(ReplayShard).options(num_cpus=0).remote("pong", 6, 256, 5) for _ in range(2)]
    answered = stats_if_answered(shards)
    assert [s["capacity"] for s in answered] == [256, 256]
    kill_shard(ray_runtime, shards[1])
    started = time.monotonic()
    assert stats_if_answered(shards, timeout_s=20) is None
    assert time.monotonic() - started < 20
    ray_runtime.kill(shards[0])


def test_a_requests_batches_pack_into_one_array_per_small_key_and_unpack_as_they_were():
    from atari_distill.replay.shard import pack_batches, unpack_batches

    rng = np.random.default_rng(0)
    batches = [{"q": rng.standard_normal((32, 6)).astype(np.float32), "seq": np.arange(32) + 32 * i,
                "obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8), "shard_size": np.int64(100 + i),
                "slot": {"token": i}} for i in range(3)]
    expected = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in b.items()} for b in batches]
    packed = pack_batches(batches)
    assert set(packed["stacked"]) == {"q", "seq"}  # the frames (900 KB a batch) travel as they are
    for got, want in zip(unpack_batches(packed), expected, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert np.array_equal(got[key], value) if isinstance(value, np.ndarray) else got[key] == value
