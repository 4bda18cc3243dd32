"""What a resume may change: the flags given with --resume against the run's stored config."""

from __future__ import annotations

import argparse
from pathlib import Path

from atari_distill.pipelines.config_tree import walk
from atari_distill.pipelines.game_sources import dataset_entries
from atari_distill.pipelines.sections import need

# what a run is; changing one would make its checkpoints another run's
FIXED_ON_RESUME = ("game", "games", "teacher", "teachers", "dataset", "datasets", "student", "loss", "preset", "out",
                   "seed", "replay_shards", "learner_gpus")


def same_setting(key: str, given, stored) -> bool:
    """A resume's flag names the run's own setting: recordings by any path to the same folders (a
    relative path, or --datasets' parent folder for the list the run stored)."""
    if given == stored:
        return True
    if key not in ("dataset", "datasets") or not isinstance(given, str) or not isinstance(stored, str):
        return False

    def folders(value: str) -> tuple[set[Path], bool]:
        entries, parent = dataset_entries(value)
        return {Path(p).resolve() for p in entries}, parent

    try:
        (ours, _), (theirs, parent) = folders(stored), folders(given)
    except (OSError, RuntimeError):  # unreadable, or a symlink loop: not the run's setting
        return False
    # a parent folder may hold recordings of games the run does not train (its --games chose)
    return bool(ours) and (theirs == ours or (key == "datasets" and parent and ours <= theirs))


def resume_changes(config_class, stored: dict, args: argparse.Namespace, override: str | None) -> dict:
    """The flags given with --resume that differ from the run's (`stored`: {flag: value}), each listed
    in --override. Anything else is refused with a line naming the flag, both values and the fix."""
    names = {f.name for f in walk(config_class)}
    allowed = [k.strip().replace("-", "_") for k in (override or "").split(",") if k.strip()]
    unknown = [k for k in allowed if k not in names]
    need(not unknown, f"--override: unknown config key(s) {unknown}; use flag names without dashes "
                      f"(updates, log-every, ...)")
    changes = {k: getattr(args, k) for k in sorted(names)
               if hasattr(args, k) and not same_setting(k, getattr(args, k), stored.get(k))}
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        need(key not in FIXED_ON_RESUME, f"--resume: {flag} {value} differs from the run's {stored.get(key)!r} and "
                                         f"cannot change on resume; start a new run with --out")
        need(key in allowed, f"--resume: {flag} {value} differs from the run's config ({stored.get(key)!r}); to "
                             f"change it add --override {key.replace('_', '-')}, or drop the flag")
    return changes
