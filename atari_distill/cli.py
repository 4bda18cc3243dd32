"""The door in from a shell: `python launch.py COMMAND --help` (or `atari-distill`, or
`python -m atari_distill`) for each command's flags. A thin shell over atari_distill/api.py: the
flags and the API's keywords come from the same config sections.

    distill   teacher actors (or a recorded dataset) -> replay -> learner -> evaluation, into a run directory
    multitask several games -> one student with a head per game
    teacher   train a DQN teacher from scratch (its best checkpoint is a teacher for the others)
    online    train a DQN and, at the same time, distill its best checkpoint so far into a student
    record    teacher actors -> a dataset on disk, to distill many students from later
    evaluate  play a model (a run's student, a checkpoint, a teacher, an exported .onnx) and report its score
    export    a student or teacher as ONNX (optionally int8) or torch.export, parity-checked before it is written
    watch     a video of a student and its teacher playing the same episode start, side by side
    report    report.md and PNG plots from one or more run directories
    zoo       the trained teachers that ship with the project: list, add, re-check
    presets   list the network presets with their exact parameter counts
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from atari_distill.pipelines.stopping import StopToken


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit code 2."""

    def error(self, message: str):
        import difflib
        import re

        choice = re.match(r"argument .*: invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:  # any mistyped choice (a command, a flag's value) gets the nearest spelling
            options = re.findall(r"'([^']*)'", choice.group(2))
            near = difflib.get_close_matches(choice.group(1), options, n=1)
            if near:
                message += f"; did you mean: {near[0]}"
        sys.stderr.write(f"error: {self.prog}: {message}; see --help\n")
        sys.exit(2)


def cmd_run(args) -> int:
    """Any run kind of pipelines/commands.py: new or --resume, to its end or a stop."""
    from atari_distill.pipelines.commands import start_or_resume
    from atari_distill.ui.progress import Progress
    from atari_distill.ui.summaries import stopped

    progress = Progress("", 1, "updates")  # a live panel on a terminal, plain lines elsewhere
    try:
        cfg, path, summary = start_or_resume(args.kind, args, progress, args.stop)
    finally:
        progress.close()
    if not summary.get("complete", True):
        print(stopped(summary, args.kind.name, path))
        return args.stop.exit_code()
    print("\n".join(args.kind.lines(summary, path)))
    return 0


def tool_settings(args, config) -> dict:
    """The flags given to a tool command, by keyword, as the API takes them."""
    from atari_distill.pipelines.config_tree import walk

    return {f.name: getattr(args, f.name) for f in walk(config) if hasattr(args, f.name)}


def cmd_evaluate(args) -> int:
    from atari_distill import api
    from atari_distill.pipelines.tool_config import EvaluateConfig

    settings = tool_settings(args, EvaluateConfig)
    done = api.evaluate(**settings, echo=lambda line: print(line, flush=True))
    result, s = done.result, EvaluateConfig.from_flags(**settings)
    interval = "no 95% CI from one episode" if result.ci95 is None else f"95% CI +/- {result.ci95:.2f}"
    from atari_distill.actors.games import game_spec

    print(f"{game_spec(done.game).title}: mean {result.mean:.2f}, {interval}, median {result.median:.2f}, "
          f"min {result.min:.0f}, max {result.max:.0f}, mean length {result.mean_length:.0f} steps "
          f"({result.episodes} episodes, no-op starts <= {s.noop_max}, epsilon {s.epsilon}, env mode {done.env_mode})")
    if args.json:
        import json

        print(json.dumps(result.as_dict()))
    return 0


def cmd_export(args) -> int:
    from atari_distill import api
    from atari_distill.pipelines.export import export_lines
    from atari_distill.pipelines.tool_config import ExportConfig

    done = api.export(**tool_settings(args, ExportConfig), echo=lambda line: print(line, flush=True))
    print("\n".join(export_lines(done.metadata, str(done.path))))
    return 0


def cmd_watch(args) -> int:
    from atari_distill import api
    from atari_distill.pipelines.tool_config import WatchConfig

    done = api.watch(**tool_settings(args, WatchConfig), echo=lambda line: print(line, flush=True))
    scores = ", ".join(f"{name} {score:,.0f}" + ("" if done.ended[name] else " (cut)")
                       for name, score in done.scores.items())
    print(f"{done.game}: {scores} over {done.steps:,} steps")
    print(f"[watch] wrote {done.video} and its still {done.still}")
    return 0


def cmd_report(args) -> int:
    from atari_distill import api

    done = api.report(args.runs, args.out, csv=args.csv)
    print(f"[report] wrote {done.path} with plots: {', '.join(done.plots) or 'none'}"
          + (f"; tables {', '.join(str(t) for t in done.tables)}" if done.tables else ""))
    return 0


def cmd_zoo(args) -> int:
    from atari_distill.evaluation.episodes import score_text
    from atari_distill.zoo import catalog

    for flag, value in (("--episodes", args.episodes), ("--workers", args.workers)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if args.add:
        from atari_distill.cluster.runtime import connect
        from atari_distill.zoo.publish import publish

        connect(None, cpus_needed=args.workers, without_ray=None)
        card = publish(args.add, args.episodes, args.workers, args.version)
        print(f"[zoo] added {card['game']}: {catalog.describe(card)}")
        return 0
    if args.rescore:
        from atari_distill.cluster.runtime import connect
        from atari_distill.zoo.publish import rescore

        connect(None, cpus_needed=args.workers, without_ray=None)
        for game in catalog.games() if args.rescore == "all" else [args.rescore]:
            card = rescore(game, args.episodes, args.workers)
            old = card["history"][0]["score"]
            print(f"[zoo] rescored {card['game']}: {score_text(old['mean'], old['ci95'], old['episodes'], 1)} -> "
                  f"{score_text(card['score']['mean'], card['score']['ci95'], card['score']['episodes'], 1)}", flush=True)
        return 0
    if args.verify:
        from atari_distill.zoo.publish import verify

        card, result, agrees = verify(args.verify, args.episodes, args.workers)
        known = card["score"]
        print(f"{card['title']}: card {score_text(known['mean'], known['ci95'], known['episodes'], 1)}; "
              f"now {result.text(1)}: {'consistent' if agrees else 'NOT consistent'} with the card")
        return 0 if agrees else 1
    if args.markdown:
        print(catalog.markdown_table(), end="")
        return 0
    cards = [catalog.card(g) for g in catalog.games()]
    if not cards:
        print("the zoo is empty; add a teacher run with: python launch.py zoo --add RUN_DIR")
        return 0
    print(f"{'game':<15} {'preset':<7} {'params':>10} {'score':>9}  {'95% CI':<8} {'random':>8}  {'95% CI':<7} "
          f"{'frames':>11}  dtype   (use as --teacher zoo:GAME)")
    for card in cards:
        print(catalog.describe(card))
    return 0


def cmd_presets(args) -> int:
    from atari_distill.actors.games import PAPER_GAMES, game_spec
    from atari_distill.models.networks import preset_table
    from atari_distill.pipelines.config import MultitaskConfig

    games = {"multi-3": MultitaskConfig.DEFAULT_GAMES.split(","), "multi-10": list(PAPER_GAMES)}
    heads = {preset: {g: game_spec(g).num_actions for g in names} for preset, names in games.items()}
    print(f"{'preset':<10} {'params':>10} {'% nature':>9}  description  (one head of {args.actions} actions; "
          f"a multi-task preset with its games' heads)")
    for row in preset_table(args.actions, heads):
        counted = "" if row["heads"] is None else (
            f" [counted with {len(row['heads'])} heads: "
            + ", ".join(f"{g} {n}" for g, n in row["heads"].items()) + " actions]")
        print(f"{row['preset']:<10} {row['params']:>10,} {row['pct_of_nature']:>8.1f}%  {row['description']}{counted}")
    return 0


def add_run_kinds(commands) -> None:
    from atari_distill.pipelines.commands import RUN_KINDS
    from atari_distill.pipelines.config import add_flags

    for kind in RUN_KINDS.values():
        parser = commands.add_parser(kind.name, help=kind.help)
        add_flags(parser, kind.config)
        if kind.resumes:
            parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last "
                                                                    "checkpoint(s)")
            parser.add_argument("--override", metavar="KEYS", help=f"with --resume: config keys the flags given may "
                                                                   f"change (comma-separated, e.g. "
                                                                   f"{kind.config.OVERRIDE_EXAMPLE})")
        # runs that resume can stop at an interval with a checkpoint
        parser.set_defaults(func=cmd_run, kind=kind, graceful=bool(kind.resumes))


def add_model_tools(commands) -> None:
    """evaluate, export and watch: their flags from pipelines/tool_config.py, as the API's keywords."""
    from atari_distill.pipelines.config_tree import add_flags
    from atari_distill.pipelines.tool_config import TOOLS

    handlers = {"evaluate": cmd_evaluate, "export": cmd_export, "watch": cmd_watch}
    for name, config in TOOLS.items():
        parser = commands.add_parser(name, help=config.HELP)
        add_flags(parser, config)
        if name == "evaluate":  # how the result is shown: the CLI's alone
            parser.add_argument("--json", action="store_true", help="also print the result as JSON")
        parser.set_defaults(func=handlers[name])


def add_tools(commands) -> None:
    report = commands.add_parser("report", help="write report.md and PNG plots from run directories")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (any command's --out)")
    report.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for report.md and the plots")
    report.add_argument("--csv", action="store_true", help="also metrics.csv (every metrics line of every run) and "
                                                           "results.csv (a row per student and game); needs pandas")
    report.set_defaults(func=cmd_report)

    zoo = commands.add_parser("zoo", help="list the zoo's teachers; --add a teacher run; --verify GAME")
    zoo.add_argument("--add", metavar="RUN_DIR", help="publish a teacher run's best checkpoint with a card")
    zoo.add_argument("--version", type=int, default=None, help="with --add: publish this checkpoint version instead")
    zoo.add_argument("--verify", metavar="GAME", help="play GAME's zoo teacher on episodes its card was not scored on "
                                                      "and compare with the card")
    zoo.add_argument("--rescore", metavar="GAME", help="score GAME's card again on the card protocol's report seeds "
                                                       "('all': every card); the old figure goes into its history")
    zoo.add_argument("--markdown", action="store_true", help="print the list as the README's markdown table")
    zoo.add_argument("--episodes", type=int, default=30, help="episodes per evaluation (default: 30)")
    zoo.add_argument("--workers", type=int, default=2, help="evaluator actors (default: 2)")
    zoo.set_defaults(func=cmd_zoo)

    presets = commands.add_parser("presets", help="list network presets and parameter counts")
    presets.add_argument("--actions", type=int, default=18, help="action count for the head (default: 18, as the "
                                                                 "paper counts)")
    presets.set_defaults(func=cmd_presets)


def build_parser() -> Parser:
    name = Path(sys.argv[0]).name
    prog = {"atari-distill": "atari-distill", "__main__.py": "python -m atari_distill"}.get(name, "launch.py")
    parser = Parser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_run_kinds(commands)
    add_model_tools(commands)
    add_tools(commands)
    return parser


def save_traceback(args) -> str:
    """The current exception's traceback, in the run directory when there is one, else a temp file."""
    import tempfile
    import traceback

    folder = Path(getattr(args, "resume", None) or getattr(args, "out", None) or tempfile.gettempdir())
    if not folder.is_dir():
        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    path.write_text(traceback.format_exc())
    return str(path)


def report_error(args, error: Exception) -> int:
    """A problem the user can fix (every one of ours is a ValueError with a one-line message) is that
    line and exit code 2; anything else is a bug, with its traceback saved."""
    from atari_distill.cluster.runtime import RayUnavailable

    cause = getattr(error, "cause", None) or error  # Ray wraps an actor's exception
    if isinstance(cause, RayUnavailable):
        sys.stderr.write(f"error: {cause}\n")
        return RUNTIME_LOST
    if isinstance(cause, (ValueError, TimeoutError)):
        sys.stderr.write(f"error: {cause}\n")
        return 2
    saved = save_traceback(args)
    first = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else ""
    sys.stderr.write(f"error: internal error, a bug: {type(cause).__name__}: {first} (traceback saved to "
                     f"{saved}; rerun with --debug to see it here, and please report it)\n")
    return 1


RUNTIME_LOST = 75  # EX_TEMPFAIL: nothing is wrong with the run; resume it once Ray is back


def runtime_lost(args, console):
    """What the watchdog does when the Ray runtime goes away under a command: one line with the way on, then exit."""
    import os

    def lost(address: str) -> None:
        path = getattr(args, "resume", None) or getattr(args, "out", None)
        kind = getattr(args, "kind", None)
        then = (f"every checkpoint written so far is intact: continue with python launch.py {args.command} --resume "
                f"{path}") if kind is not None and kind.resumes else "run the command again"
        line = f"error: the Ray runtime went away (its GCS at {address} stopped answering: a `ray stop`, or the head " \
               f"node was lost); {then}\n"
        try:
            os.write(console.terminal if console is not None else 2, line.encode())
        except OSError:  # the console filter has just closed its end
            os.write(2, line.encode())
        if console is not None:
            console.save(path)
        os._exit(RUNTIME_LOST)
    return lost


class SignalStop:
    """The CLI's signal handlers, for one command: the first Ctrl-C (SIGINT) or SIGTERM asks the run to
    stop at the end of its interval, where it writes a final checkpoint, its metrics and a summary
    marked incomplete; a second raises KeyboardInterrupt at once. Once the command has returned
    (`finished`), a signal exits with its code at once rather than interrupt Ray's shutdown."""

    def __init__(self, stop: StopToken):
        self.stop, self.exit_code = stop, None

    def handle(self, signum, frame) -> None:
        import os
        import signal

        if self.exit_code is not None:
            os._exit(self.exit_code)
        if self.stop.requested() is not None:
            raise KeyboardInterrupt
        self.stop.request(signal.Signals(signum).name)
        sys.stderr.write(f"\n{self.stop.requested()}: stopping after this interval with a final checkpoint and "
                         f"summary; press Ctrl-C again to exit at once\n")

    @contextlib.contextmanager
    def installed(self, keep: bool):
        """With `keep` (the script, which exits next) the handlers stay after the command."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            if not keep:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)


def main(argv: list[str] | None = None, script: bool = False) -> int:
    from atari_distill.cluster import runtime
    from atari_distill.ui.console import ConsoleFilter

    args = build_parser().parse_args(argv)
    if getattr(args, "override", None) and not args.resume:
        sys.stderr.write("error: --override only applies with --resume RUN_DIR; drop it\n")
        return 2
    args.stop = StopToken()
    signals = SignalStop(args.stop)
    graceful = getattr(args, "graceful", False)
    code = 1
    console = ConsoleFilter() if script and not args.debug else None
    if script:  # a library caller (a test) keeps its own process
        runtime.on_runtime_lost(runtime_lost(args, console))
        runtime.forward_worker_logs(console is None)
    with signals.installed(keep=script) if graceful else contextlib.nullcontext(), console or contextlib.nullcontext():
        try:
            code = args.func(args)
        except BrokenPipeError:  # `... | head`: the reader has what it wanted
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = 141
        except Exception as error:
            if args.debug:
                raise
            code = report_error(args, error)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            code = 130
        finally:
            runtime.on_runtime_lost(None)
            signals.exit_code = code
    if console is not None:
        console.save(getattr(args, "resume", None) or getattr(args, "out", None))
    return code


def console_script() -> None:
    """`atari-distill COMMAND ...`, the installed name of `python launch.py COMMAND ...`."""
    sys.exit(main(script=True))


if __name__ == "__main__":
    console_script()
