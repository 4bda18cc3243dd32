"""Ray worker processes of this test session only, found by title among our own descendants,
so a Ray job elsewhere on the machine (a teacher training in the background) is never a victim."""

import os
from pathlib import Path


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def ray_workers(title: str) -> list[int]:
    """Our Ray workers whose process title names `title` (Ray sets it to ray::CLASS...)."""
    pids = []
    for pid in sorted(descendants(os.getpid())):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"ray::{title}" in cmdline:
            pids.append(pid)
    return pids
