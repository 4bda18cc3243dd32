"""The start and the end every run kind shares, so each kind's module states only its own phases.

A run starts in one order whatever its kind: connect to Ray; print and check the memory
plan(s) and the placement plan, so an impossible run is refused before anything is
written; create the run directory (or take the resumed one, already locked); reserve the
placement; show progress. It ends by releasing every bundle and writing a summary that
names its kind.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from typing import Callable

from atari_distill.cluster.placement import Placement, PlacementPlan
from atari_distill.cluster.runtime import connect, has_gpu, ray_memory, require_cpus
from atari_distill.pipelines.stopping import StopToken
from atari_distill.rundir.directory import RunDir
from atari_distill.rundir.summary import Summary, SummaryError
from atari_distill.replay.memory_plan import MemoryPlan, local_memory
from atari_distill.runners import handles
from atari_distill.ui.progress import Progress, as_progress


INTERRUPTED_CLOSE_S = 2.0  # a second Ctrl-C means now: threads still busy after it are daemons, left to the exit


@contextlib.contextmanager
def hosted_by(runner: str):
    """Every component the block starts is hosted by `runner`: Ray (actors on this machine or the cluster),
    or this process (runners/local.py), whose task threads end with the block."""
    if runner != "local":
        yield
        return
    from atari_distill.runners.local import LocalBackend

    backend = LocalBackend()
    interrupted = False
    try:
        with handles.running(backend):
            yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        backend.close(timeout_s=INTERRUPTED_CLOSE_S if interrupted else 60.0)


def on_its_runner(run: Callable) -> Callable:
    """`run(cfg, ...)` hosted by cfg.run.runner."""
    @functools.wraps(run)
    def hosted(cfg, *args, **kwargs):
        with hosted_by(cfg.run.runner):
            return run(cfg, *args, **kwargs)
    return hosted


def learner_wants_gpu(device: str) -> bool:
    """An explicit CUDA device needs a GPU (the placement plan says so if there is none); auto takes one if any."""
    return device.startswith("cuda") or (device == "auto" and has_gpu())


@dataclass
class RunStart:
    """A run whose plans fit, with its directory, its reserved placement and its progress view."""

    kind: str
    run: RunDir
    plan: PlacementPlan
    placement: Placement
    echo: Progress
    free_memory: float
    use_gpu: bool
    actor_options: dict
    actor_device: str
    started: float
    stop: StopToken
    earlier_s: float = 0.0  # the wall time of this run's segments before a resume

    def elapsed(self) -> float:
        """This segment's seconds."""
        return time.monotonic() - self.started

    def finish(self, results: dict, complete: bool = True) -> dict:
        """Frees every bundle and writes the summary of this run kind, with the wall time of every segment
        so far; returns it as written."""
        self.placement.release_all()
        summary = Summary(self.kind, complete, results, self.earlier_s + self.elapsed(),
                          None if complete else self.stop.requested())
        self.run.write_summary(summary)
        return summary.as_dict()

    def stopped(self, results: dict) -> dict:
        """The summary of a run a stop request ended early: it says by what, and how far it got."""
        return self.finish(results, complete=False)


def start_run(kind: str, cfg, run: RunDir | None, echo, *, cpus: int, memory: list[tuple[str, MemoryPlan]],
              placement: Callable[[bool], PlacementPlan], progress: tuple[int, str],
              capacity: dict[str, int] | None = None, roles: str | None = None,
              stop: StopToken | None = None) -> RunStart:
    """`memory`: (title, plan) pairs, each checked against what the ones before it leave free;
    `placement(use_gpu)` plans the run's bundles; `progress`: the total and its unit;
    `roles`: what the CPUs are for, where the run needs them all at once (no placement plan says so);
    `stop`: the token that ends this run early (a new one if none)."""
    started = time.monotonic()
    local = handles.is_local()
    if not local:
        connect(cfg.run.address, cpus_needed=cpus)
        if roles:
            require_cpus(cpus, roles)
    actor_options, actor_device = cfg.acting.actor_options()
    use_gpu = learner_wants_gpu(cfg.run.device)
    free, largest = local_memory() if local else ray_memory()
    available, tables = free, []
    for title, plan in memory:
        tables.append(plan.table(available, title))
        available -= plan.total_bytes
    echo("\n".join(tables))
    available = free
    for _, plan in memory:
        plan.check(available, largest)
        available -= plan.total_bytes
    plan = placement(use_gpu)
    echo(plan.table())
    plan.check()
    earlier_s = earlier_wall_s(run) if run is not None else 0.0
    run = run or RunDir.create(cfg.run.out, cfg.to_json())
    stop = stop if stop is not None else StopToken()
    stop.hold(run.unlock)
    reserved = plan.reserve()
    stop.hold(reserved.release_all)
    echo = as_progress(echo, f"{kind} {run.path}", *progress, capacity)
    run.observers.append(echo.update)
    return RunStart(kind, run, plan, reserved, echo, free, use_gpu, actor_options, actor_device, started, stop,
                    earlier_s)


CUMULATIVE_COUNTS = ("labelled_steps", "replayed_steps", "sampled_steps")  # a resumed run's lines go on from these


def counters_at(run: RunDir, kind: str, updates: int) -> dict:
    """Where a resumed series left off: the elapsed seconds and cumulative counts on its last metrics line
    at or before the checkpoint it resumes from (`updates`); {} for a new run. A resume goes on from
    them, so no counter of the record restarts (the lost minutes past that checkpoint are not counted)."""
    if not updates:
        return {}
    lines = [r for r in run.metrics() if r.get("kind", "distill") == kind and 0 < r.get("updates", 0) <= updates]
    if not lines:
        return {}
    kept = ("elapsed_s", "sampled_steps") if lines[-1].get("from_dataset") else ("elapsed_s", *CUMULATIVE_COUNTS)
    counters = {}
    for line in reversed(lines):  # each the newest line that has it (a stop's last line may lack elapsed_s)
        for key in kept:
            if key not in counters and isinstance(line.get(key), (int, float)):
                counters[key] = line[key]
        if "replay_per_game" not in counters and isinstance(line.get("replay_per_game"), dict):
            counters["replay_per_game"] = {game: {key: value for key, value in replay.items() if key in kept}
                                           for game, replay in line["replay_per_game"].items()}
    return counters


class ResumeMarks:
    """The first metrics line of each resumed series says so ("resumed": true), once: a plot breaks its
    line there, and a reader sees where the segments meet."""

    def __init__(self, series=()):
        self.waiting = set(series)

    def mark(self, record: dict, series: str) -> dict:
        if series in self.waiting:
            record["resumed"] = True
            self.waiting.discard(series)
        return record


def earlier_wall_s(run: RunDir) -> float:
    """The wall time the summary of a run being resumed states for its segments so far (0 without one: a
    segment that ended without writing its summary, its process killed, is not counted)."""
    try:
        summary = Summary.read(run.path)
    except SummaryError:
        return 0.0
    return float(summary.wall_s or 0.0) if summary is not None else 0.0
