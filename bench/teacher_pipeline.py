"""The DQN teacher pipeline against its two ceilings, measured in one run on one machine.

    python bench/teacher_pipeline.py [--game pong] [--preset net1] [--frames 60000] [--out bench/out/teacher_pipeline.json]

1. bare emulator: AtariVectorEnv with the actors' environment count, random actions;
2. bare update loop: the DQN loss, backward and Adam step on one fixed batch, in this process
   with one thread (as the learner actor gets one CPU);
3. the whole `launch.py teacher` pipeline (actors, replay, learner, rate limiter), its frames/s
   read from its metrics after the replay's fill.

At `--replay-ratio R` and batch B one update is owed per B/R agent steps (4 frames each), so
the update loop caps the pipeline at updates/s x 4B/R frames/s; the table states the pipeline as
a fraction of the lower ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.actors.env import FRAME_SKIP, make_vector_env  # noqa: E402
from atari_distill.actors.games import game_spec  # noqa: E402
from atari_distill.cluster.runtime import connect  # noqa: E402
from atari_distill.learner.td import dqn_loss  # noqa: E402
from atari_distill.models.networks import QNetwork  # noqa: E402
from atari_distill.pipelines.config import TeacherConfig  # noqa: E402
from atari_distill.pipelines.teacher import run_teacher  # noqa: E402


def bare_emulator_frames_per_s(game: str, envs: int, actions: int, seconds: float) -> float:
    env = make_vector_env(game, envs)
    env.reset(seed=np.arange(envs))
    rng, steps, started = np.random.default_rng(0), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        env.step(rng.integers(0, actions, envs))
        steps += envs
    return FRAME_SKIP * steps / (time.perf_counter() - started)


def bare_updates_per_s(preset: str, actions: int, batch_size: int, seconds: float) -> float:
    torch.set_num_threads(1)
    online = QNetwork(preset, {"game": actions})
    target = QNetwork(preset, {"game": actions}).requires_grad_(False)
    optimizer = torch.optim.Adam(online.parameters(), lr=1e-4, eps=1.5e-4)
    rng = np.random.default_rng(0)
    batch = {"obs": torch.from_numpy(rng.integers(0, 256, (batch_size, 4, 84, 84), dtype=np.uint8)),
             "next_obs": torch.from_numpy(rng.integers(0, 256, (batch_size, 4, 84, 84), dtype=np.uint8)),
             "actions": torch.from_numpy(rng.integers(0, actions, batch_size)),
             "returns": torch.zeros(batch_size), "discount": torch.full((batch_size,), 0.97)}
    updates, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        loss, _ = dqn_loss(online, target, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(online.parameters(), 10.0)
        optimizer.step()
        updates += 1
    return updates / (time.perf_counter() - started)


def pipeline_frames_per_s(cfg: TeacherConfig) -> tuple[float, float, float, str]:
    """(frames/s, updates/s, the learner's mean wait for batches, its device) of a teacher run, between
    its first and last log line: on a GPU the wait says whether the batch path or the update is the bound."""
    summary = run_teacher(cfg, echo=print)
    metrics = [json.loads(line) for line in (Path(cfg.run.out) / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in metrics if m.get("kind") == "dqn"]
    if len(metrics) < 2:
        raise SystemExit(f"--frames {cfg.frames} gave {len(metrics)} log line(s); raise --frames")
    first, last = metrics[0], metrics[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    waits = [m["wait_fraction"] for m in metrics[1:]]
    return ((last["frames"] - first["frames"]) / seconds, (last["updates"] - first["updates"]) / seconds,
            sum(waits) / len(waits), summary["learner_device"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="pong")
    parser.add_argument("--preset", default="net1")
    parser.add_argument("--frames", type=int, default=60_000)
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--envs-per-actor", type=int, default=4)
    parser.add_argument("--replay-ratio", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="for each bare measurement")
    parser.add_argument("--out", default="bench/out/teacher_pipeline.json")
    args = parser.parse_args()
    spec = game_spec(args.game)
    emulator = bare_emulator_frames_per_s(spec.name, args.envs_per_actor * args.actors, spec.num_actions, args.seconds)
    updates = bare_updates_per_s(args.preset, spec.num_actions, args.batch_size, args.seconds)
    frames_per_update = FRAME_SKIP * args.batch_size / args.replay_ratio
    with tempfile.TemporaryDirectory() as folder:
        cfg = TeacherConfig.from_flags(game=spec.name, preset=args.preset, frames=args.frames, actors=args.actors,
                            envs_per_actor=args.envs_per_actor, replay_ratio=args.replay_ratio,
                            batch_size=args.batch_size, min_replay=2000, capacity_hours=0.1,
                            log_every=args.log_every, eval_every=args.frames - FRAME_SKIP, eval_episodes=1,
                            checkpoint_every=10**9, out=str(Path(folder) / "run")).validate()
        connect(None, cpus_needed=args.actors + 2)
        frames, pipeline_updates, waiting, device = pipeline_frames_per_s(cfg)
    ceiling = min(emulator, updates * frames_per_update)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
              "args": vars(args), "bare_emulator_frames_per_s": emulator, "bare_updates_per_s": updates,
              "update_ceiling_frames_per_s": updates * frames_per_update, "pipeline_frames_per_s": frames,
              "pipeline_updates_per_s": pipeline_updates, "learner_wait_fraction": waiting,
              "learner_device": device,
              "pipeline_over_ceiling": frames / ceiling}
    rows = [("bare emulator", emulator, f"{args.actors * args.envs_per_actor} envs, random actions"),
            ("bare DQN update loop", updates * frames_per_update,
             f"{updates:.1f} updates/s x {frames_per_update:.0f} frames per update ({args.preset}, batch "
             f"{args.batch_size}, ratio {args.replay_ratio:g}, 1 thread)"),
            ("teacher pipeline", frames, f"{pipeline_updates:.1f} updates/s, learner on {device} waiting {waiting:.0%}; "
             f"{frames / ceiling:.0%} of the lower ceiling")]
    print(f"\n{'':<22} {'frames/s':>10}")
    for name, value, note in rows:
        print(f"{name:<22} {value:>10,.0f}  {note}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
