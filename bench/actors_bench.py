"""Teacher actors at scale, in one run: bare emulator steps/s against labelled steps/s reaching the replay.

    python bench/actors_bench.py [--envs 4] [--seconds 8] [--max-actors N] [--out bench/out/actors.json]

For A = 1 .. number of cores: A Ray actors step bare AtariVectorEnvs with random actions
(the ceiling), then A teacher actors (Nature DQN, epsilon 0.05) stream encoded chunks into
one replay shard, rate limit off. The ratio is labelled/bare at the same A. Each teacher
actor reports where its wall time went: waiting for the emulator (env), teacher inference,
chunk encoding, and waiting to send (replay backpressure). Run it on a GPU machine with
--actor-gpus to put the teachers there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.actors.env import actor_seed, env_seeds, make_vector_env  # noqa: E402
from atari_distill.actors.games import game_spec  # noqa: E402
from atari_distill.actors.rollout import RolloutActor  # noqa: E402
from atari_distill.actors.teachers import random_teacher  # noqa: E402
from atari_distill.cluster.runtime import connect  # noqa: E402
from atari_distill.replay.rate_limiter import RateLimit  # noqa: E402
from atari_distill.replay.shard import launch_shards  # noqa: E402


class BareActor:
    def __init__(self, game: str, envs: int, seed: int):
        self.env = make_vector_env(game, envs)
        self.env.reset(seed=env_seeds(seed, envs))
        self.rng = np.random.default_rng(seed)
        self.actions = self.env.single_action_space.n

    def run(self, seconds: float) -> int:
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            self.env.step(self.rng.integers(0, self.actions, self.env.num_envs))
            steps += self.env.num_envs
        return steps


def bare_rate(game: str, actors: int, envs: int, seconds: float) -> float:
    import ray

    handles = [ray.remote(BareActor).options(num_cpus=1).remote(game, envs, actor_seed(0, i)) for i in range(actors)]
    ray.get([h.run.remote(0.5) for h in handles])  # warm
    started = time.perf_counter()
    steps = sum(ray.get([h.run.remote(seconds) for h in handles]))
    rate = steps / (time.perf_counter() - started)
    for h in handles:
        ray.kill(h)
    return rate


def labelled_rate(game, teacher_ref, actors: int, envs: int, seconds: float, groups: int, gpus: float) -> dict:
    import ray

    shard = launch_shards(game.name, game.num_actions, [200_000],
                          RateLimit(ratio=0.0, min_replay=1, insert_steps=64 * envs, batch_size=32),
                          concurrency=actors + 4)[0]
    options = {"num_cpus": 1, "max_concurrency": 2, **({"num_gpus": gpus} if gpus else {})}
    handles = [ray.remote(RolloutActor).options(**options).remote(
        game=game.name, num_envs=envs, seed=actor_seed(0, i), actor_id=i,
        chunk_steps=64, groups=groups, device="cuda" if gpus else "cpu") for i in range(actors)]
    runs = [h.run.remote(shard, teacher_ref) for h in handles]
    while ray.get(shard.stats.remote())["inserted"] < actors * 64 * envs:  # every actor has warmed up
        time.sleep(0.1)
    before, started = ray.get(shard.stats.remote())["inserted"], time.perf_counter()
    stats_before = ray.get([h.stats.remote() for h in handles])
    time.sleep(seconds)
    after, elapsed = ray.get(shard.stats.remote())["inserted"], time.perf_counter() - started
    stats_after = ray.get([h.stats.remote() for h in handles])
    for h in handles:
        h.stop.remote()
    shard.close.remote()
    ray.get(runs)
    for h in [*handles, shard]:
        ray.kill(h)
    phases = {}
    for key in ("env_s", "inference_s", "encode_s", "send_wait_s"):
        spent = sum(a[key] - b[key] for a, b in zip(stats_after, stats_before))
        phases[key.replace("_s", "_fraction")] = spent / (elapsed * actors)
    return {"labelled_steps_per_s": (after - before) / elapsed, **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="pong")
    parser.add_argument("--envs", type=int, default=4, help="environments per actor")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-actors", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--actors", default=None, help="actor counts to measure, comma-separated (default 1 .. max)")
    parser.add_argument("--groups", default="1,2", help="pipelined env groups per actor to compare")
    parser.add_argument("--actor-gpus", type=float, default=0.0, help="GPU share per teacher actor")
    parser.add_argument("--out", default="bench/out/actors.json")
    args = parser.parse_args()

    import ray

    game = game_spec(args.game)
    counts = [int(a) for a in args.actors.split(",")] if args.actors else list(range(1, args.max_actors + 1))
    connect(None, cpus_needed=max(counts) + 1)
    teacher_ref = ray.put(random_teacher(game))
    rows = []
    for actors in counts:
        bare = bare_rate(game.name, actors, args.envs, args.seconds)
        for groups in (int(g) for g in args.groups.split(",")):
            labelled = labelled_rate(game, teacher_ref, actors, args.envs, args.seconds, groups, args.actor_gpus)
            rows.append({"actors": actors, "envs_per_actor": args.envs, "groups": groups, "bare_steps_per_s": bare,
                         **labelled, "ratio": labelled["labelled_steps_per_s"] / bare})

    device = f"GPU x{args.actor_gpus}" if args.actor_gpus else "CPU"
    print(f"teacher: Nature DQN on {device}; {args.envs} envs per actor; {os.cpu_count()} cores")
    print(f"{'actors':>6} {'groups':>6} {'bare/s':>9} {'labelled/s':>11} {'ratio':>6}   where teacher-actor time goes: "
          f"env wait / inference / encode / send wait")
    for r in rows:
        print(f"{r['actors']:>6} {r['groups']:>6} {r['bare_steps_per_s']:>9,.0f} {r['labelled_steps_per_s']:>11,.0f} "
              f"{r['ratio']:>6.2f}   {100 * r['env_fraction']:.0f}% / {100 * r['inference_fraction']:.0f}% / "
              f"{100 * r['encode_fraction']:.0f}% / {100 * r['send_wait_fraction']:.0f}%")
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "teacher_device": device, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
