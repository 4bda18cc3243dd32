"""Ten games at once on one machine: replay memory, labelled steps/s per game, learner updates/s.

    python bench/multitask_bench.py [--games paper] [--updates 600] [--out bench/out/multitask.json]

Runs the real multi-task pipeline (`run_distill` with a MultitaskConfig: one teacher actor
per game with random teachers, one shard per game, the paper's multi-task student) with the
rate limiter off, so both sides run flat out, and reads the rates from the run's own metrics.
The replay's memory is the run's memory plan (bench/replay_bench.py checks plans against
measured RSS). Evaluation is cut to one episode, as it is not what this measures.

Where the machine's time goes: every process of the run's CPU seconds over the same window as
the rates (read from /proc every half second), by role (teacher actors, shards, learner, driver,
Ray's own), as cores busy and as a share of the machine. Ceilings, measured just before the run:
the bare emulator (every game's AtariVectorEnv, as many envs as an actor, random actions, the
games dealt over one process per core as the actors are) and the bare update loop of the same
student (bench/replay_bench.py: one CPU thread, or a CUDA graph on a GPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.actors.games import PAPER_GAMES  # noqa: E402
from atari_distill.cluster.processes import cpu_seconds, descendants, role  # noqa: E402
from atari_distill.actors.env import env_seeds, make_vector_env  # noqa: E402
from atari_distill.actors.games import game_spec  # noqa: E402
from atari_distill.pipelines.config import MultitaskConfig  # noqa: E402
from atari_distill.pipelines.distill import run_distill  # noqa: E402
from replay_bench import bare_loop  # noqa: E402


def rates(metrics: list[dict]) -> tuple[float, dict[str, float]]:
    """Learner updates/s and each game's labelled steps/s, from the second log line to the last
    (the first interval includes the replay's fill)."""
    first, last = metrics[0], metrics[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    per_game = {game: (last["replay_per_game"][game]["labelled_steps"] - first["replay_per_game"][game]["labelled_steps"])
                / seconds for game in last["replay_per_game"]}
    return (last["updates"] - first["updates"]) / seconds, per_game


def bare_emulator(games: list[str], envs: int, seconds: float) -> tuple[float, int]:
    """Steps/s of every game's vector env, the games dealt over as many processes as there are cores
    (each steps its games in turn): what the emulator gives on this machine with nothing else running;
    and how many processes that took."""
    workers = max(1, min(os.cpu_count() or 1, len(games)))
    parts = [games[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return sum(pool.map(emulator_rate, parts, [envs] * workers, [seconds] * workers)), workers


def emulator_rate(games: list[str], envs: int, seconds: float) -> float:
    pools = [make_vector_env(game, envs) for game in games]
    actions = [game_spec(game).num_actions for game in games]
    rng = np.random.default_rng(0)
    for pool in pools:
        pool.reset(seed=env_seeds(0, envs))
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for pool, count in zip(pools, actions):
            pool.step(rng.integers(0, count, envs))
            steps += envs
    elapsed = time.perf_counter() - started
    for pool in pools:
        pool.close()
    return steps / elapsed


class CpuSampler:
    """The run's processes' CPU seconds, by pid, every half second, on a thread beside the run."""

    def __init__(self, interval_s: float = 0.5):
        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, args=(interval_s,), daemon=True)
        self.thread.start()

    def _sample(self, interval_s: float) -> None:
        while not self.done.wait(0 if not self.samples else interval_s):
            seen = {}
            for pid in [os.getpid(), *sorted(descendants(os.getpid()))]:
                name, used = ("driver" if pid == os.getpid() else role(pid)), cpu_seconds(pid)
                if name and used is not None:
                    seen[pid] = (name, used)
            self.samples.append((time.monotonic(), seen))

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def cores_by_role(self, start: float, end: float) -> dict[str, float]:
        """Cores each role kept busy from the last sample at or before `start` to the first at or after
        `end` (monotonic), so a window shorter than the sampling interval still has two ends: a
        process started inside counts from zero, one gone before the end up to its last sample."""
        times = [t for t, _ in self.samples]
        opening = max([i for i, t in enumerate(times) if t <= start], default=0)
        closing = min([i for i, t in enumerate(times) if t >= end], default=len(times) - 1)
        inside = self.samples[opening:closing + 1]
        if len(inside) < 2:
            return {}
        at_start, seconds = inside[0][1], inside[-1][0] - inside[0][0]
        at_end: dict[int, tuple[str, float]] = {}
        for _, seen in inside:
            at_end.update(seen)
        busy: dict[str, float] = {}
        for pid, (name, used) in at_end.items():
            busy[name] = busy.get(name, 0.0) + (used - at_start.get(pid, (name, 0.0))[1]) / seconds
        return dict(sorted(busy.items(), key=lambda item: -item[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="paper", help="'paper' (Rusu et al.'s ten) or a comma-separated list")
    parser.add_argument("--capacity-hours", type=float, default=0.05)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--student", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--replay-ratio", type=float, default=0.0,
                        help="0 (default): the rate limiter off, both sides flat out; the paper's is 5.93")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    parser.add_argument("--out", default="bench/out/multitask.json")
    args = parser.parse_args()

    games = ",".join(PAPER_GAMES) if args.games == "paper" else args.games
    with tempfile.TemporaryDirectory() as folder:
        cfg = MultitaskConfig.from_flags(games=games, student=args.student, capacity_hours=args.capacity_hours, replay_ratio=args.replay_ratio,
                              min_replay=512, batch_size=args.batch_size, chunk_steps=64, updates=args.updates,
                              log_every=args.log_every, checkpoint_every=args.updates, eval_episodes=1,
                              eval_workers=1, holdout_steps=128, out=str(Path(folder) / "run")).validate()
        games_list = cfg.game_list()
        emulator, emulator_processes = bare_emulator(games_list, cfg.acting.envs_per_actor, args.ceiling_seconds)
        learner_ceiling = bare_loop(cfg.student.preset, args.batch_size, max(5, int(args.ceiling_seconds * 4)),
                                    {game: game_spec(game).num_actions for game in games_list})
        sampler, began = CpuSampler(), time.monotonic()
        try:
            summary = run_distill(cfg, echo=print)
        finally:
            sampler.stop()
        metrics = [json.loads(line) for line in (Path(cfg.run.out) / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in metrics if m.get("kind", "distill") == "distill"]
    if len(metrics) < 2:
        raise SystemExit(f"--updates {args.updates} gave {len(metrics)} log line(s); give at least two --log-every")
    updates_per_s, labelled = rates(metrics)
    cores = sampler.cores_by_role(began + metrics[0]["elapsed_s"], began + metrics[-1]["elapsed_s"])
    plan = summary["replay"]["memory_plan"]
    rows = [{"game": game, "labelled_steps_per_s": labelled[game],
             "stored_steps": summary["replay"]["replay_per_game"][game]["replay_size"],
             "ring_bytes": sum(s["bytes"] for s in plan["shards"] if s["game"] == game)} for game in cfg.game_list()]
    device = "cuda" if torch.cuda.is_available() else "cpu, 1 thread"
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
              "student": summary["student"], "student_params": summary["student_params"],
              "batch_size": args.batch_size, "replay_ratio": args.replay_ratio, "updates": summary["updates"], "learner_updates_per_s": updates_per_s,
              "games": rows, "plan_total_bytes": plan["total_bytes"], "cores_busy_by_role": cores,
              "bare_emulator_steps_per_s": emulator, "bare_emulator_processes": emulator_processes, "bare_loop_updates_per_s": learner_ceiling,
              "labelled_over_bare_emulator": sum(labelled.values()) / emulator,
              "learner_over_bare_loop": updates_per_s / learner_ceiling,
              "learner_wait_fraction": float(np.mean([m["wait_fraction"] for m in metrics[1:]]))}
    print(f"\n{'game':<16} {'labelled/s':>10} {'stored':>8} {'ring MiB':>9}")
    for r in rows:
        print(f"{r['game']:<16} {r['labelled_steps_per_s']:>10,.0f} {r['stored_steps']:>8,} {r['ring_bytes'] / 2**20:>9,.1f}")
    print(f"learner ({result['student']}, batch {args.batch_size}, {device}): {updates_per_s:.1f} updates/s; {len(rows)} games "
          f"labelled {sum(labelled.values()):,.0f} steps/s in all; replay plan {plan['total_bytes'] / 2**30:.2f} GiB")
    print(f"ceilings (before the run): bare emulator {emulator:,.0f} steps/s over the {len(rows)} games in "
          f"{emulator_processes} processes (labelled {result['labelled_over_bare_emulator']:.2f} of "
          f"it); bare update loop {learner_ceiling:.1f} updates/s on {device} (learner {result['learner_over_bare_loop']:.2f} of it, waiting for batches "
          f"{100 * result['learner_wait_fraction']:.0f}% of its time)")
    print(f"\n{'process (role)':<24} {'cores busy':>10} {'of machine':>11}")
    for name, busy in cores.items():
        print(f"{name:<24} {busy:>10.2f} {busy / os.cpu_count():>11.1%}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
