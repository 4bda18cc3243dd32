"""The chunk: the one format in which labelled steps cross a process boundary or hit disk.

A chunk is T steps of N environments of one actor, encoded with msgpack as
{"header": {...}, "data": {field: raw little-endian bytes}}. The header names the format
version, the game, the actor, the actor's chunk counter, the teacher version, T, N and the
action count A, and every field's dtype and shape. The schema is fixed: decoding checks
each header value, each dtype and shape against the schema and each buffer's length
before any array is built, so a damaged or hostile message raises ChunkError and never
reaches a buffer.

Fields, time-major:
  frames      uint8   (T, N, 84, 84)  newest frame of the observation the teacher saw
  q           float32 (T, N, A)       the teacher's full Q vector for that observation
  actions     uint8   (T, N)          the action taken (greedy or the epsilon-random one)
  rewards     float32 (T, N)          raw, unclipped reward received after the action
  first       bool    (T, N)          the observation is an episode's first (a reset stack)
  terminated  bool    (T, N)          the episode ended after this step (or a life, for a DQN trained so)
  truncated   bool    (T, N)          the episode hit the frame cap after this step
and, only in chunks where a student may have driven (`--behaviour student|mixed`):
  student_acted bool  (T, N)          the student's policy chose the action, not the teacher's
A chunk without it (every recording before it) is all the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
import numpy as np

FORMAT = "atari-distill-chunk"
VERSION = 1
MAX_MESSAGE_BYTES = 512 * 1024 * 1024
MAX_STEPS, MAX_ENVS, MAX_ACTIONS = 65_536, 4_096, 256
FRAME_SHAPE = (84, 84)

_DTYPES = {
    "frames": np.dtype("<u1"),
    "q": np.dtype("<f4"),
    "actions": np.dtype("<u1"),
    "rewards": np.dtype("<f4"),
    "first": np.dtype("?"),
    "terminated": np.dtype("?"),
    "truncated": np.dtype("?"),
}


OPTIONAL = {"student_acted": np.dtype("?")}


class ChunkError(ValueError):
    """A chunk that does not match the format; the message says which field and why."""


def _shape(field: str, steps: int, envs: int, actions: int) -> tuple[int, ...]:
    if field == "frames":
        return (steps, envs, *FRAME_SHAPE)
    if field == "q":
        return (steps, envs, actions)
    return (steps, envs)


@dataclass(frozen=True)
class Chunk:
    game: str
    actor_id: int
    chunk_index: int  # per actor, consecutive: a gap tells the replay not to join stacks across it
    teacher_version: int
    frames: np.ndarray
    q: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    first: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    student_acted: np.ndarray | None = None

    @property
    def steps(self) -> int:
        return self.frames.shape[0]

    @property
    def envs(self) -> int:
        return self.frames.shape[1]

    @property
    def num_actions(self) -> int:
        return self.q.shape[2]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _fields(self)}

    @property
    def student_steps(self) -> int:
        return 0 if self.student_acted is None else int(self.student_acted.sum())


def _fields(chunk: Chunk) -> dict[str, np.dtype]:
    return {**_DTYPES, **{name: dtype for name, dtype in OPTIONAL.items() if getattr(chunk, name) is not None}}


def encode(chunk: Chunk) -> bytes:
    steps, envs, actions = chunk.steps, chunk.envs, chunk.num_actions
    fields, data = {}, {}
    for name, dtype in _fields(chunk).items():
        array = np.ascontiguousarray(getattr(chunk, name), dtype=dtype)
        expected = _shape(name, steps, envs, actions)
        if array.shape != expected:
            raise ChunkError(f"field {name!r} has shape {array.shape}, expected {expected}")
        fields[name] = {"dtype": dtype.str, "shape": list(expected)}
        data[name] = array.tobytes()
    header = {
        "format": FORMAT, "version": VERSION, "game": chunk.game,
        "actor_id": int(chunk.actor_id), "chunk_index": int(chunk.chunk_index),
        "teacher_version": int(chunk.teacher_version),
        "steps": steps, "envs": envs, "num_actions": actions, "fields": fields,
    }
    return msgpack.packb({"header": header, "data": data}, use_bin_type=True)


def _int(header: dict, key: str, low: int, high: int) -> int:
    value = header.get(key)
    if type(value) is not int or not low <= value <= high:
        raise ChunkError(f"header field {key!r} must be an integer in [{low}, {high}], got {value!r}")
    return value


def decode(message: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Chunk:
    """Returns read-only views over `message`; a consumer that keeps data must copy it."""
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise ChunkError(f"a chunk must be bytes, got {type(message).__name__}")
    if len(message) > max_bytes:
        raise ChunkError(f"chunk of {len(message)} bytes exceeds the limit of {max_bytes}")
    try:
        outer = msgpack.unpackb(
            message, raw=False, strict_map_key=True, max_bin_len=max_bytes,
            max_str_len=1024, max_array_len=16, max_map_len=64, max_ext_len=0,
        )
    except Exception as error:  # msgpack raises several unrelated types for bad input
        raise ChunkError(f"not a msgpack chunk: {type(error).__name__}: {error}") from None
    if not isinstance(outer, dict) or set(outer) != {"header", "data"}:
        raise ChunkError("a chunk must be a map with exactly 'header' and 'data'")
    header, data = outer["header"], outer["data"]
    if not isinstance(header, dict) or not isinstance(data, dict):
        raise ChunkError("'header' and 'data' must both be maps")
    if header.get("format") != FORMAT:
        raise ChunkError(f"format must be {FORMAT!r}, got {header.get('format')!r}")
    if header.get("version") != VERSION:
        raise ChunkError(f"format version {header.get('version')!r} is not supported (this build reads {VERSION})")
    game = header.get("game")
    if not isinstance(game, str) or not game:
        raise ChunkError(f"header field 'game' must be a non-empty string, got {game!r}")
    steps = _int(header, "steps", 1, MAX_STEPS)
    envs = _int(header, "envs", 1, MAX_ENVS)
    actions = _int(header, "num_actions", 1, MAX_ACTIONS)
    carried = set(data) - set(_DTYPES)
    if (not set(_DTYPES) <= set(data) or not carried <= set(OPTIONAL) or not isinstance(header.get("fields"), dict)
            or set(header["fields"]) != set(data)):
        raise ChunkError(f"a chunk must carry exactly the fields {sorted(_DTYPES)} (and optionally {sorted(OPTIONAL)})")
    arrays = {}
    for name, dtype in {**_DTYPES, **{k: OPTIONAL[k] for k in sorted(carried)}}.items():
        described, expected = header["fields"][name], _shape(name, steps, envs, actions)
        if not isinstance(described, dict) or described.get("dtype") != dtype.str:
            raise ChunkError(f"field {name!r} must have dtype {dtype.str!r}")
        if described.get("shape") != list(expected):
            raise ChunkError(f"field {name!r} has shape {described.get('shape')!r}, header implies {list(expected)}")
        buffer = data[name]
        size = int(np.prod(expected)) * dtype.itemsize
        if not isinstance(buffer, bytes) or len(buffer) != size:
            got = len(buffer) if isinstance(buffer, bytes) else type(buffer).__name__
            raise ChunkError(f"field {name!r} must be {size} bytes, got {got}")
        if dtype.kind == "b" and buffer.translate(None, b"\x00\x01"):
            raise ChunkError(f"field {name!r} holds bytes other than 0 and 1")
        arrays[name] = np.frombuffer(buffer, dtype=dtype).reshape(expected)
    if arrays["actions"].size and int(arrays["actions"].max()) >= actions:
        raise ChunkError(f"an action index is out of range for {actions} actions")
    if not np.isfinite(arrays["q"]).all():
        raise ChunkError("field 'q' holds non-finite values")
    return Chunk(
        game=game,
        actor_id=_int(header, "actor_id", 0, 2**31 - 1),
        chunk_index=_int(header, "chunk_index", 0, 2**62),
        teacher_version=_int(header, "teacher_version", 0, 2**62),
        **arrays,
    )
