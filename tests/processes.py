"""Ray worker processes of this test session only, found by title among our own descendants,
so a Ray job elsewhere on the machine (a teacher training in the background) is never a victim."""

import os

from atari_distill.cluster.processes import command_line, descendants


def ray_workers(title: str) -> list[int]:
    """Our Ray workers whose process title names `title` (Ray sets it to ray::CLASS...)."""
    return [pid for pid in sorted(descendants(os.getpid())) if f"ray::{title}" in (command_line(pid) or "")]
