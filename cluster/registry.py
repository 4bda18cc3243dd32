"""The checkpoint registry: every scored teacher checkpoint of a DQN run, and the best so far.

Online distillation labels with the best checkpoint seen, so "best" must be a total order
that never moves backwards: a checkpoint replaces the best only with a higher score, or an
equal score and an older version. The final best is then the same whatever order the
evaluators' reports arrive in. The state is one JSON file, rewritten atomically on every
change, so a restarted registry (or a resumed run) continues where it was.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

from atari_distill.models.checkpoint import atomic_write

FORMAT, VERSION = "atari-distill-registry", 1


class RegistryError(ValueError):
    pass


def _better(candidate: dict, incumbent: dict | None) -> bool:
    if incumbent is None:
        return True
    if candidate["score"] != incumbent["score"]:
        return candidate["score"] > incumbent["score"]
    return candidate["version"] < incumbent["version"]


def _checked(state) -> tuple[dict[int, dict], int | None]:
    """The entries and the best version of a registry file, every field of the type it must have."""
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        raise ValueError(f"not an {FORMAT} file of version {VERSION}")
    entries, number = {}, (int, float)
    for entry in state.get("history") if isinstance(state.get("history"), list) else [None]:
        if not (isinstance(entry, dict) and type(entry.get("version")) is int and type(entry.get("frames")) is int
                and isinstance(entry.get("checkpoint"), str)
                and (entry.get("score") is None or isinstance(entry.get("score"), number))):
            raise ValueError(f"a malformed history entry: {json.dumps(entry)[:80]}")
        entries[entry["version"]] = entry
    best = state.get("best")
    if not (best is None or type(best) is int and best in entries and entries[best]["score"] is not None):
        raise ValueError(f"the best version {best!r} is not a scored entry")
    return entries, best


class CheckpointRegistry:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.entries: dict[int, dict] = {}
        self.best_version: int | None = None
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            state = json.loads(self.path.read_text())
            self.entries, self.best_version = _checked(state)
        except (OSError, ValueError) as error:
            raise RegistryError(f"registry {str(self.path)!r} is unreadable ({str(error).splitlines()[0][:120]}); "
                                f"restore it or start a new run") from None

    def _save(self) -> None:
        state = {"format": FORMAT, "version": VERSION, "best": self.best_version,
                 "history": [self.entries[v] for v in sorted(self.entries)]}
        atomic_write(self.path, json.dumps(state, indent=2).encode())

    def register(self, version: int, checkpoint: str, frames: int) -> None:
        """A new checkpoint, not yet scored."""
        with self.lock:
            if version in self.entries:
                raise RegistryError(f"checkpoint version {version} is already registered")
            self.entries[version] = {"version": version, "checkpoint": checkpoint, "frames": frames, "score": None}
            self._save()

    def report(self, version: int, score: float, ci95: float | None = None, episodes: int = 0) -> bool:
        """Records an evaluation; returns whether this checkpoint is now the best."""
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise RegistryError(f"score for version {version} must be a finite number, got {score!r}")
        with self.lock:
            entry = self.entries.get(version)
            if entry is None:
                raise RegistryError(f"checkpoint version {version} was never registered")
            if entry["score"] is not None:
                raise RegistryError(f"checkpoint version {version} was already scored ({entry['score']})")
            order = sum(e["score"] is not None for e in self.entries.values())
            entry.update(score=float(score), ci95=ci95, episodes=episodes, order=order)  # order: nth report
            incumbent = self.entries[self.best_version] if self.best_version is not None else None
            improved = _better(entry, incumbent)
            if improved:
                self.best_version = version
            self._save()
            return improved

    def best(self) -> dict | None:
        with self.lock:
            return dict(self.entries[self.best_version]) if self.best_version is not None else None

    def history(self) -> list[dict]:
        with self.lock:
            return [dict(self.entries[v]) for v in sorted(self.entries)]
