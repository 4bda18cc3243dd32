"""This machine's processes by parentage and title, read from /proc (Linux): how a benchmark or a
test finds the Ray workers of its own run, and never another job's on the same machine."""

from __future__ import annotations

import os
import re
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


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


def command_line(pid: int) -> str | None:
    """The process's title (Ray sets ray::CLASS.method for an actor), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def role(pid: int) -> str | None:
    """What a process is, from its title: ray::CLASS for actors, the executable for Ray's own."""
    cmdline = command_line(pid)
    if cmdline is None:
        return None
    actor = re.search(r"ray::([A-Za-z_]+)", cmdline)
    if actor:
        return actor.group(1)
    for name in ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "runtime_env", "default_worker"):
        if name in cmdline:
            return name.replace(".py", "")
    return Path(cmdline.split(" ")[0]).name or None


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has used so far (user and system, every thread), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS
