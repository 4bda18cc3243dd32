import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from atari_distill.replay.chunk import encode
from atari_distill.replay.rate_limiter import SampleToInsertRatio
from atari_distill.replay.shard import ReplayShard
from tests.test_chunk import make_chunk


def test_sampling_waits_for_min_size_then_for_inserts():
    limiter = SampleToInsertRatio.for_shard(ratio=2.0, min_size=100, insert_steps=10, batch_size=8)
    assert not limiter.can_sample(8, size=99)
    limiter.inserted = 100
    budget = 0
    while limiter.can_sample(8, size=100):
        limiter.sampled += 8
        budget += 8
    assert budget <= limiter.error_buffer  # ran ahead by at most the band's slack
    limiter.inserted += 10
    assert limiter.can_sample(8, size=110)  # 10 inserted steps buy 20 samples


def test_inserting_waits_for_samples_once_ahead():
    limiter = SampleToInsertRatio.for_shard(ratio=2.0, min_size=100, insert_steps=10, batch_size=8)
    while limiter.can_insert(10, size=limiter.inserted):
        limiter.inserted += 10
    assert limiter.inserted > 100
    blocked_at = limiter.inserted
    limiter.sampled += 20
    assert limiter.can_insert(10, size=blocked_at)


def test_ratio_zero_never_holds_anything_back():
    limiter = SampleToInsertRatio(ratio=0.0, min_size=5, error_buffer=0.0)
    assert limiter.can_insert(10**9, size=10**9)
    assert not limiter.can_sample(1, size=4)
    limiter.sampled = 10**12
    assert limiter.can_sample(10**6, size=5)


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.floats(0.05, 50.0),
    min_size=st.integers(1, 5000),
    insert_steps=st.integers(1, 2048),
    batch=st.integers(1, 512),
    plan=st.lists(st.booleans(), min_size=1, max_size=400),
)
def test_one_side_can_always_proceed_and_the_ratio_holds(ratio, min_size, insert_steps, batch, plan):
    """The band is wide enough that the two sides never block each other, and stays held."""
    limiter = SampleToInsertRatio.for_shard(ratio, min_size, insert_steps, batch)
    for prefer_insert in plan:
        can_insert = limiter.can_insert(insert_steps, limiter.inserted)
        can_sample = limiter.can_sample(batch, limiter.inserted)
        assert can_insert or can_sample, limiter
        if can_insert and (prefer_insert or not can_sample):
            limiter.inserted += insert_steps
        else:
            limiter.sampled += batch
        if limiter.inserted >= min_size:
            target = (limiter.inserted - min_size) * ratio
            assert abs(limiter.sampled - target) <= limiter.error_buffer + insert_steps * ratio + batch


def test_shard_holds_the_ratio_between_real_threads():
    """A fast inserter and a fast sampler on one shard: the sampler gets ratio x what was inserted."""
    chunk = make_chunk(steps=16, envs=2)
    message = encode(chunk)
    ratio, batch = 3.0, 8
    limiter = SampleToInsertRatio.for_shard(ratio, min_size=64, insert_steps=32, batch_size=batch)
    shard = ReplayShard("pong", 6, capacity=4096, limiter=limiter)
    stop = threading.Event()

    def insert_forever():
        index = 0
        while not stop.is_set():
            data = encode(make_chunk(steps=16, envs=2, seed=index)) if index < 4 else message
            shard.insert(data)
            index += 1

    inserter = threading.Thread(target=insert_forever)
    inserter.start()
    for _ in range(600):
        shard.sample(batch)
    stop.set()
    shard.close()
    inserter.join(timeout=30)
    assert not inserter.is_alive()
    stats = shard.stats()
    inserted = stats["limiter"]["inserted"]
    assert stats["sampled"] == 600 * batch
    expected = (inserted - 64) * ratio
    assert abs(stats["sampled"] - expected) <= limiter.error_buffer + 32 * ratio + batch
