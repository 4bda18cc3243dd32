"""Where a model to play or export comes from: what a run wrote (its folder or one checkpoint), a zoo
teacher, an imported teacher file (CleanRL, SB3), `random`, or an exported ONNX file.

`evaluate` and `export` both resolve their --checkpoint here, so each takes every form the other
does, takes the game from a network's one head when it has one, and names the protocol score
the model was given when a summary or card holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atari_distill.actors.games import game_spec
from atari_distill.actors.teachers import RANDOM, load_teacher
from atari_distill.models.checkpoint import CheckpointError, check_plays, load_checkpoint
from atari_distill.models.export import is_exported, load_exported
from atari_distill.rundir.directory import RunDir
from atari_distill.rundir.summary import Summary, SummaryError
from atari_distill.pipelines.sections import ConfigError, need, zoo_game

RUN_SERIES = ("student", "dqn")  # a run's own series, tried in this order when --series is not given


@dataclass
class ModelSource:
    payload: dict
    source: str
    games: list[str]  # the heads to play or export: one, or every head of a multi-task student
    checkpoint: str | None = None  # the file the weights came from, where there is one
    scores: dict = field(default_factory=dict)  # game -> the protocol score a summary or card states for them
    protocol: str | None = None  # how those scores were played
    run_env_modes: dict = field(default_factory=dict)  # game -> env mode, from the run's summary (older checkpoints)


def resolve_model(source: str, game: str | None = None, series: str | None = None, seed: int = 0) -> ModelSource:
    """The model `source` names, checked against `game` when given (a head it has, with that game's action
    count); without `game`, every head it has (a teacher file of another project needs `game`)."""
    need(not str(source).endswith(".pt2"), f"{source!r} is a torch.export program: it runs in PyTorch "
                                            f"(torch.export.load), not here; play an exported .onnx, or the checkpoint "
                                            f"or run directory it came from")
    if is_exported(source):
        need(series is None, "--series picks a checkpoint series of a run directory, not of an exported file; drop it")
        found = ModelSource(load_exported(source), source, [], checkpoint=source)
        metadata = found.payload["metadata"]
        found.scores, found.protocol = dict(metadata.get("source_scores") or {}), metadata.get("protocol")
    elif Path(source).is_dir():
        found = _from_run(Path(source), series)
    else:
        need(series is None, f"--series picks a checkpoint series of a run directory; {source!r} is not one: drop it")
        found = _from_file(source, game, seed)
    heads = found.payload["heads"]
    if "env_modes" not in found.payload.get("extra", {}) and found.run_env_modes:
        found.payload["extra"] = {**found.payload.get("extra", {}), "env_modes": found.run_env_modes}
    if game is not None:
        spec = game_spec(game)
        try:
            check_plays(found.payload, spec.name, spec.num_actions, source=f"{found.source!r}")
        except CheckpointError as error:
            raise ConfigError(str(error)) from None
        found.games = [spec.name]
    else:
        found.games = list(heads)
    if len(found.games) == 1:
        found.payload = for_game(found.payload, found.games[0])
    return found


def for_game(payload: dict, game: str) -> dict:
    """`payload` as one game's player sees it: `extra.env_mode` is that game's, where the model states one per
    game (a student's `env_modes`: a student of a CleanRL teacher plays with FIRE on reset, as it was taught)."""
    modes = payload.get("extra", {}).get("env_modes") or {}
    if game not in modes:
        return payload
    return {**payload, "extra": {**payload["extra"], "env_mode": modes[game]}}


def _from_file(source: str, game: str | None, seed: int) -> ModelSource:
    if game is None:
        game = zoo_game(source)
    if game is None and source != RANDOM and Path(source).is_file():
        try:
            payload = load_checkpoint(source)  # ours names its heads; another project's file needs --game
        except CheckpointError as error:
            need("is not a PyTorch file" not in str(error), str(error))  # nor a teacher file: --game would not help
            need(False, f"{source!r} is not a checkpoint of this project, so its game is unknown; add --game GAME "
                        f"(a CleanRL or SB3 teacher file)")
        return ModelSource(payload, source, [], checkpoint=source, run_env_modes=_enclosing_run_env_modes(source))
    need(game is not None, f"--game is required with {source!r} (a random teacher has no game of its own)"
         if source == RANDOM else f"{source!r} is not a file or a run directory; give a run directory, a checkpoint, "
                                  f"an exported .onnx file, zoo:GAME or random")
    spec = game_spec(game)
    payload = load_teacher(source, spec, seed)
    found = ModelSource(payload, source, [], checkpoint=None if source == RANDOM else source,
                        run_env_modes=_enclosing_run_env_modes(source))
    zoo = zoo_game(source)
    if zoo:
        from atari_distill.zoo.catalog import card

        teacher_card = card(zoo)
        found.scores, found.protocol = {zoo: teacher_card["score"]}, teacher_card.get("eval_protocol")
    return found


def _enclosing_run_env_modes(source: str) -> dict:
    """A checkpoint in RUN/checkpoints/ written before checkpoints named their env modes: the run's summary's."""
    folder = Path(source).resolve().parent
    return summary_env_modes(run_summary(folder.parent)) if folder.name == "checkpoints" else {}


def _from_run(path: Path, series: str | None) -> ModelSource:
    """A run directory's newest readable checkpoint of `series` (its only student series when not given)."""
    run = RunDir.open(path)
    names = sorted({p.name.rsplit("-", 1)[0] for p in run.checkpoints.glob("*-*.pt")})
    if series is None:
        own = [name for name in names if name.startswith("student") and not name.endswith("-best")] or [
            n for n in names if n in RUN_SERIES]  # student-best (--rl-weight) is the same student, by --series
        need(len(own) > 0, f"run {str(path)!r} has no checkpoint yet; give a run that has written one, or a "
                           f"checkpoint file")
        need(len(own) == 1, f"run {str(path)!r} holds several students ({', '.join(own)}); pick one with --series, "
                            f"e.g. --series {own[0]}")
        series = own[0]
    need(series in names, f"run {str(path)!r} has no checkpoint series {series!r}; it has: {', '.join(names) or 'none'}")
    summary = run_summary(path)
    best = (summary.get("best") or {}).get("checkpoint") if series == "dqn" else None
    if best:  # a DQN run's teacher is its best checkpoint, not its newest
        checkpoint = Path(best) if Path(best).is_file() else run.checkpoints / Path(best).name
        try:
            payload = load_checkpoint(checkpoint)
        except CheckpointError as error:
            raise ConfigError(f"the best checkpoint of {str(path)!r} does not load ({error})") from None
        found = ModelSource(payload, str(path), [], checkpoint=str(checkpoint))
        report = summary.get("best_report_score")
        found.scores, found.protocol = ({summary["game"]: report} if report else {}), summary.get("eval_protocol")
        return found
    payload, skipped = run.latest_checkpoint(series)
    need(payload is not None, f"no checkpoint of {series!r} in {str(path)!r} loads ({'; '.join(skipped)[:200]})")
    checkpoint = str(run.checkpoint_paths(series)[-1 - len(skipped)])
    found = ModelSource(payload, str(path), [], checkpoint=checkpoint)
    found.scores, found.protocol = _run_scores(summary, series, payload["updates"])
    found.run_env_modes = summary_env_modes(summary)
    return found


def summary_env_modes(summary: dict) -> dict:
    """game -> the env mode a run's students were played in, as its summary states it."""
    return {g: r["env_mode"] for g, r in (summary.get("per_game") or {}).items()
            if isinstance(r, dict) and r.get("env_mode")}


def run_summary(path: Path) -> dict:
    """A run directory's summary.json as a dict ({} when it has none yet, or it is unreadable)."""
    try:
        summary = Summary.read(path)
    except SummaryError:
        return {}
    return {} if summary is None else summary.as_dict()


def _run_scores(summary: dict, series: str, updates: int) -> tuple[dict, str | None]:
    """The report-seed scores the run's summary states for this checkpoint (none if it scored another one)."""
    if not summary:
        return {}, None
    students = summary.get("students") or [summary]
    entry = next((s for s in students if s.get("checkpoint_series", "student") == series), None)
    trained = None if entry is None else entry.get("student_updates", entry.get("updates"))  # online: the DQN's differ
    if entry is None or trained != updates:
        return {}, None
    per_game = entry.get("per_game") or (summary.get("per_game") if len(students) == 1 else None) or {}
    return {g: r["student_score"] for g, r in per_game.items() if r.get("student_score")}, summary.get("eval_protocol")
