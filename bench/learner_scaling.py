"""Learner scaling in one run: a data-parallel student over G replicas, and a sweep of K
independent students, all sampling one filled replay shard through Ray.

    python bench/learner_scaling.py [--replicas 1,2] [--sweep 1,2] [--batch-size 32] [--updates 200]
                                    [--student net1] [--address ADDR] [--out bench/out/learner_scaling.json]

Ratios are to the one-learner row of the same run: data-parallel `scaling` is total samples/s
over one replica's (G replicas at batch B train on G x B samples per update); a sweep's is the
total over one student's. On a GPU cluster each learner takes a GPU; on CPU they share cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.replay_bench import ACTIONS, messages  # noqa: E402
from atari_distill.cluster.learner_group import LearnerGroup  # noqa: E402
from atari_distill.cluster.runtime import connect, has_gpu  # noqa: E402
from atari_distill.pipelines.config import DistillConfig  # noqa: E402
from atari_distill.pipelines.distill import learner_config  # noqa: E402
from atari_distill.replay.rate_limiter import RateLimit  # noqa: E402
from atari_distill.replay.shard import launch_shards  # noqa: E402


def filled_shard(steps: int):
    import ray

    shard = launch_shards("pong", ACTIONS, [steps], RateLimit(ratio=0.0, insert_steps=256, min_replay=1,
                                                                batch_size=32), concurrency=32)[0]
    for message in messages(max(1, steps // 256)):
        ray.get(shard.insert.remote(message))
    shard.close.remote()
    return shard


def measure(groups: list[LearnerGroup], updates: int) -> float:
    """Seconds for every group to train `updates` (after a warm-up), all at once."""
    for group in groups:
        group.start(None)
    for group in groups:
        group.wait_for_replay()
    for group in groups:
        group.collect(group.submit_train(10))
    started = time.perf_counter()
    calls = [group.submit_train(updates) for group in groups]
    for group, call in zip(groups, calls):
        group.collect(call)
    elapsed = time.perf_counter() - started
    for group in groups:
        group.kill()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--sweep", default="1,2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--student", default="net1")
    parser.add_argument("--steps", type=int, default=8192, help="steps in the replay shard")
    parser.add_argument("--address", default=None)
    parser.add_argument("--out", default="bench/out/learner_scaling.json")
    args = parser.parse_args()
    replicas = [int(g) for g in args.replicas.split(",")]
    sweeps = [int(k) for k in args.sweep.split(",")]
    connect(args.address, cpus_needed=max(replicas + sweeps) + 1)
    use_gpu = has_gpu()
    shard = filled_shard(args.steps)
    config = learner_config(DistillConfig.from_flags(student=args.student, batch_size=args.batch_size,
                                          device="auto" if use_gpu else "cpu").validate(), args.student, "kl", 1)

    def group(label: str, count: int) -> LearnerGroup:
        return LearnerGroup(label, label, config, {"pong": ACTIONS}, {"pong": [shard]}, None, count, use_gpu,
                            [{}] * count)

    rows = []
    for g in replicas:
        elapsed = measure([group("dp", g)], args.updates)
        rows.append({"mode": "data-parallel", "learners": g, "updates_per_s": args.updates / elapsed,
                     "samples_per_s": g * args.batch_size * args.updates / elapsed})
    for k in sweeps:
        elapsed = measure([group(f"s{i}", 1) for i in range(k)], args.updates)
        rows.append({"mode": "sweep", "learners": k, "updates_per_s": args.updates / elapsed,
                     "samples_per_s": k * args.batch_size * args.updates / elapsed})
    for row in rows:
        base = next(r for r in rows if r["mode"] == row["mode"] and r["learners"] == min(
            x["learners"] for x in rows if x["mode"] == row["mode"]))
        row["scaling"] = row["samples_per_s"] / base["samples_per_s"]

    device = torch.cuda.get_device_name(0) if use_gpu else f"CPU ({platform.processor() or 'x86_64'})"
    print(f"learner scaling: {args.student}, batch {args.batch_size}, {args.updates} updates, {device}")
    print(f"{'mode':<14} {'learners':>8} {'updates/s':>10} {'samples/s':>10} {'scaling':>8}")
    for row in rows:
        print(f"{row['mode']:<14} {row['learners']:>8} {row['updates_per_s']:>10.1f} {row['samples_per_s']:>10,.0f} "
              f"{row['scaling']:>8.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"device": device, "student": args.student, "batch_size": args.batch_size,
                                          "updates": args.updates, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
