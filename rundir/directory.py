"""The run directory: everything a run is, on disk, self-describing and resumable.

    config.json      the validated config the run started with
    metrics.jsonl    one JSON object per log interval (the source of truth for plots)
    tensorboard/     the same scalars as TensorBoard event files (tag KIND/KEY, step = updates), and the
                     DQN's evaluations (dqn_eval/*) and the online timeline (online/*) at the DQN's updates
    checkpoints/     KIND-UPDATES.pt (student, dqn) in our checkpoint format; the newest few are kept
    teachers/        teacher-VERSION.pt: every scored DQN checkpoint (teacher and online runs)
    registry.json    those checkpoints' scores and the best so far (cluster/registry.py)
    timeline.jsonl   online runs: DQN, best-so-far and student scores at each DQN checkpoint
    summary.json     the final results (written last; `complete` false if cut short)
    .lock            held (flock) by the one process running or resuming the run, for its life
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import sys
from pathlib import Path

from atari_distill.models.checkpoint import CheckpointError, WriteError, atomic_write, load_checkpoint, save_checkpoint

KEEP_CHECKPOINTS = 3


def after_last_event_file(folder: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the second it was
    opened: a resume in the same second as the segment before it could sort first, and its purge would
    hide nothing. So a new file waits (a second at most) until its name sorts last; a file stamped later
    still (written under a clock ahead of this one) is not waited for."""
    import time

    stamps = [int(m.group(1)) for f in (folder.iterdir() if folder.is_dir() else ())
              if (m := re.match(r"events\.out\.tfevents\.(\d+)\.", f.name))]
    if stamps and max(stamps) >= int(time.time()):
        time.sleep(min(1.0, max(stamps) + 1 - time.time()))


class RunDirError(ValueError):
    pass


def stored_flags(values: dict) -> dict:
    """config.json as {flag: value}, whether it holds the tree or (older runs) the flags flat."""
    flat = {}
    for key, value in values.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def json_safe(value):
    """JSON has no NaN: write null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


LOCK = ".lock"


def scalars(record: dict, prefix: str = "") -> dict[str, float]:
    """Every finite number in a record, nested keys joined with '/'."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[prefix + key] = float(value)
    return out


ABANDONED = "abandoned"  # the metrics kind of a curve point a stop left unplayed (no learner's, no curve's)


def check_new_folder(path: str | Path) -> None:
    """A new run's or dataset's folder must be new or empty. Launch checks it before Ray starts;
    creating the folder checks it again. Only a run directory is offered to --resume."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {str(path)!r} is a file, not a directory; choose a new --out")
    if path.is_dir() and any(p.name != LOCK for p in path.iterdir()):
        fix = "choose a new --out or --resume that run" if (path / "config.json").is_file() else \
            "choose a new --out (it is not a run directory, so there is no run in it to resume)"
        raise RunDirError(f"--out {str(path)!r} already holds files; {fix}")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = None  # the open lock file while this process runs the run
        self.checkpoints = self.path / "checkpoints"
        self.observers: list = []  # called with every metrics record (the live progress view)
        self._writers: dict = {}  # TensorBoard, one event folder per record kind: tensorboard/KIND
        self.purge_steps: dict[str, int] = {}  # a resumed kind hides its TensorBoard events from this step on

    @classmethod
    def create(cls, path: str | Path, config_json: str, checkpoints: bool = True) -> "RunDir":
        """A new run directory, locked; `checkpoints` false for one that keeps none (a dataset)."""
        run = cls(path)
        check_new_folder(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        run.lock()
        check_new_folder(run.path)  # again, now that no other run can be creating it
        if checkpoints:
            run.checkpoints.mkdir(exist_ok=True)
        atomic_write(run.path / "config.json", config_json.encode())
        return run

    def lock(self) -> None:
        """One process per run directory: a second run on the same --out, or a --resume of a run
        that is still going, is refused here instead of interleaving its files with the first's.
        The kernel drops the lock when the process ends, however it ends."""
        handle = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirError(f"{str(self.path)!r} is in use by another run (pid {holder}); wait for it to end or "
                              f"stop it (Ctrl-C), or choose another --out") from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise RunDirError(f"{str(run.path)!r} is not a run directory (no config.json); give the --out of an earlier run")
        return run

    def read_config(self) -> dict:
        """The run's flags, {flag: value}, whether the file holds the config's tree or (older runs) flags alone."""
        try:
            config = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8
            raise RunDirError(f"{str(self.path / 'config.json')!r} cannot be read ({error}); the run directory is "
                              f"damaged, start a new run") from None
        if not isinstance(config, dict):
            raise RunDirError(f"{str(self.path / 'config.json')!r} holds a JSON {type(config).__name__}, not the run's "
                              f"flags; the run directory is damaged, start a new run")
        return stored_flags(config)

    def write_config(self, config_json: str) -> None:
        atomic_write(self.path / "config.json", config_json.encode())

    def log(self, record: dict, name: str = "metrics.jsonl") -> None:
        try:
            with open(self.path / name, "a") as handle:
                handle.write(json.dumps(json_safe(record), sort_keys=True) + "\n")
        except OSError as error:
            raise WriteError(f"could not append to {str(self.path / name)!r} ({error.strerror or error}); the "
                             f"checkpoints are intact; free disk space and --resume the run") from None
        if name == "metrics.jsonl":
            self._to_tensorboard(record)
            for observer in self.observers:
                observer(record)

    def _to_tensorboard(self, record: dict) -> None:
        self.to_tensorboard(record.get("kind", "distill"), record, int(record.get("updates", 0)))

    def to_tensorboard(self, kind: str, record: dict, step: int) -> None:
        """Scalars whose record of truth is another file (registry.json, timeline.jsonl). Each kind has its
        own event folder (a TensorBoard run): a resume's purge hides every tag of its folder past the step,
        so the student's checkpoint of an online run must not hide its DQN's events, thousands of updates
        on."""
        from torch.utils.tensorboard import SummaryWriter

        if kind not in self._writers:
            folder = self.path / "tensorboard" / kind
            after_last_event_file(folder)
            self._writers[kind] = SummaryWriter(str(folder), flush_secs=10, purge_step=self.purge_steps.get(kind))
        for key, value in scalars(record).items():
            if key != "updates":
                self._writers[kind].add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def metrics(self, name: str = "metrics.jsonl") -> list[dict]:
        """Every record. A damaged line (the last one cut short when the disk filled or the process died
        mid-write, bytes that are not UTF-8) is left out with a warning naming the file, so one bad
        line costs the report one point, not the whole report."""
        path = self.path / name
        if not path.exists():
            return []
        records = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line.decode("utf-8")))
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both are
                why = "not UTF-8" if isinstance(error, UnicodeDecodeError) else "not a JSON record"
                print(f"warning: skipping line {number} of {str(path)!r}: {why}", file=sys.stderr)
        return records

    def trim_metrics(self, kind: str, updates: int, purge: bool = False, name: str = "metrics.jsonl",
                     of: str | None = None) -> int:
        """Drops `kind`'s records past `updates` (logged after the checkpoint a learner resumes from),
        so every interval appears once; returns how many went. `of`: only those of that kind (an
        abandoned curve point's). With `purge` (a run resuming, before its writers open) TensorBoard
        hides the kind's events past it too."""
        records = self.metrics(name)
        kept = [r for r in records if r.get("kind", "distill") != kind or (of is not None and r.get("of") != of)
                or r.get("updates", 0) <= updates]
        if len(kept) != len(records):
            atomic_write(self.path / name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept).encode())
        if purge:
            self.purge_steps[kind] = min(self.purge_steps.get(kind, updates + 1), updates + 1)
        return len(records) - len(kept)

    def save_checkpoint(self, payload: dict, series: str = "student") -> Path:
        path = self.checkpoints / f"{series}-{payload['updates']:08d}.pt"
        save_checkpoint(path, payload)
        for old in self.checkpoint_paths(series)[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
        return path

    def checkpoint_paths(self, series: str = "student") -> list[Path]:
        """KIND-UPDATES.pt only: `student` does not match a sweep's `student-net3-kl-...`."""
        pattern = re.compile(re.escape(series) + r"-\d{8}\.pt")
        return sorted(p for p in self.checkpoints.glob(f"{series}-*.pt") if pattern.fullmatch(p.name))

    @staticmethod
    def checkpoint_updates(path: Path) -> int:
        """The updates a checkpoint of checkpoint_paths was saved at, read from its name."""
        return int(path.stem.rsplit("-", 1)[1])

    def latest_checkpoint(self, series: str = "student") -> tuple[dict | None, list[str]]:
        """The newest checkpoint that loads, and a note for each newer one that did not."""
        skipped = []
        for path in reversed(self.checkpoint_paths(series)):
            try:
                return load_checkpoint(path), skipped
            except CheckpointError as error:
                skipped.append(str(error))
        return None, skipped

    def write_summary(self, summary) -> None:
        """The run's last write (a rundir.summary.Summary); the run directory is then free for a resume."""
        summary.write(self.path)
        self.close()
        self.unlock()
