import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atari_distill.replay.chunk import Chunk, ChunkError, decode, encode


def make_chunk(steps=3, envs=2, actions=6, seed=0) -> Chunk:
    rng = np.random.default_rng(seed)
    return Chunk(
        game="pong", actor_id=1, chunk_index=5, teacher_version=2,
        frames=rng.integers(0, 256, (steps, envs, 84, 84), dtype=np.uint8),
        q=rng.standard_normal((steps, envs, actions)).astype(np.float32),
        actions=rng.integers(0, actions, (steps, envs), dtype=np.uint8),
        rewards=rng.standard_normal((steps, envs)).astype(np.float32),
        first=rng.random((steps, envs)) < 0.3,
        terminated=rng.random((steps, envs)) < 0.1,
        truncated=np.zeros((steps, envs), bool),
    )


def test_round_trip_is_exact():
    chunk = make_chunk()
    back = decode(encode(chunk))
    assert (back.game, back.actor_id, back.chunk_index, back.teacher_version) == ("pong", 1, 5, 2)
    for name, array in chunk.arrays().items():
        assert np.array_equal(getattr(back, name), array), name
        assert getattr(back, name).dtype == array.dtype


def test_a_chunk_says_which_steps_the_student_drove_and_an_older_one_is_the_teachers():
    import dataclasses

    plain = make_chunk()
    acted = np.array([[True, False], [False, False], [True, True]])
    driven = decode(encode(dataclasses.replace(plain, student_acted=acted)))
    assert np.array_equal(driven.student_acted, acted) and driven.student_steps == 3
    back = decode(encode(plain))  # a recording made before the field: all the teacher's
    assert back.student_acted is None and back.student_steps == 0
    outer = msgpack.unpackb(encode(plain), raw=False)
    outer["data"]["learner_acted"] = outer["data"]["first"]
    outer["header"]["fields"]["learner_acted"] = outer["header"]["fields"]["first"]
    with pytest.raises(ChunkError, match="exactly the fields"):
        decode(msgpack.packb(outer, use_bin_type=True))


def _mutate(message: bytes, edit) -> bytes:
    outer = msgpack.unpackb(message, raw=False)
    edit(outer)
    return msgpack.packb(outer, use_bin_type=True)


@pytest.mark.parametrize("edit, words", [
    (lambda m: m["data"].__setitem__("q", m["data"]["q"][:-1]), "'q' must be"),
    (lambda m: m["header"]["fields"]["q"].__setitem__("dtype", "<f8"), "dtype"),
    (lambda m: m["header"].__setitem__("steps", 4), "shape"),
    (lambda m: m["header"].__setitem__("version", 99), "version"),
    (lambda m: m["header"].__setitem__("format", "other"), "format"),
    (lambda m: m["header"].__setitem__("envs", -1), "'envs'"),
    (lambda m: m["data"].pop("rewards"), "exactly the fields"),
    (lambda m: m["data"].__setitem__("first", b"\x02" * len(m["data"]["first"])), "0 and 1"),
    (lambda m: m["data"].__setitem__("actions", b"\x07" * len(m["data"]["actions"])), "out of range"),
    (lambda m: m["data"].__setitem__("q", np.full(36, np.nan, np.float32).tobytes()), "non-finite"),
])
def test_malformed_chunk_is_rejected_with_the_field_named(edit, words):
    with pytest.raises(ChunkError, match=words):
        decode(_mutate(encode(make_chunk()), edit))


def test_truncated_and_oversized_messages_are_rejected():
    message = encode(make_chunk())
    with pytest.raises(ChunkError):
        decode(message[: len(message) // 2])
    with pytest.raises(ChunkError, match="exceeds the limit"):
        decode(message, max_bytes=len(message) - 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_chunk_error(data):
    with pytest.raises(ChunkError):
        decode(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_flipped_byte_never_escapes_as_another_error(position, value):
    message = bytearray(encode(make_chunk(steps=1, envs=1)))
    message[position % len(message)] = value
    try:
        chunk = decode(bytes(message))
    except ChunkError:
        return
    assert chunk.frames.shape == (1, 1, 84, 84)  # a flip inside a payload may still be a valid chunk
