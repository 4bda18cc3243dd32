"""Throughput on one machine, in one run: bare env, teacher-labelled steps, learner updates.

    python bench/throughput.py [--game pong] [--envs 4] [--seconds 5] [--out bench/out/throughput.json]

Ratios are within this run: labelled steps/s over bare AtariVectorEnv steps/s with the
same environment count. The learners are timed on batches sampled from a filled frame ring
(sampling timed separately), on CUDA when visible (eager and as CUDA graphs), else CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.actors.env import make_vector_env  # noqa: E402
from atari_distill.actors.games import game_spec  # noqa: E402
from atari_distill.actors.rollout import TeacherRollout  # noqa: E402
from atari_distill.actors.teachers import random_teacher  # noqa: E402
from atari_distill.learner.dqn import DQNLearner  # noqa: E402
from atari_distill.learner.learner import Learner  # noqa: E402
from atari_distill.pipelines.config import DistillConfig, TeacherConfig  # noqa: E402
from atari_distill.pipelines.distill import learner_config  # noqa: E402
from atari_distill.pipelines.teacher import dqn_config  # noqa: E402
from atari_distill.replay.chunk import encode  # noqa: E402
from atari_distill.replay.frame_ring import FrameRing  # noqa: E402


def timed(fn, seconds: float) -> tuple[int, float]:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        count += fn()
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="pong")
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--teacher-device", default="cpu")
    parser.add_argument("--out", default="bench/out/throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    game = game_spec(args.game)
    rows = []

    env = make_vector_env(game.name, args.envs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    bare, secs = timed(lambda: (env.step(rng.integers(0, game.num_actions, args.envs)), args.envs)[1], args.seconds)
    bare_rate = bare / secs
    rows.append(("bare AtariVectorEnv steps/s", bare_rate, f"{args.envs} envs"))

    teacher = random_teacher(game)
    rollout = TeacherRollout(game.name, teacher, args.envs, chunk_steps=64, device=args.teacher_device)
    chunks = []
    def labelled():
        chunk = rollout.next_chunk()
        chunks.append(len(encode(chunk)))
        return chunk.steps * chunk.envs
    steps, secs = timed(labelled, args.seconds)
    rows.append(("teacher-labelled steps/s (Nature teacher, encoded)", steps / secs,
                 f"ratio to bare {steps / secs / bare_rate:.2f}, teacher on {args.teacher_device}"))

    rows += replay_and_learner_rows(game, rollout, rng, args.seconds)
    report(rows, args.out)


def replay_and_learner_rows(game, rollout, rng, seconds: float) -> list[tuple]:
    """Samples/s from one ring in process, and the learners' updates/s on batches drawn from it: the
    student (net1, KL) and the DQN (Nature, double, 3-step), each eager and, on CUDA, as graphs."""
    rows = []
    ring = FrameRing(20_000, game.num_actions)
    while ring.inserted < 20_000:
        ring.insert(rollout.next_chunk())
    for batch_size in (32, 256):
        sampled, secs = timed(lambda: len(ring.sample(batch_size, rng)["obs"]), seconds / 2)
        rows.append((f"replay samples/s at batch {batch_size} (one ring, in process)", sampled / secs, ""))
    modes = (False, True) if torch.cuda.is_available() else (False,)
    for batch_size in (32, 256):
        batches = [ring.sample(batch_size, rng) for _ in range(8)]
        for graphs in modes:
            config = learner_config(DistillConfig.from_flags(batch_size=batch_size).validate(), "net1", "kl", 1)
            learner = Learner(dataclasses.replace(config, graphs=graphs), {game.name: game.num_actions},
                              {game.name: []})  # batches come from the ring above, not from shards
            rate = update_rate(lambda i: learner.step(game.name, batches[i % len(batches)]), learner.device, seconds)
            rows.append((f"learner updates/s at batch {batch_size} (net1, kl{', graphs' if graphs else ''})", rate,
                         f"{rate * batch_size:,.0f} samples/s on {learner.device}"))
    cfg = TeacherConfig.from_flags(game=game.name, preset="nature").validate()
    transitions = [ring.sample_transitions(cfg.dqn.batch_size, cfg.dqn.n_step, cfg.dqn.gamma, rng) for _ in range(8)]
    for graphs in modes:
        dqn = DQNLearner(dataclasses.replace(dqn_config(cfg), graphs=graphs), game.name, game.num_actions, [])
        rate = update_rate(lambda i: dqn._update(game.name, transitions[i % len(transitions)]), dqn.device, seconds)
        rows.append((f"DQN updates/s at batch {cfg.dqn.batch_size} (nature{', graphs' if graphs else ''})", rate,
                     f"on {dqn.device}"))
    return rows


def update_rate(update, device: torch.device, seconds: float) -> float:
    """Updates/s after a warm-up long enough to capture every graph; CUDA synchronised every 20."""
    for i in range(8):
        update(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    state = {"i": 0}

    def one():
        update(state["i"])
        state["i"] += 1
        if device.type == "cuda" and state["i"] % 20 == 0:
            torch.cuda.synchronize()
        return 1
    updates, secs = timed(one, seconds)
    return updates / secs


def report(rows: list[tuple], path: str) -> None:
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(f"machine: {machine}")
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10,.1f}  {note}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "rows": [{"name": n, "value": v, "note": t} for n, v, t in rows]},
                              indent=2))


if __name__ == "__main__":
    main()
