"""The Python door in: every command as a function whose keywords are its flags.

The keywords are generated from the same config sections as the CLI's flags (one source of
truth: `updates=2000` is `--updates 2000`), so the two cannot drift. A run returns a `RunResult`;
a bad setting raises `ConfigError` with the line the CLI would print. Nothing here is global to
the process: each run gets its own `StopToken`, and a KeyboardInterrupt (a notebook's interrupt
button) stops the run at the end of its interval with a final checkpoint, as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from atari_distill.evaluation.episodes import EvalResult
from atari_distill.evaluation.protocol import REPORT, EvalProtocol
from atari_distill.cluster.errors import ConfigError
from atari_distill.pipelines.commands import RUN_KINDS, start_or_resume
from atari_distill.pipelines.config_tree import walk
from atari_distill.pipelines.stopping import StopToken
from atari_distill.pipelines.tool_config import TOOLS
from atari_distill.rundir.result import RunResult, Score
from atari_distill.rundir.summary import VERSION
from atari_distill.ui.progress import Progress

API_ONLY = ("stop", "on_metrics", "echo")  # keywords with no flag: what a caller in Python hands a run


def _signature(flags, extra: list[inspect.Parameter], returns) -> inspect.Signature:
    params = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                default=inspect.Parameter.empty if f.required else f.default, annotation=f.type)
              for f in flags]
    return inspect.Signature(params + extra, return_annotation=returns)


def _check_keywords(command: str, given: dict, known: list[str]) -> None:
    unknown = [name for name in given if name not in known]
    if unknown:
        near = difflib.get_close_matches(unknown[0], known, n=1)
        raise ConfigError(f"{command}() has no setting {unknown[0]!r}" + (f"; did you mean {near[0]}?" if near else
                                                                          f"; see help(atari_distill.{command})"))


def _typed(command: str, given: dict, flags) -> dict:
    """The settings as the config takes them: a path may be a Path; a value of another type is refused
    here in one line rather than failing deep inside a run."""
    by_name = {f.name: f for f in flags}
    settings = {}
    for name, value in given.items():
        value = os.fspath(value) if isinstance(value, os.PathLike) else value
        if not by_name[name].takes(value):
            raise ConfigError(f"{command}({name}={value!r}): {name} takes {by_name[name].type}, not "
                              f"{type(value).__name__}")
        settings[name] = value
    return settings


def _silent_if_none(echo):
    return echo or (lambda text: None)


@contextlib.contextmanager
def _user_errors():
    """What the CLI prints as one line (exit code 2), raised as ConfigError: every error a user can fix
    is a ValueError (tests/test_layers.py), and Ray wraps one an actor raised."""
    try:
        yield
    except Exception as error:
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(str(cause)) from error
        raise


def _keyword(name: str, default=None, annotation="") -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


class _NotMainThreadWarning(logging.Filter):
    """Ray warns that a driver started off the main thread sets no SIGTERM handler: the API runs its
    run in a thread on purpose (so an interrupt reaches the main thread), and the CLI alone handles signals."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


_RUNS = None  # the one thread every run from Python executes on, started by the first


def _run_thread() -> ThreadPoolExecutor:
    """One thread for the process's runs, kept for its life: Ray starts its GCS and raylet to die with
    the thread that started them (Linux's parent-death signal follows the thread, not the process), so
    a thread per run would take the runtime down with the first run that ends."""
    global _RUNS
    if _RUNS is None:
        _RUNS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atari-distill-run")
    return _RUNS


def interruptible(work: Callable, stop: StopToken, echo=print):
    """`work()`, with a KeyboardInterrupt turned into a stop request: the run ends its interval and
    writes a final checkpoint and summary. A second interrupt lets go of its placement (which ends its
    actors) and its run directory's lock, and raises: the run then ends on its lost actors."""
    if threading.current_thread() is not threading.main_thread():
        return work()  # only the main thread receives interrupts
    quiet = _NotMainThreadWarning()
    logging.getLogger("ray._private.worker").addFilter(quiet)
    interrupts = 0
    try:
        future = _run_thread().submit(work)
        while True:
            try:
                return future.result(timeout=0.1)
            except FutureTimeout:
                continue
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 1:  # at once: what the run holds is let go, and the run ends on the error
                    stop.release_held()
                    raise
                stop.request("KeyboardInterrupt")
                echo("KeyboardInterrupt: stopping after this interval with a final checkpoint and summary; "
                     "interrupt again to stop at once")
    finally:
        logging.getLogger("ray._private.worker").removeFilter(quiet)


def run(command: str, *, resume: str | None = None, override: str | None = None, stop: StopToken | None = None,
        on_metrics: Callable[[dict], None] | None = None, echo: Callable[[str], None] | None = print,
        **settings) -> RunResult:
    """Runs one run kind (`command`: distill, multitask, teacher, online, record) to its end or a stop."""
    kind = RUN_KINDS[command]
    _check_keywords(command, settings, [f.name for f in walk(kind.config)])
    settings = _typed(command, settings, walk(kind.config))
    resume = os.fspath(resume) if isinstance(resume, os.PathLike) else resume
    if override and not resume:
        raise ConfigError("override only applies with resume=RUN_DIR; drop it")
    if resume and not kind.resumes:
        raise ConfigError(f"{command} runs do not resume")
    stop = stop if stop is not None else StopToken()
    write = _silent_if_none(echo)
    progress = Progress("", 1, "updates", write=write, live=False, on_metrics=on_metrics)
    args = argparse.Namespace(**settings, resume=resume, override=override)
    with _user_errors():
        cfg, path, summary = interruptible(lambda: start_or_resume(kind, args, progress, stop), stop, write)
    if command != "record":
        return RunResult.from_summary(summary, path)  # as its summary.json holds it
    # a recording writes its index.json, not a summary: its result says what it recorded
    return RunResult.from_summary({**summary, "kind": command, "complete": not summary.get("stopped_by"),
                                   "version": VERSION, "wall_s": None}, path)


def _run_function(command: str) -> Callable[..., RunResult]:
    kind = RUN_KINDS[command]

    def run_kind(**settings) -> RunResult:
        return run(command, **settings)

    extra = [_keyword("resume", annotation="str | None"), _keyword("override", annotation="str | None")] \
        if kind.resumes else []
    extra += [_keyword("stop", annotation="StopToken | None"), _keyword("on_metrics", annotation="Callable | None"),
              _keyword("echo", print, "Callable | None")]
    run_kind.__name__ = run_kind.__qualname__ = command
    run_kind.__signature__ = _signature(walk(kind.config), extra, RunResult)
    run_kind.__doc__ = (f"{kind.help[0].upper()}{kind.help[1:]}: `python launch.py {command}` from Python.\n\n"
                        f"Each keyword is the flag of the same name (eval_every=500 is --eval-every 500); "
                        f"`resume`/`override` continue a run; `stop` (a StopToken) ends it early with a final "
                        f"checkpoint, as a KeyboardInterrupt does; `on_metrics` is handed every metrics record; "
                        f"`echo` every progress line (None: silent). Returns the run's RunResult.\n\n"
                        + "\n".join(f"    {f.name}: {f.help}" for f in walk(kind.config)))
    return run_kind


distill = _run_function("distill")
multitask = _run_function("multitask")
teacher = _run_function("teacher")
online = _run_function("online")
record = _run_function("record")


@dataclass(frozen=True)
class Evaluation:
    game: str
    env_mode: str
    score: Score  # on the report seeds of run seed `seed`
    result: EvalResult  # median, min, max, lengths and every episode's return


@dataclass(frozen=True)
class Exported:
    path: Path
    metadata: dict  # what the file carries: source, preset, parity per game, precision


@dataclass(frozen=True)
class Watched:
    video: Path
    still: Path
    game: str
    scores: dict[str, float]  # "student (...)", "teacher (...)" -> the return each played
    ended: dict[str, bool]  # whether each episode ended within max_steps (else it was cut)
    steps: int


def _tool_settings(command: str, settings: dict):
    config = TOOLS[command]
    flags = walk(config)
    _check_keywords(command, settings, [f.name for f in flags])
    missing = [f.name for f in flags if f.required and not settings.get(f.name)]
    if missing:
        raise ConfigError(f"{command} needs {missing[0]}= (--{missing[0].replace('_', '-')})")
    return config.from_flags(**_typed(command, settings, flags))


def _evaluate(*, echo: Callable[[str], None] | None = print, **settings) -> Evaluation:
    from atari_distill.evaluation.command import run_evaluate

    s = _tool_settings("evaluate", settings)
    spec, result, env_mode = run_evaluate(s.checkpoint, s.game, s.episodes, s.workers, s.epsilon, s.noop_max,
                                          s.sticky_actions, s.env_mode, s.address, s.seed, s.series,
                                          echo=_silent_if_none(echo), runner=s.runner)
    seeds = EvalProtocol(seed=s.seed).seed_base(REPORT)
    return Evaluation(spec.name, env_mode, Score(result.mean, result.ci95, result.episodes, seeds,
                                                 tuple(result.scores)), result)


def _export(*, echo: Callable[[str], None] | None = print, **settings) -> Exported:
    from atari_distill.pipelines.export import default_out, run_export

    s = _tool_settings("export", settings)
    out = s.out or default_out(s.checkpoint, s.game, s.series, s.int8)
    metadata = run_export(s.checkpoint, s.out, s.game, s.series, s.int8, s.parity_frames, s.min_agreement, s.seed,
                          s.force, echo=_silent_if_none(echo))
    return Exported(Path(out), metadata)


def _watch(*, echo: Callable[[str], None] | None = print, **settings) -> Watched:
    from atari_distill.pipelines.watch import run_watch

    s = _tool_settings("watch", settings)
    done = run_watch(s.student, s.teacher, s.game, s.out, s.series, s.seed, s.max_steps,
                     echo=_silent_if_none(echo))
    return Watched(Path(done["video"]), Path(done["still"]), done["game"], dict(done["scores"]),
                   dict(done["ended"]), done["steps"])


def _tool_function(command: str, body: Callable, returns) -> Callable:
    def tool(**settings):
        with _user_errors():
            return body(**settings)

    tool.__name__ = tool.__qualname__ = command
    tool.__signature__ = _signature(walk(TOOLS[command]), [_keyword("echo", print, "Callable | None")], returns)
    tool.__doc__ = (f"{TOOLS[command].HELP[0].upper()}{TOOLS[command].HELP[1:]}: `python launch.py {command}` from "
                    f"Python; each keyword is the flag of the same name.\n\n"
                    + "\n".join(f"    {f.name}: {f.help}" for f in walk(TOOLS[command])))
    return tool


evaluate = _tool_function("evaluate", _evaluate, Evaluation)
export = _tool_function("export", _export, Exported)
watch = _tool_function("watch", _watch, Watched)


@dataclass(frozen=True)
class Report:
    path: Path  # report.md
    plots: list[str]
    tables: list[Path] = field(default_factory=list)  # with csv=True: metrics.csv and results.csv


def report(runs: list[str], out: str, csv: bool = False) -> Report:
    """report.md and PNG plots comparing `runs` (any commands' run directories), written into `out`;
    `csv`: their metrics and results as CSV tables too (needs pandas)."""
    from atari_distill.ui.report import write_report

    if isinstance(runs, (str, Path)):
        runs = [runs]
    with _user_errors():
        written = write_report([str(r) for r in runs], str(out), csv=csv)
    return Report(Path(written["report"]), list(written["plots"]), [Path(t) for t in written["tables"]])

