"""The `watch` command: a student and its teacher play the same episode start, side by side, into a video.

A student given as a run directory is watched beside the teacher that run distilled, and the video and
its still go into that run directory by default, where `launch.py report` shows the still.
"""

from __future__ import annotations

import json
from pathlib import Path

from actors.protocol import REPORT, EvalProtocol
from actors.watch import play_side_by_side
from pipelines.sections import need
from pipelines.sources import resolve_model
from ui.video import compose, write_still, write_video

STILL = "watch.png"  # the name report.py looks for in a run directory
VIDEO_SUFFIXES = (".mp4", ".gif")


def run_watch(student: str, teacher: str | None = None, game: str | None = None, out: str | None = None,
              series: str | None = None, seed: int = 0, max_steps: int = 2000, echo=print) -> dict:
    run_dir = Path(student) if Path(student).is_dir() else None
    if teacher is None and run_dir is not None:
        config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
        teacher = (config.get("acting") or {}).get("teacher")
    need(teacher is not None, "--teacher is required unless --student is a distill run directory (whose teacher "
                              "it then uses); e.g. --teacher zoo:GAME")
    if out is None:
        need(run_dir is not None, "--out is required unless --student is a run directory (the video then goes "
                                  "into it as watch.mp4)")
        out = str(run_dir / "watch.mp4")
    need(Path(out).suffix in VIDEO_SUFFIXES, f"--out {out!r} must end in .mp4 or .gif")
    need(Path(out).parent.is_dir(), f"--out {out!r}: folder {str(Path(out).parent)!r} does not exist; create it first")
    need(max_steps >= 10, f"--max-steps must be at least 10, got {max_steps}")
    model = resolve_model(student, game, series, seed)
    need(len(model.games) == 1, f"{student!r} has a head for each of {', '.join(model.games)}; pick one with --game")
    game = model.games[0]
    reference = resolve_model(teacher, game, None, seed)
    protocol = EvalProtocol(seed=seed)
    kwargs = protocol.play(REPORT, reference.payload)
    echo(f"[watch] {game}: {model.payload.get('preset', 'exported')} student beside teacher {teacher}, one episode "
         f"from report seed {kwargs['seed']:,} (at most {max_steps:,} steps)")
    played = play_side_by_side([model.payload, reference.payload], game, env_config=kwargs["env_config"],
                               seed=kwargs["seed"], epsilon=kwargs["epsilon"], max_steps=max_steps)
    names = [f"student ({_name(model)})", f"teacher ({_name(reference)})"]
    frames = compose([(name, p.frames, p.scores) for name, p in zip(names, played)])
    write_video(out, frames)
    still = Path(out).with_suffix(".png") if run_dir is None else run_dir / STILL
    write_still(still, frames[len(frames) // 2])
    return {"video": out, "still": str(still), "game": game, "steps": len(frames),
            "scores": {name: p.scores[-1] for name, p in zip(names, played)},
            "ended": {name: p.ended for name, p in zip(names, played)}}


def _name(model) -> str:
    payload = model.payload
    if payload.get("format") == "atari-distill-export":
        return f"{payload['metadata']['preset']}, {payload['metadata']['precision']} ONNX"
    return payload["preset"]


def watch_lines(result: dict) -> list[str]:
    scores = ", ".join(f"{name} {score:,.0f}" + ("" if result["ended"][name] else " (cut)")
                       for name, score in result["scores"].items())
    return [f"{result['game']}: {scores} over {result['steps']:,} steps",
            f"[watch] wrote {result['video']} and its still {result['still']}"]
