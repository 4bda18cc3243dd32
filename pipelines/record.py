"""Recording a teacher: live teacher actors stream their chunks into a dataset on disk.

The actors are the same ones a distillation run uses; only their sink differs (a
DatasetWriter instead of a replay shard), so a recording holds exactly what a live run
would have trained on. The writer runs on the driver's node, where the dataset lives.

A recording cut short (Ctrl-C, or the Ray runtime lost) keeps its whole chunks, and
`--resume` continues it to --steps: its actors take new ids (and so new episode seeds), so no
episode is recorded twice and no stream in the dataset runs on from another.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from atari_distill.actors.env import actor_seed, resolve_env_mode
from atari_distill.actors.games import game_spec
from atari_distill.actors.teachers import load_teacher
from atari_distill.cluster.runtime import WindDown, connect, on_this_node
from atari_distill.models.checkpoint import fingerprint
from atari_distill.pipelines.stopping import StopToken
from atari_distill.pipelines.config import RecordConfig
from atari_distill.pipelines.sections import zoo_game
from atari_distill.pipelines.data_plane import DataPlane
from atari_distill.pipelines.skeleton import on_its_runner
from atari_distill.rundir.directory import RunDir
from atari_distill.replay.dataset import DatasetWriter
from atari_distill.ui.progress import as_progress
from atari_distill.runners import handles


def identity(cfg: RecordConfig, teacher: dict, env_config) -> dict:
    """What the dataset is: a resume must record the same thing."""
    game = game_spec(cfg.acting.game)
    asked = cfg.acting.teacher
    named = asked == "random" or zoo_game(asked) is not None  # names travel; paths become absolute
    source = asked if named else str(Path(asked).resolve())
    return {
        "game": game.name, "num_actions": game.num_actions,
        "teacher": {"source": source, "seed": cfg.run.seed, "fingerprint": fingerprint(teacher),
                    "preset": teacher["preset"]},
        "env": dataclasses.asdict(env_config), "env_mode": resolve_env_mode(cfg.acting.env_mode, teacher),
        "epsilon": cfg.acting.epsilon, "actors_recorded": cfg.acting.actors,
        "envs_per_actor": cfg.acting.envs_per_actor, "chunk_steps": cfg.acting.chunk_steps, "seed": cfg.run.seed,
    }


@on_its_runner
def run_record(cfg: RecordConfig, run: RunDir | None = None, echo=print, stop: StopToken | None = None) -> dict:
    """Records into a new dataset at cfg.run.out, or continues the one `run` opened for --resume, until
    it holds --steps or `stop` is set."""
    game = game_spec(cfg.acting.game)
    teacher = load_teacher(cfg.acting.teacher, game, cfg.run.seed)
    env_config = cfg.acting.env_config(teacher)
    if not handles.is_local():
        connect(cfg.run.address, cpus_needed=cfg.acting.actors + 1)
    actor_options, actor_device = cfg.acting.actor_options()
    resuming = run is not None
    run = run or RunDir.create(cfg.run.out, cfg.to_json(), checkpoints=False)
    stop = stop if stop is not None else StopToken()
    stop.hold(run.unlock)
    out = str(run.path.resolve())
    writer = handles.remote(DatasetWriter, num_cpus=0, scheduling_strategy=on_this_node()).remote(
        out, identity(cfg, teacher, env_config), cfg.steps, cfg.file_mb * 1024 * 1024, resuming)
    first_id = cfg.acting.actors * handles.get(writer.times_resumed.remote())
    plane = DataPlane(game)
    plane.stream_into([writer])
    stop.hold(plane.free)
    plane.start_actors(
        [actor_options] * cfg.acting.actors, handles.put(teacher),
        lambda i: dict(game=game.name, num_envs=cfg.acting.envs_per_actor, env_config=env_config,
                       epsilon=cfg.acting.epsilon, seed=actor_seed(cfg.run.seed, first_id + i), actor_id=first_id + i,
                       chunk_steps=cfg.acting.chunk_steps, device=actor_device, groups=cfg.acting.groups(actor_device)))
    echo = as_progress(echo, f"record {out}", cfg.steps, "labelled_steps")
    started = time.monotonic()
    record_until_full(writer, plane.runs, echo, started, stop)
    plane.stop(WindDown())
    stopped = stop.requested()
    index = handles.get(writer.close.remote(complete=not stopped))
    plane.free()
    run.unlock()
    chunk = cfg.acting.chunk_steps * cfg.acting.envs_per_actor
    short = (f"; --steps {cfg.steps:,} is a budget of whole chunks of {chunk:,} steps (--chunk-steps x "
             f"--envs-per-actor), never exceeded") if not stopped and index["steps"] < cfg.steps else ""
    echo(f"[record] wrote {index['steps']:,} steps in {index['chunks']} chunks to {out} "
         f"({time.monotonic() - started:.0f}s){short}")
    return {**index, "stopped_by": stopped} if stopped else index


def record_until_full(writer, runs: list, echo, started: float, stop: StopToken) -> None:
    """Until the writer holds --steps or a stop is asked for; an actor that ended early raised, and
    its error ends the recording."""
    last_echo = 0.0
    while not handles.get(writer.is_full.remote()) and not stop.requested():
        stored = handles.get(writer.stored_steps.remote())
        finished, _ = handles.wait(runs, timeout=0.5)
        if finished:
            handles.get(finished)
        if time.monotonic() - last_echo > 10:
            echo.update({"kind": "record", "labelled_steps": stored, "elapsed_s": time.monotonic() - started})
            last_echo = time.monotonic()
