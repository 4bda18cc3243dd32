"""The run kinds the CLI and the Python API dispatch to: each one's config, its run function and what a
resume continues.

A new run kind is its config (pipelines/config.py, which names it: KIND), its module, and one row in RUN_KINDS;
atari_distill/cli.py builds its flags and atari_distill/api.py its function from this row, and both run it
through `start_or_resume`.
Everything here happens before Ray starts, so a bad flag, a busy --out or a damaged run
directory costs nothing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

from atari_distill.pipelines.config import (DistillConfig, MultitaskConfig, OnlineConfig, RecordConfig, TeacherConfig, check_teachers,
                              from_args, resume_changes)
from atari_distill.pipelines.stopping import StopToken
from atari_distill.rundir.directory import ABANDONED, RunDir, check_new_folder
from atari_distill.ui import summaries


@dataclass(frozen=True)
class RunKind:
    help: str
    config: type
    run: Callable  # (cfg, run dir or None, resume state, echo, stop token) -> summary (record: the dataset index)
    lines: Callable  # (summary, path) -> the lines printed when it ends
    resumes: Callable | None = None  # cfg -> [(checkpoint series, metrics kind)] a resume continues; None: none

    @property
    def name(self) -> str:
        return self.config.KIND


def _run_distill(cfg, run, resume, echo, stop):
    from atari_distill.pipelines.distill import run_distill
    return run_distill(cfg, run, resume, echo=echo, stop=stop)


def _run_teacher(cfg, run, resume, echo, stop):
    from atari_distill.pipelines.teacher import run_teacher
    return run_teacher(cfg, run, (resume or {}).get("dqn"), echo=echo, stop=stop)


def _run_online(cfg, run, resume, echo, stop):
    from atari_distill.pipelines.online import run_online
    return run_online(cfg, run, resume, echo=echo, stop=stop)


def _run_record(cfg, run, resume, echo, stop):
    from atari_distill.pipelines.record import run_record
    return run_record(cfg, run, echo=echo, stop=stop)


def _distill_series(cfg) -> list[tuple[str, str]]:
    from atari_distill.pipelines.distill import checkpoint_series, metrics_kind
    return [(series, metrics_kind(series)) for series in checkpoint_series(cfg)]


RUN_KINDS = {kind.name: kind for kind in (
    RunKind("distill a teacher into a student", DistillConfig, _run_distill, summaries.distill_lines,
            _distill_series),
    RunKind("distill several games into one student, a head per game", MultitaskConfig, _run_distill,
            summaries.distill_lines, _distill_series),
    RunKind("train a DQN teacher (Double DQN, n-step, Adam)", TeacherConfig, _run_teacher,
            summaries.teacher_lines, lambda cfg: [("dqn", "dqn")]),
    RunKind("train a DQN and distill its best checkpoint so far, at once", OnlineConfig, _run_online,
            summaries.online_lines, lambda cfg: [("dqn", "dqn"), ("student", "student")]),
    RunKind("record a teacher's labelled chunks to a dataset directory", RecordConfig, _run_record,
            summaries.record_lines, lambda cfg: []),
)}


def new_run(kind: RunKind, args):
    """A validated config for a new run whose --out is free."""
    cfg = from_args(kind.config, args).validate()
    check_new_folder(cfg.run.out)
    check_teachers(cfg)
    return cfg


def resume_state(run: RunDir, series: str, metrics_kind: str, echo=print) -> dict | None:
    """The newest readable checkpoint of `series` (saying which it skipped), with metrics logged past
    it dropped so every interval appears once."""
    state, skipped = run.latest_checkpoint(series)
    for note in skipped:
        print(f"[resume] skipping unreadable checkpoint, falling back to the one before: {note}", file=sys.stderr)
    updates = state["updates"] if state is not None else 0
    dropped = run.trim_metrics(metrics_kind, updates, purge=True)
    if metrics_kind.startswith("distill"):  # its curve points past the checkpoint are drawn again
        curve = metrics_kind.replace("distill", "eval", 1)
        dropped += run.trim_metrics(curve, updates, purge=True) + run.trim_metrics(ABANDONED, updates, of=curve)
    if state is not None:
        echo(f"[resume] {run.path}: {series} continues at update {updates}"
              + (f" (dropped {dropped} metrics line(s) logged after that checkpoint)" if dropped else ""))
    return state


def open_for_resume(kind: RunKind, args, stop: StopToken | None = None, echo=print):
    """The run in --resume (locked until `stop` lets it go) and its config, with the flags given alongside
    applied if --override lists them."""
    run = RunDir.open(args.resume)
    run.lock()
    if stop is not None:
        stop.hold(run.unlock)
    stored = run.read_config()
    config_class = MultitaskConfig if kind.config is DistillConfig and "games" in stored else kind.config
    if config_class is MultitaskConfig:
        stored.setdefault("schedule", "fixed")  # runs from before --schedule trained with fixed shares
    changes = resume_changes(config_class, stored, args, args.override)
    cfg = config_class.from_dict({**stored, **changes}).validate()
    if changes:
        run.log({"time": time.time(), "overrides": {k: [stored.get(k), v] for k, v in changes.items()}}, "resumes.jsonl")
        run.write_config(cfg.to_json())
        echo(f"[resume] overriding {', '.join(f'{k} {stored.get(k)!r} -> {v!r}' for k, v in changes.items())}")
    return run, cfg


def start_or_resume(kind: RunKind, args, echo, stop: StopToken) -> tuple[object, object, dict]:
    """Runs a new run or the one in --resume to its end (or until `stop` is set); returns its config,
    its run directory's path and its summary."""
    try:
        if getattr(args, "resume", None):
            run, cfg = open_for_resume(kind, args, stop, echo)
            state = {checkpoint: resume_state(run, checkpoint, metrics, echo)
                     for checkpoint, metrics in kind.resumes(cfg)}
        else:
            cfg, run, state = new_run(kind, args), None, None
        summary = kind.run(cfg, run, state, echo, stop)
    finally:  # a run that raised leaves no placement or lock behind in a process that lives on
        stop.release_held()
    return cfg, (run.path if run else cfg.run.out), summary
