"""A recorded teacher: the actors' chunks on disk, so many students can be distilled from one recording.

    DATASET_DIR/index.json        identity (game, action count, teacher, env, format versions) and counts
    DATASET_DIR/chunks-NNNNN.bin  records of [b"ADC1", u32 length, u32 crc32] + one encoded chunk

The records hold exactly the bytes an actor sends to a replay shard, so the wire format
and the disk format are one codec. Every record carries its own length and CRC, so a
truncated or corrupted file is reported with its name and byte offset and the records
around the damage stay readable. Opening a dataset verifies every record before a run
starts; `skip_damaged` decides whether damage stops the run or is left out.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from atari_distill.models.checkpoint import WriteError, atomic_write
from atari_distill.replay.chunk import MAX_MESSAGE_BYTES
from atari_distill.replay.chunk import VERSION as CHUNK_VERSION
from atari_distill.replay.chunk import ChunkError, decode
from atari_distill.runners import handles

FORMAT, VERSION = "atari-distill-dataset", 1
MAGIC = b"ADC1"
RECORD_HEADER = struct.Struct("<4sII")
FILE_BYTES = 256 * 1024 * 1024


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class Record:
    file: str
    offset: int
    length: int
    actor_id: int
    steps: int


class DatasetWriter:
    """Appends chunks until `max_steps` are stored; the index is rewritten atomically as files fill."""

    def __init__(self, out: str | os.PathLike, identity: dict, max_steps: int, file_bytes: int = FILE_BYTES,
                 resume: bool = False):
        """With `resume`, continues the dataset at `out` (a recording cut short): its whole chunks are
        kept, a torn last record is cut off, and new chunks go to a new file."""
        self.path = Path(out)
        self.identity, self.max_steps, self.file_bytes = identity, max_steps, file_bytes
        self.full = False
        self.files: list[dict] = []
        self.handle = None
        self.actors: set[int] = set()
        self.resumes = 0
        if resume:
            self._reopen()
        elif (self.path / "index.json").exists() or any(self.path.glob("chunks-*.bin")):
            raise DatasetError(f"{str(self.path)!r} already holds a dataset; choose a new --out or --resume it")
        self.path.mkdir(parents=True, exist_ok=True)
        self.full = self.steps >= self.max_steps
        self._write_index(complete=False)

    def _reopen(self) -> None:
        index = read_index(self.path)
        changed = [key for key in ("game", "num_actions", "teacher", "env", "epsilon", "envs_per_actor", "chunk_steps",
                                   "seed") if index.get(key) != self.identity.get(key)]
        if changed:
            raise DatasetError(f"{str(self.path)!r} was recorded with another {', '.join(changed)}; resume it with "
                               f"the flags it was recorded with")
        for entry in index["files"]:
            records, _ = scan_file(self.path / entry["name"], index["game"], index["num_actions"])
            good = records[-1].offset + RECORD_HEADER.size + records[-1].length if records else 0
            if (self.path / entry["name"]).exists():
                os.truncate(self.path / entry["name"], good)  # whole chunks only: a torn last one goes
            self.files.append({"name": entry["name"], "bytes": good, "chunks": len(records),
                               "steps": sum(r.steps for r in records)})
            self.actors.update(r.actor_id for r in records)
        self.resumes = int(index.get("resumes", 0)) + 1

    @property
    def steps(self) -> int:
        return sum(f["steps"] for f in self.files)

    def stored_steps(self) -> int:
        return self.steps

    def times_resumed(self) -> int:
        return self.resumes

    def is_full(self) -> bool:
        return self.full

    def insert(self, message: bytes) -> bool:
        """Stores one chunk while it fits under `max_steps` (a budget, never exceeded); returns whether more fit."""
        if self.full:
            return False
        chunk = decode(message)
        if chunk.game != self.identity["game"] or chunk.num_actions != self.identity["num_actions"]:
            raise ChunkError(f"chunk for {chunk.game!r} with {chunk.num_actions} actions does not belong in a "
                             f"{self.identity['game']!r} dataset with {self.identity['num_actions']}")
        if self.steps + chunk.steps * chunk.envs > self.max_steps:
            self.full = True
            return False
        if self.handle is None or self.files[-1]["bytes"] >= self.file_bytes:
            self._next_file()
        header = RECORD_HEADER.pack(MAGIC, len(message), zlib.crc32(message))
        entry = self.files[-1]
        try:
            self.handle.write(header + message)
            self.handle.flush()
        except OSError as error:  # a full disk: cut the torn record off, so the files are what the index says
            self._abandon_record(entry["bytes"])
            raise WriteError(f"could not write to {str(self.path / entry['name'])!r} ({error.strerror or error}); "
                             f"the dataset keeps the {self.steps:,} steps of whole chunks before it; free disk space "
                             f"and record again, or distill from what is there") from None
        entry["bytes"] += len(header) + len(message)
        entry["chunks"] += 1
        entry["steps"] += chunk.steps * chunk.envs
        self.actors.add(chunk.actor_id)
        self.full = self.steps >= self.max_steps
        return not self.full

    def _abandon_record(self, good_bytes: int) -> None:
        handle, self.handle = self.handle, None
        try:
            handle.close()
        except OSError:
            pass  # the buffer that could not be written
        os.truncate(self.path / self.files[-1]["name"], good_bytes)
        self.full = True
        try:
            self._write_index(complete=False)
        except WriteError:
            pass  # the index on disk still names every file; readers scan them whole

    def _next_file(self) -> None:
        self._flush()
        name = f"chunks-{len(self.files):05d}.bin"  # a resumed recording starts a file of its own
        self.handle = open(self.path / name, "xb")
        self.files.append({"name": name, "bytes": 0, "chunks": 0, "steps": 0})
        self._write_index(complete=False)

    def _flush(self) -> None:
        if self.handle is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self._write_index(complete=False)

    def close(self, complete: bool = True) -> dict:
        """`complete` false: the recording was stopped early, and `--resume` may continue it."""
        self._flush()
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        return self._write_index(complete=complete)

    def _write_index(self, complete: bool) -> dict:
        index = {
            "format": FORMAT, "version": VERSION, "chunk_format_version": CHUNK_VERSION, "complete": complete,
            **self.identity, "steps": self.steps, "chunks": sum(f["chunks"] for f in self.files),
            "actors": sorted(self.actors), "files": self.files, "resumes": self.resumes,
        }
        atomic_write(self.path / "index.json", json.dumps(index, indent=2).encode())
        return index


def read_index(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        index = json.loads((path / "index.json").read_text())
    except FileNotFoundError:
        raise DatasetError(f"{str(path)!r} is not a dataset (no index.json); record one with `launch.py record`") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path / 'index.json'} is unreadable ({error}); the dataset's identity is lost") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DatasetError(f"{path / 'index.json'} is not an {FORMAT} index")
    if index.get("version") != VERSION or index.get("chunk_format_version") != CHUNK_VERSION:
        raise DatasetError(f"dataset format {index.get('version')}/chunks {index.get('chunk_format_version')} is not "
                           f"supported (this build reads {VERSION}/{CHUNK_VERSION}); record it again")
    for key in ("game", "num_actions", "teacher", "files"):
        if key not in index:
            raise DatasetError(f"{path / 'index.json'} lacks {key!r}; record the dataset again")
    files = index["files"]
    if not (isinstance(index["game"], str) and type(index["num_actions"]) is int and isinstance(files, list) and all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and Path(f["name"]).name == f["name"]
            and f["name"] not in ("", ".", "..") for f in files)):
        raise DatasetError(f"{path / 'index.json'} is damaged (its game, action count or file list is malformed); "
                           f"record the dataset again")
    return index


def scan_file(path: Path, game: str, num_actions: int) -> tuple[list[Record], list[str]]:
    """Every readable record of one file, and a line per damaged stretch (file name and byte offset)."""
    records, damage = [], []
    try:
        size = path.stat().st_size
        handle = open(path, "rb")
    except OSError as error:
        return [], [f"{path.name}: cannot be read ({error.strerror})"]
    with handle:
        offset = 0
        while offset < size:
            header = handle.read(RECORD_HEADER.size)
            if len(header) < RECORD_HEADER.size:
                damage.append(f"{path.name}: truncated record header at byte offset {offset} (file ends at {size})")
                break
            magic, length, crc = RECORD_HEADER.unpack(header)
            if magic != MAGIC or length > MAX_MESSAGE_BYTES:
                damage.append(f"{path.name}: no record starts at byte offset {offset}; "
                              f"the remaining {size - offset} bytes are unreadable")
                break
            end = offset + RECORD_HEADER.size + length
            if end > size:
                damage.append(f"{path.name}: chunk at byte offset {offset} is truncated "
                              f"(needs {length} bytes, file ends {size - offset - RECORD_HEADER.size} bytes later)")
                break
            message = handle.read(length)
            problem = None
            if zlib.crc32(message) != crc:
                problem = "checksum mismatch"
            else:
                try:
                    chunk = decode(message)
                    if chunk.game != game or chunk.num_actions != num_actions:
                        problem = f"chunk for {chunk.game!r} with {chunk.num_actions} actions"
                except ChunkError as error:
                    problem = str(error)
            if problem is None:
                records.append(Record(path.name, offset, length, chunk.actor_id, chunk.steps * chunk.envs))
            else:
                damage.append(f"{path.name}: damaged chunk at byte offset {offset} ({problem})")
            offset = end
    return records, damage


class Dataset:
    def __init__(self, path: Path, index: dict, records: list[Record], damage: list[str]):
        self.path, self.index, self.records, self.damage = path, index, records, damage

    @classmethod
    def open(cls, path: str | os.PathLike, skip_damaged: bool = False) -> "Dataset":
        path = Path(path).resolve()
        index = read_index(path)
        records, damage = [], []
        for entry in index["files"]:
            found, bad = scan_file(path / entry["name"], index["game"], index["num_actions"])
            records += found
            damage += bad
        if damage and not skip_damaged:
            more = f" and {len(damage) - 1} more" if len(damage) > 1 else ""
            raise DatasetError(f"dataset {str(path)!r}: {damage[0]}{more}; pass --skip-damaged to use the rest")
        if not records:
            raise DatasetError(f"dataset {str(path)!r} holds no readable chunks")
        return cls(path, index, records, damage)

    @property
    def game(self) -> str:
        return self.index["game"]

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.records)

    @property
    def actors(self) -> list[int]:
        return sorted({r.actor_id for r in self.records})

    def read(self, record: Record) -> bytes:
        with open(self.path / record.file, "rb") as handle:
            handle.seek(record.offset + RECORD_HEADER.size)
            return handle.read(record.length)

    def messages(self):
        for record in self.records:
            yield record, self.read(record)


class DatasetFeeder:
    """Streams a dataset into replay shards as teacher actors would, one insert in flight per shard.

    When the whole dataset fits the replay it is loaded once and the shards are closed
    (training then samples freely); otherwise it loops, each pass held back by the shards'
    rate limiters like live actors; a later pass's chunks go in as `replayed`, so neither its steps
    count as labelled again nor its streams, starting over, as restarted actors."""

    def __init__(self, dataset: Dataset, shards: list):
        self.dataset = dataset
        self.shards = shards
        self.stopping = False
        self.passes = 0
        self.steps = 0

    def run(self, loop: bool) -> dict:
        from atari_distill.replay.shard import shard_for_actor

        while not self.stopping:
            inflight: dict[int, object] = {}
            for record, message in self.dataset.messages():
                if self.stopping:
                    break
                target = shard_for_actor(record.actor_id, len(self.shards))
                if target in inflight:
                    handles.get(inflight.pop(target))
                inflight[target] = self.shards[target].insert.remote(message, replayed=self.passes > 0)
                self.steps += record.steps
            handles.get(list(inflight.values()))
            self.passes += not self.stopping  # whole passes only
            if not loop:
                break
        return self.stats()

    def stop(self) -> None:
        self.stopping = True

    def stats(self) -> dict:
        return {"passes": self.passes, "steps": self.steps, "dataset_steps": self.dataset.steps,
                "damaged": self.dataset.damage}
