"""Ten games at once on one machine: replay memory, labelled steps/s per game, learner updates/s.

    python bench/multitask_bench.py [--games paper] [--capacity-hours 0.05] [--seconds 60] [--out bench/out/multitask.json]

Runs the multi-task pipeline (one teacher actor per game with random teachers, one shard
per game, the `multitask` student) with the rate limiter off, so both sides run flat out,
and measures each shard's resident memory, not a formula. No evaluation is run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.games import PAPER_GAMES  # noqa: E402
from cluster.config import MultitaskConfig  # noqa: E402
from cluster.distill import learner_config, prepare_games, start_game  # noqa: E402
from cluster.runtime import connect  # noqa: E402
from learner.learner import Learner  # noqa: E402
from replay.memory_plan import MemoryPlan, ray_memory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="paper", help="'paper' (Rusu et al.'s ten) or a comma-separated list")
    parser.add_argument("--capacity-hours", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--student", default="multi-10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="bench/out/multitask.json")
    args = parser.parse_args()

    import ray

    games = ",".join(PAPER_GAMES) if args.games == "paper" else args.games
    cfg = MultitaskConfig(games=games, student=args.student, capacity_hours=args.capacity_hours, replay_ratio=0.0,
                          min_replay=512, batch_size=args.batch_size, chunk_steps=64).validate()
    runs = prepare_games(cfg, echo=print)
    connect(None, cpus_needed=len(runs) + 2)
    heads = {g.spec.name: g.spec.num_actions for g in runs}
    plan = MemoryPlan(heads, cfg.capacity_steps, cfg.replay_shards)
    free, largest = ray_memory()
    print(plan.table(free))
    plan.check(free, largest)
    base_rss = {}
    for game in runs:
        start_game(cfg, game, plan, {"num_cpus": 1}, "cpu", echo=print)
        base_rss[game.spec.name] = ray.get(game.shards[0].resident_bytes.remote())
    learner = ray.remote(Learner).options(num_cpus=1).remote(
        learner_config(cfg, cfg.min_replay), heads, {g.spec.name: g.shards for g in runs}, None, cfg.schedule_weights())
    ray.get(learner.wait_for_replay.remote())

    before = {g.spec.name: g.stats()["labelled_steps"] for g in runs}
    started, updates = time.perf_counter(), 0
    learner_time = 0.0
    while time.perf_counter() - started < args.seconds:
        metrics = ray.get(learner.train.remote(20))
        learner_time += 20 / metrics["updates_per_s"]
        updates += 20
    elapsed = time.perf_counter() - started
    rows = []
    for game in runs:
        stats = game.stats()
        rss = ray.get(game.shards[0].resident_bytes.remote())
        rows.append({"game": game.spec.name, "actions": game.spec.num_actions,
                     "labelled_steps_per_s": (stats["labelled_steps"] - before[game.spec.name]) / elapsed,
                     "stored_steps": stats["replay_size"], "shard_rss_bytes": rss,
                     "shard_rss_before_fill_bytes": base_rss[game.spec.name],
                     "ring_bytes": next(s.bytes for s in plan.shards if s.game == game.spec.name)})
        for producer in game.producers:
            producer.stop.remote()
        for shard in game.shards:
            shard.close.remote()
    for game in runs:
        ray.get(game.runs)
        for handle in [*game.producers, *game.shards]:
            ray.kill(handle)
    ray.kill(learner)

    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
              "student": args.student, "batch_size": args.batch_size, "seconds": elapsed,
              "learner_updates_per_s": updates / elapsed, "games": rows,
              "plan_total_bytes": plan.total_bytes, "shards_rss_total_bytes": sum(r["shard_rss_bytes"] for r in rows)}
    print(f"\n{'game':<16} {'actions':>7} {'labelled/s':>10} {'stored':>8} {'ring MiB':>9} {'shard RSS MiB':>13}")
    for r in rows:
        print(f"{r['game']:<16} {r['actions']:>7} {r['labelled_steps_per_s']:>10,.0f} {r['stored_steps']:>8,} "
              f"{r['ring_bytes'] / 2**20:>9,.1f} {r['shard_rss_bytes'] / 2**20:>13,.0f}")
    print(f"learner ({args.student}, batch {args.batch_size}, CPU): {result['learner_updates_per_s']:.1f} updates/s; "
          f"{len(rows)} games labelled {sum(r['labelled_steps_per_s'] for r in rows):,.0f} steps/s in all")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
