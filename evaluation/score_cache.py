"""Report-seed episodes of the policies that do not change between runs (a teacher, the random
policy), kept so the next run that plays the very same episodes reads them instead.

Evaluation slots carry their own seeds and epsilon streams (evaluation/episodes.py), so a teacher's 30
report episodes come out the same every time they are played the same way. A ten-game run played
600 of them (its teachers' and the random policy's) at its start, about ten minutes of two cores
beside its learner, and every further student from the same recordings played them again. The key
holds all those episodes depend on: the game, the policy (the teacher's fingerprint of architecture
and weights, or the random policy's action count), the episodes, the env, epsilon and seeds, the
evaluator tasks they are split over (the batch a network sees), the source of the code that plays
them (actors/, models/), the versions of ale-py, gymnasium, torch and numpy and the CPU; a change to
any of them plays afresh. A student's episodes are never kept: its weights are new every run.

The folder is $ATARI_DISTILL_SCORE_CACHE if set ("off": keep nothing), else
$XDG_CACHE_HOME/atari-distill/scores (~/.cache by default); deleting it only costs the replay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import uuid
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from atari_distill.runners import handles

ROOT = Path(__file__).resolve().parent.parent
PLAYING_CODE = ("actors", "models")  # what turns a policy, a game and seeds into episodes


def default_folder() -> Path | None:
    """Where runs keep their episodes; None (keep nothing) where it is "off" or no home is known."""
    chosen = os.environ.get("ATARI_DISTILL_SCORE_CACHE")
    if chosen:
        return None if chosen == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        base = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # XDG: a relative path is ignored
    except RuntimeError:  # no home directory (an unnamed uid in a container): play every time
        return None
    return base / "atari-distill" / "scores"


@lru_cache(maxsize=1)
def _code_and_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256()
    for path in sorted(p for folder in PLAYING_CODE for p in (ROOT / folder).rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    versions = {}
    for package in ("ale-py", "gymnasium", "torch", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    import platform

    import torch

    cpu = f"{platform.machine()}/{torch.backends.cpu.get_cpu_capability()}"  # kernels differ in their last bits
    return {"code": digest.hexdigest()[:16], "versions": versions, "cpu": cpu}


def policy_key(teacher: dict, num_actions: int, random_policy: bool) -> str:
    """What names the policy that plays: the teacher's fingerprint, or the random policy's action count
    (it never reads the network)."""
    from atari_distill.models.checkpoint import fingerprint

    return f"random/{num_actions}" if random_policy else fingerprint(teacher)


def well_formed(rows, episodes: int) -> bool:
    """Whether `rows` are `episodes` distinct slots' (slot, score, length): valid JSON of another shape
    would otherwise reach a summary, at the end of a long run, as a crash or a wrong score."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    return (isinstance(rows, list) and len(rows) == episodes
            and all(isinstance(row, list) and len(row) == 3 and isinstance(row[0], int) and not isinstance(row[0], bool)
                    and row[0] >= 0 and number(row[1]) and isinstance(row[2], int) and row[2] >= 1 for row in rows)
            and len({row[0] for row in rows}) == episodes)


class ScoreCache:
    def __init__(self, folder: Path | None):
        """`folder`: where to keep episodes; None keeps nothing."""
        self.folder = Path(folder) if folder is not None else None

    @classmethod
    def default(cls) -> "ScoreCache":
        return cls(default_folder())

    def key(self, game: str, policy: str, episodes: int, workers: int, play: dict) -> dict:
        """Everything the episodes depend on. `policy`: `policy_key`; `workers`: the evaluator tasks
        (submit_evaluation); `play`: the protocol's env_config, epsilon and seed (EvalProtocol.play)."""
        return {"game": game, "policy": policy, "episodes": int(episodes), "workers": int(workers),
                "env": asdict(play["env_config"]), "epsilon": float(play["epsilon"]), "seed": int(play["seed"]),
                **_code_and_versions()}

    def _path(self, key: dict) -> Path:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return self.folder / f"{key['game']}-{name}.json"

    def get(self, key: dict) -> list | None:
        """The episodes' (slot, score, length) rows, or None where none were kept (or what was kept is
        unreadable, or not these episodes: then they are played again)."""
        if self.folder is None:
            return None
        try:
            kept = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        rows = kept.get("rows") if isinstance(kept, dict) and kept.get("key") == key else None
        return rows if well_formed(rows, key["episodes"]) else None

    def put(self, key: dict, rows: list) -> None:
        """Keeps the rows, written whole or not at all; a folder that cannot be written only means the
        next run plays them again."""
        if self.folder is None:
            return
        path = self._path(key)
        part = path.with_name(f".{uuid.uuid4().hex}.part")  # unique across processes and hosts sharing the folder
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w") as out:  # umask applies
                out.write(json.dumps({"key": key, "rows": [list(row) for row in rows]}))
            os.replace(part, path)
        except OSError:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)


class KeptOrPlayed:
    """One fixed policy's episodes: read from the cache where kept, else played by the evaluator tasks
    `submit()` starts and kept once collected. `pending` reads alike either way (the kept rows are one
    ready object), so whoever waits on it needs no second path."""

    def __init__(self, cache: ScoreCache, key: dict, submit):
        self.cache, self.key = cache, key
        rows = cache.get(key)
        self.kept = rows is not None
        self.pending = [handles.put(rows)] if self.kept else submit()
        self._rows = rows

    def rows(self) -> list:
        from atari_distill.evaluation.episodes import collect_rows

        if self._rows is None:
            self._rows = collect_rows(self.pending)
            self.cache.put(self.key, self._rows)
        return self._rows

    def keep_if_played(self) -> None:
        """Keeps the episodes if they are all played by now: a run that stops early still saves the
        next one (its --resume) the replay."""
        try:
            if len(handles.wait(self.pending, num_returns=len(self.pending), timeout=0)[0]) == len(self.pending):
                self.rows()
        except Exception:  # noqa: BLE001 - a task that failed (a worker lost to the stop) is simply not kept
            pass
