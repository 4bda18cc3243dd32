"""The `watch` command: a student and its teacher play the same episode start, side by side, into a video.

A student given as a run directory is watched beside the teacher that run distilled (from its summary,
or its config while it has none), on the run's own seed, and the video and its still go into that run
directory by default, where `launch.py report` shows the still.
"""

from __future__ import annotations

from pathlib import Path

from atari_distill.evaluation.protocol import REPORT, EvalProtocol
from atari_distill.actors.watch import play_side_by_side
from atari_distill.models.checkpoint import fingerprint
from atari_distill.models.export import EXPORT_FORMAT
from atari_distill.rundir.directory import RunDir
from atari_distill.pipelines.sections import need
from atari_distill.pipelines.sources import resolve_model, run_summary
from atari_distill.ui.video import compose, write_still, write_video

STILL = "watch.png"  # the name the report (ui/report/watch.py) looks for in a run directory
VIDEO_SUFFIXES = (".mp4", ".gif")
MAX_STEPS = 27_000  # a whole episode: the 108,000-frame cap in agent steps


def run_watch(student: str, teacher: str | None = None, game: str | None = None, out: str | None = None,
              series: str | None = None, seed: int | None = None, max_steps: int = 2000, echo=print) -> dict:
    run_dir = Path(student) if Path(student).is_dir() else None
    if out is None:
        need(run_dir is not None, "--out is required unless --student is a run directory (the video then goes "
                                  "into it as watch.mp4)")
        out = str(run_dir / "watch.mp4")
    need(Path(out).suffix in VIDEO_SUFFIXES, f"--out {out!r} must end in .mp4 or .gif")
    need(Path(out).parent.is_dir(), f"--out {out!r}: folder {str(Path(out).parent)!r} does not exist; create it first")
    need(10 <= max_steps <= MAX_STEPS, f"--max-steps must be in [10, {MAX_STEPS:,}] (a whole episode), got {max_steps}")
    model = resolve_model(student, game, series, seed or 0)
    need(len(model.games) == 1, f"{student!r} has a head for each of {', '.join(model.games)}; pick one with --game")
    game = model.games[0]
    expected = None  # the fingerprint of the run's own teacher, when it is the one watched
    if run_dir is not None:
        run_teacher, run_seed, fingerprint_of_run = _run_teacher(run_dir, game)
        if teacher is None:
            teacher, expected = run_teacher, fingerprint_of_run
        seed = run_seed if seed is None else seed
    seed = seed or 0
    need(teacher is not None, "--teacher is required unless --student is a run directory that names its teacher; "
                              "e.g. --teacher zoo:GAME")
    reference = resolve_model(teacher, game, None, seed)
    need(expected is None or fingerprint(reference.payload) == expected,
         f"teacher {teacher!r} rebuilt here is not the one the run distilled (fingerprint {expected}); pass the "
         f"teacher with --teacher")
    protocol = EvalProtocol(seed=seed)
    kwargs = protocol.play(REPORT, reference.payload)
    echo(f"[watch] {game}: {_name(model)} student beside teacher {teacher}, one episode from report seed "
         f"{kwargs['seed']:,} (at most {max_steps:,} steps)")
    played = play_side_by_side([(model.payload, protocol.env_config(model.payload)),
                                (reference.payload, kwargs["env_config"])], game, seed=kwargs["seed"],
                               epsilon=kwargs["epsilon"], max_steps=max_steps)
    names = [f"student ({_name(model)})", f"teacher ({_name(reference)})"]
    steps = max(len(p.frames) for p in played)
    still = write_video(out, compose([(n, p.frames, p.scores, p.ended) for n, p in zip(names, played)]), steps // 2)
    still_path = Path(out).with_suffix(".png") if run_dir is None else run_dir / STILL
    write_still(still_path, still)
    return {"video": out, "still": str(still_path), "game": game, "steps": steps - 1,
            "scores": {name: p.scores[-1] for name, p in zip(names, played)},
            "ended": {name: p.ended for name, p in zip(names, played)}}


def _run_teacher(run_dir: Path, game: str) -> tuple[str | None, int | None, str | None]:
    """(teacher source, run seed, teacher fingerprint) of the run that trained this student."""
    summary = run_summary(run_dir)
    entry = (summary.get("per_game") or {}).get(game) or {}
    config = RunDir(run_dir).read_config() if (run_dir / "config.json").is_file() else {}
    source = entry.get("teacher") or (config.get("teacher") if config.get("game") in (None, game) else None)
    return source, config.get("seed"), entry.get("teacher_fingerprint")


def _name(model) -> str:
    payload = model.payload
    if payload.get("format") == EXPORT_FORMAT:
        return f"{payload['metadata']['preset']}, {payload['metadata']['precision']} ONNX"
    return payload["preset"]


def watch_lines(result: dict) -> list[str]:
    scores = ", ".join(f"{name} {score:,.0f}" + ("" if result["ended"][name] else " (cut)")
                       for name, score in result["scores"].items())
    return [f"{result['game']}: {scores} over {result['steps']:,} steps",
            f"[watch] wrote {result['video']} and its still {result['still']}"]
