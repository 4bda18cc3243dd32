"""Ten games at once on one machine: replay memory, labelled steps/s per game, learner updates/s.

    python bench/multitask_bench.py [--games paper] [--updates 600] [--out bench/out/multitask.json]

Runs the real multi-task pipeline (`run_distill` with a MultitaskConfig: one teacher actor
per game with random teachers, one shard per game, the paper's multi-task student) with the
rate limiter off, so both sides run flat out, and reads the rates from the run's own metrics.
The replay's memory is the run's memory plan (bench/replay_bench.py checks plans against
measured RSS). Evaluation is cut to one episode, as it is not what this measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.games import PAPER_GAMES  # noqa: E402
from pipelines.config import MultitaskConfig  # noqa: E402
from pipelines.distill import run_distill  # noqa: E402


def rates(metrics: list[dict]) -> tuple[float, dict[str, float]]:
    """Learner updates/s and each game's labelled steps/s, from the second log line to the last
    (the first interval includes the replay's fill)."""
    first, last = metrics[0], metrics[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    per_game = {game: (last["replay_per_game"][game]["labelled_steps"] - first["replay_per_game"][game]["labelled_steps"])
                / seconds for game in last["replay_per_game"]}
    return (last["updates"] - first["updates"]) / seconds, per_game


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="paper", help="'paper' (Rusu et al.'s ten) or a comma-separated list")
    parser.add_argument("--capacity-hours", type=float, default=0.05)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--student", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default="bench/out/multitask.json")
    args = parser.parse_args()

    games = ",".join(PAPER_GAMES) if args.games == "paper" else args.games
    with tempfile.TemporaryDirectory() as folder:
        cfg = MultitaskConfig.from_flags(games=games, student=args.student, capacity_hours=args.capacity_hours, replay_ratio=0.0,
                              min_replay=512, batch_size=args.batch_size, chunk_steps=64, updates=args.updates,
                              log_every=args.log_every, checkpoint_every=args.updates, eval_episodes=1,
                              eval_workers=1, holdout_steps=128, out=str(Path(folder) / "run")).validate()
        summary = run_distill(cfg, echo=print)
        metrics = [json.loads(line) for line in (Path(cfg.run.out) / "metrics.jsonl").read_text().splitlines()]
    metrics = [m for m in metrics if m.get("kind", "distill") == "distill"]
    if len(metrics) < 2:
        raise SystemExit(f"--updates {args.updates} gave {len(metrics)} log line(s); give at least two --log-every")
    updates_per_s, labelled = rates(metrics)
    plan = summary["replay"]["memory_plan"]
    rows = [{"game": game, "labelled_steps_per_s": labelled[game],
             "stored_steps": summary["replay"]["replay_per_game"][game]["replay_size"],
             "ring_bytes": sum(s["bytes"] for s in plan["shards"] if s["game"] == game)} for game in cfg.game_list()]
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
              "student": summary["student"], "student_params": summary["student_params"],
              "batch_size": args.batch_size, "updates": summary["updates"], "learner_updates_per_s": updates_per_s,
              "games": rows, "plan_total_bytes": plan["total_bytes"]}
    print(f"\n{'game':<16} {'labelled/s':>10} {'stored':>8} {'ring MiB':>9}")
    for r in rows:
        print(f"{r['game']:<16} {r['labelled_steps_per_s']:>10,.0f} {r['stored_steps']:>8,} {r['ring_bytes'] / 2**20:>9,.1f}")
    print(f"learner ({result['student']}, batch {args.batch_size}, CPU): {updates_per_s:.1f} updates/s; {len(rows)} games "
          f"labelled {sum(labelled.values()):,.0f} steps/s in all; replay plan {plan['total_bytes'] / 2**30:.2f} GiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
