#!/usr/bin/env python
"""The one door in: `python launch.py COMMAND --help` for each command's flags.

    distill   teacher actors (or a recorded dataset) -> replay -> learner -> evaluation, into a run directory
    multitask several games -> one student with a head per game
    teacher   train a DQN teacher from scratch (its best checkpoint is a teacher for the others)
    online    train a DQN and, at the same time, distill its best checkpoint so far into a student
    record    teacher actors -> a dataset on disk, to distill many students from later
    evaluate  play a checkpoint (student or teacher) and report its score
    report    report.md and PNG plots from one or more run directories
    zoo       the trained teachers that ship with the project: list, add, re-check
    presets   list the network presets with their exact parameter counts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path


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


def user_errors() -> tuple[type[BaseException], ...]:
    from actors.games import UnknownGameError
    from cluster.registry import RegistryError
    from models.checkpoint import CheckpointError, WriteError
    from models.networks import UnknownPresetError
    from pipelines.config import ConfigError
    from pipelines.rundir import RunDirError
    from replay.chunk import ChunkError
    from replay.dataset import DatasetError
    from replay.memory_plan import MemoryPlanError
    from ui.report import ReportError
    from zoo.catalog import ZooError

    return (ConfigError, UnknownGameError, RunDirError, CheckpointError, UnknownPresetError, ChunkError,
            DatasetError, MemoryPlanError, RegistryError, ReportError, WriteError, ZooError)


def cmd_distill(args, config_class=None) -> int:
    from actors.evaluate import score_text
    from pipelines.config import DistillConfig, MultitaskConfig
    from pipelines.distill import learner_kinds, metrics_kind, run_distill

    config_class = config_class or DistillConfig
    if args.resume:
        run, cfg = open_for_resume(args, lambda stored: MultitaskConfig if "games" in stored else DistillConfig)
        state = {kind: resume_state(run, kind, metrics_kind(kind)) for kind in learner_kinds(cfg)}
    else:
        cfg, run, state = new_run(config_class, args), None, None
    summary = with_progress(lambda progress: run_distill(cfg, run, state, echo=progress))
    if not summary["complete"]:
        return stopped(summary, "distill", cfg.out if run is None else run.path)
    games = summary.get("games") or [summary["game"]]
    for game in games:
        teacher = summary["per_game"][game] if "per_game" in summary else summary
        t = teacher["teacher_score"]
        print(f"{game}: teacher {score_text(t['mean'], t['ci95'], t['episodes'])}, "
              f"majority-action baseline {teacher['majority_baseline']:.3f}")
    for row in summary["students"]:
        results = row.get("per_game") or {games[0]: row}
        for game, result in results.items():
            score, pct = result["student_score"], result["student_pct_of_teacher"]
            print(f"{game}: {row['student']} ({row['student_params']:,} params, {row['loss']}, {row['updates']} updates)"
                  f" {score_text(score['mean'], score['ci95'], score['episodes'])}; agreement "
                  f"{result['action_agreement']:.3f}; {percent(pct)} of teacher")
        if "geometric_mean_pct_of_teacher" in row:
            print(f"{row['student']}/{row['loss']}: geometric mean % of teacher "
                  f"{percent(row['geometric_mean_pct_of_teacher'])} over {', '.join(row['geometric_mean_over']) or 'no game'}")
    restarts = summary["restarts"]
    if restarts["actors"] or restarts["learners"]:
        print(f"restarts: {restarts['actors']} actor(s), {restarts['learners']} learner(s)")
    print(f"[distill] wrote {cfg.out if run is None else run.path}")
    return 0


def number(value, missing: str = "not scored") -> str:
    return missing if value is None else f"{value:.2f}"


def percent(value) -> str:
    """A % of teacher, or n/a where the teacher's score is not positive."""
    return "n/a" if value is None else f"{value:.0f}%"


def new_run(config_class, args):
    """A validated config for a new run whose --out is free, all before Ray starts."""
    from pipelines.config import check_teachers, from_args
    from pipelines.rundir import check_new_folder

    cfg = from_args(config_class, args).validate()
    check_new_folder(cfg.out)
    check_teachers(cfg)
    return cfg


def with_progress(job):
    """Runs `job(progress)` with a live panel on a terminal (plain lines elsewhere), closed however it ends."""
    from ui.progress import Progress

    progress = Progress("", 1, "updates")
    try:
        return job(progress)
    finally:
        progress.close()


def resume_state(run, kind: str, metrics_kind: str) -> dict | None:
    """The newest readable checkpoint of `kind` (saying which it skipped), with metrics logged past
    it dropped so every interval appears once."""
    state, skipped = run.latest_checkpoint(kind)
    for note in skipped:
        print(f"[resume] skipping unreadable checkpoint, falling back to the one before: {note}", file=sys.stderr)
    updates = state["updates"] if state is not None else 0
    dropped = run.trim_metrics(metrics_kind, updates, purge=True)
    if state is not None:
        print(f"[resume] {run.path}: {kind} continues at update {updates}"
              + (f" (dropped {dropped} metrics line(s) logged after that checkpoint)" if dropped else ""))
    return state


def open_for_resume(args, config_class):
    """The run in --resume and its config, with the flags given alongside applied if --override lists them."""
    import dataclasses

    from pipelines.config import resume_changes
    from pipelines.rundir import RunDir

    run = RunDir.open(args.resume)
    run.lock()
    stored = run.read_config()
    config_class = config_class(stored) if not isinstance(config_class, type) else config_class
    changes = resume_changes(config_class, stored, args, args.override)
    cfg = config_class.from_dict({**stored, **changes}).validate()
    if changes:
        run.log({"time": time.time(), "overrides": {k: [stored.get(k), v] for k, v in changes.items()}}, "resumes.jsonl")
        run.write_config(json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True))
        print(f"[resume] overriding {', '.join(f'{k} {stored.get(k)!r} -> {v!r}' for k, v in changes.items())}")
    return run, cfg


def stopped(summary: dict, command: str, path) -> int:
    from pipelines import stopping

    if summary.get("updates"):
        print(f"[{command}] stopped by {summary.get('stopped_by')} at update {summary.get('updates')}; wrote a final "
              f"checkpoint and an incomplete summary; continue with: python launch.py {command} --resume {path}")
    else:
        print(f"[{command}] stopped by {summary.get('stopped_by')} before the first update, so there is no checkpoint "
              f"to write; an incomplete summary is in {path}; start it afresh with: python launch.py {command} "
              f"--resume {path}")
    return stopping.exit_code()


def cmd_teacher(args) -> int:
    from pipelines.config import TeacherConfig
    from pipelines.teacher import run_teacher

    if args.resume:
        run, cfg = open_for_resume(args, TeacherConfig)
        state = resume_state(run, "dqn", "dqn")
    else:
        cfg, run, state = new_run(TeacherConfig, args), None, None
    summary = with_progress(lambda progress: run_teacher(cfg, run, state, echo=progress))
    if not summary["complete"]:
        return stopped(summary, "teacher", cfg.out if run is None else run.path)
    best = summary["best"] or {}
    print(json.dumps({k: summary[k] for k in ("game", "frames", "updates", "wall_s")}))
    print(f"best checkpoint: {best.get('checkpoint')} (version {best.get('version')}, score {best.get('score')}, "
          f"at {best.get('frames')} frames)")
    return 0


def cmd_online(args) -> int:
    from pipelines.config import OnlineConfig
    from pipelines.online import run_online

    if args.resume:
        run, cfg = open_for_resume(args, OnlineConfig)
        state = {kind: resume_state(run, kind, kind) for kind in ("dqn", "student")}
    else:
        cfg, run, state = new_run(OnlineConfig, args), None, None
    summary = with_progress(lambda progress: run_online(cfg, run, state, echo=progress))
    if not summary["complete"]:
        return stopped(summary, "online", cfg.out if run is None else run.path)
    print(json.dumps({k: summary[k] for k in ("game", "frames", "updates", "student_updates", "wall_s")}))
    for row in summary["timeline"]:
        best = "not scored" if row["best_version"] is None else f"{number(row['best_score'])} (v{row['best_version']})"
        print(f"frames {row['frames']:>10,}: dqn {number(row['dqn_score'])}, best so far {best}, student "
              f"{number(row['student_score'], 'not trained yet')}")
    print(f"final: student {summary['student_score']['mean']:.2f}, best teacher {summary['teacher_score']['mean']:.2f}"
          f" ({percent(summary['student_pct_of_teacher'])} of teacher)")
    return 0


def cmd_record(args) -> int:
    from pipelines.config import RecordConfig
    from pipelines.record import run_record

    cfg = new_run(RecordConfig, args)
    index = with_progress(lambda progress: run_record(cfg, echo=progress))
    print(json.dumps({k: index[k] for k in ("game", "steps", "chunks", "teacher")}))
    return 0


def cmd_evaluate(args) -> int:
    from actors.env import EVAL_SEED_OFFSET, env_config_for, resolve_env_mode
    from actors.evaluate import evaluate_parallel, evaluate_policy
    from actors.games import game_spec
    from actors.teachers import load_teacher
    from cluster.runtime import connect
    from pipelines.config import zoo_game

    if args.game is None:
        args.game = zoo_game(args.checkpoint)
        if args.game is None:
            raise ValueError("--game is required (it is optional only with --checkpoint zoo:GAME)")
    game = game_spec(args.game)
    for ok, problem in ((args.episodes >= 1, f"--episodes must be at least 1, got {args.episodes}"),
                        (args.workers >= 1, f"--workers must be at least 1, got {args.workers}"),
                        (0 <= args.epsilon <= 1, f"--epsilon must be in [0, 1], got {args.epsilon}"),
                        (0 <= args.noop_max <= 1000, f"--noop-max must be in [0, 1000], got {args.noop_max}")):
        if not ok:
            raise ValueError(problem)
    payload = load_teacher(args.checkpoint, game, args.seed)
    env_config = env_config_for(args.env_mode, payload, args.noop_max, args.sticky_actions)
    kwargs = dict(env_config=env_config, epsilon=args.epsilon, seed=args.seed + EVAL_SEED_OFFSET)
    print(f"[evaluate] {game.title}: playing {args.episodes} episode(s) on {args.workers} worker(s)", flush=True)
    if args.workers == 1 and not args.address:
        result = evaluate_policy(payload, game.name, args.episodes, **kwargs)
    else:
        connect(args.address, cpus_needed=args.workers)
        result = evaluate_parallel(payload, game.name, args.episodes, args.workers, **kwargs)
    interval = "no 95% CI from one episode" if result.ci95 is None else f"95% CI +/- {result.ci95:.2f}"
    print(f"{game.title}: mean {result.mean:.2f}, {interval}, median {result.median:.2f}, "
          f"min {result.min:.0f}, max {result.max:.0f}, mean length {result.mean_length:.0f} steps "
          f"({result.episodes} episodes, no-op starts <= {args.noop_max}, epsilon {args.epsilon}, "
          f"env mode {resolve_env_mode(args.env_mode, payload)})")
    if args.json:
        print(json.dumps(result.as_dict()))
    return 0


def cmd_report(args) -> int:
    from ui.report import write_report

    result = write_report(args.runs, args.out)
    print(f"[report] wrote {result['report']} with plots: {', '.join(result['plots']) or 'none'}")
    return 0


def cmd_zoo(args) -> int:
    from actors.env import EVAL_SEED_OFFSET, env_config_for
    from actors.evaluate import evaluate_parallel, score_text
    from actors.games import canonical_name, game_spec
    from actors.teachers import load_teacher
    from cluster.runtime import connect
    from zoo import catalog

    for flag, value in (("--episodes", args.episodes), ("--workers", args.workers)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    if args.add:
        connect(None, cpus_needed=args.workers)
        from zoo.publish import publish

        card = publish(args.add, args.episodes, args.workers, args.version)
        print(f"[zoo] added {card['game']}: {catalog.describe(card)}")
        return 0
    if args.verify:
        game = canonical_name(args.verify)
        card = catalog.card(game)
        catalog.teacher_path(f"zoo:{game}")  # the weights are the card's, before Ray starts
        connect(None, cpus_needed=args.workers)
        teacher = load_teacher(f"zoo:{game}", game_spec(game))
        result = evaluate_parallel(teacher, game, args.episodes, args.workers, seed=EVAL_SEED_OFFSET,
                                   env_config=env_config_for("auto", teacher, catalog.CARD_NOOP_MAX, False))
        agrees = catalog.overlaps(result.as_dict(), card["score"])
        card_score = card["score"]
        print(f"{card['title']}: card {score_text(card_score['mean'], card_score['ci95'], card_score['episodes'], 1)}; "
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
    from models.networks import preset_table

    print(f"{'preset':<10} {'params':>10} {'% nature':>9}  description  ({args.actions} actions)")
    for row in preset_table(args.actions):
        print(f"{row['preset']:<10} {row['params']:>10,} {row['pct_of_nature']:>8.1f}%  {row['description']}")
    return 0


def add_resume_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint(s)")
    parser.add_argument("--override", metavar="KEYS", help="with --resume: config keys the flags given may change "
                                                           "(comma-separated, e.g. updates,log-every)")


def build_parser() -> Parser:
    from pipelines.config import DistillConfig, MultitaskConfig, OnlineConfig, RecordConfig, TeacherConfig, add_flags

    parser = Parser(prog="launch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    distill = commands.add_parser("distill", help="distill a teacher into a student")
    add_flags(distill, DistillConfig)
    add_resume_flags(distill)
    distill.set_defaults(func=cmd_distill, graceful=True)

    multitask = commands.add_parser("multitask", help="distill several games into one student, a head per game")
    add_flags(multitask, MultitaskConfig, skip=MultitaskConfig.SINGLE_GAME_FLAGS)
    add_resume_flags(multitask)
    multitask.set_defaults(func=lambda args: cmd_distill(args, MultitaskConfig), graceful=True)

    teacher = commands.add_parser("teacher", help="train a DQN teacher (Double DQN, n-step, Adam)")
    add_flags(teacher, TeacherConfig, skip=TeacherConfig.SKIPPED_FLAGS)
    add_resume_flags(teacher)
    teacher.set_defaults(func=cmd_teacher, graceful=True)

    online = commands.add_parser("online", help="train a DQN and distill its best checkpoint so far, at once")
    add_flags(online, OnlineConfig, skip=OnlineConfig.SKIPPED_FLAGS)
    add_resume_flags(online)
    online.set_defaults(func=cmd_online, graceful=True)

    record = commands.add_parser("record", help="record a teacher's labelled chunks to a dataset directory")
    add_flags(record, RecordConfig)
    record.set_defaults(func=cmd_record)

    evaluate = commands.add_parser("evaluate", help="play a checkpoint and report its score")
    evaluate.add_argument("--checkpoint", required=True, help="checkpoint path, zoo:GAME, or 'random' for the random "
                                                              "teacher")
    evaluate.add_argument("--game", default=None, help="game to play (picks the head of a multi-task student); "
                                                       "defaults to a zoo:GAME teacher's game")
    evaluate.add_argument("--episodes", type=int, default=30, help="episodes to play (default: 30)")
    evaluate.add_argument("--epsilon", type=float, default=0.05, help="random-action probability (default: 0.05)")
    evaluate.add_argument("--noop-max", type=int, default=30, help="maximum no-op starts (default: 30)")
    evaluate.add_argument("--sticky-actions", action="store_true", help="repeat actions with probability 0.25")
    evaluate.add_argument("--env-mode", default="auto", help="native, sb3, cleanrl, or auto: the teacher's (default: auto)")
    evaluate.add_argument("--workers", type=int, default=4, help="evaluator actors sharing the episodes; 1 plays "
                                                                 "in this process without Ray (default: 4)")
    evaluate.add_argument("--address", default=None, help="Ray cluster address; omit for a local runtime")
    evaluate.add_argument("--seed", type=int, default=0, help="the run seed whose evaluation episodes to play, as "
                                                              "distill's final evaluation and the zoo cards do "
                                                              "(default: 0)")
    evaluate.add_argument("--json", action="store_true", help="also print the result as JSON")
    evaluate.set_defaults(func=cmd_evaluate)

    report = commands.add_parser("report", help="write report.md and PNG plots from run directories")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (any command's --out)")
    report.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder for report.md and the plots")
    report.set_defaults(func=cmd_report)

    zoo = commands.add_parser("zoo", help="list the zoo's teachers; --add a teacher run; --verify GAME")
    zoo.add_argument("--add", metavar="RUN_DIR", help="publish a teacher run's best checkpoint with a card")
    zoo.add_argument("--version", type=int, default=None, help="with --add: publish this checkpoint version instead")
    zoo.add_argument("--verify", metavar="GAME", help="re-evaluate GAME's zoo teacher and compare with its card")
    zoo.add_argument("--markdown", action="store_true", help="print the list as the README's markdown table")
    zoo.add_argument("--episodes", type=int, default=30, help="episodes per evaluation (default: 30)")
    zoo.add_argument("--workers", type=int, default=2, help="evaluator actors (default: 2)")
    zoo.set_defaults(func=cmd_zoo)

    presets = commands.add_parser("presets", help="list network presets and parameter counts")
    presets.add_argument("--actions", type=int, default=18, help="action count for the head (default: 18, as the "
                                                                 "paper counts)")
    presets.set_defaults(func=cmd_presets)
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


def main(argv: list[str] | None = None, script: bool = False) -> int:
    from pipelines import stopping
    from ui.console import ConsoleFilter

    args = build_parser().parse_args(argv)
    if getattr(args, "override", None) and not args.resume:
        sys.stderr.write("error: --override only applies with --resume RUN_DIR; drop it\n")
        return 2
    graceful = getattr(args, "graceful", False)  # runs that can stop at an interval with a checkpoint
    code = 1
    console = ConsoleFilter() if script and not args.debug else None
    with stopping.installed(keep=script) if graceful else contextlib.nullcontext(), console or contextlib.nullcontext():
        try:
            code = args.func(args)
        except Exception as error:
            cause = getattr(error, "cause", None) or error  # Ray wraps an actor's exception
            if args.debug:
                raise
            if isinstance(cause, user_errors() + (ValueError, TimeoutError)):
                sys.stderr.write(f"error: {cause}\n")
                code = 2
            else:
                saved = save_traceback(args)
                first = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else ""
                sys.stderr.write(f"error: internal error, a bug: {type(cause).__name__}: {first} (traceback saved to "
                                 f"{saved}; rerun with --debug to see it here, and please report it)\n")
                code = 1
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            code = 130
        finally:
            if script:
                stopping.finished(code)
            else:
                stopping.reset()
    if console is not None:
        console.save(getattr(args, "resume", None) or getattr(args, "out", None))
    return code


if __name__ == "__main__":
    sys.exit(main(script=True))
