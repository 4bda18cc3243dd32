"""Replay in one run: measured memory per stored step, insert and sample rates against a NumPy ceiling,
and the learner's idle fraction.

    python bench/replay_bench.py [--capacity 200000] [--shards 1,2] [--seconds 4] [--out bench/out/replay.json]

Every rate is stated as a ratio to a ceiling measured in the same process: the same bytes
moved by a plain NumPy fancy-index copy (a gather for sampling, a scatter for inserting).
Memory is resident memory (VmRSS) before and after filling a ring, not a formula.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.cluster.runtime import connect  # noqa: E402
from atari_distill.learner.batches import BatchStream, request_shape, shard_slot_bytes  # noqa: E402
from atari_distill.learner.learner import Learner  # noqa: E402
from atari_distill.learner.schedule import GameSchedule  # noqa: E402
from atari_distill.pipelines.config import DistillConfig  # noqa: E402
from atari_distill.pipelines.distill import learner_config  # noqa: E402
from atari_distill.replay.chunk import Chunk, encode  # noqa: E402
from atari_distill.replay.frame_ring import FRAME_BYTES, STACK, bytes_per_step  # noqa: E402
from atari_distill.replay.rate_limiter import RateLimit  # noqa: E402
from atari_distill.replay.shard import ReplayShard, launch_shards  # noqa: E402

ACTIONS, STEPS, ENVS = 6, 64, 4  # one chunk: 64 steps of 4 envs, as the default actor sends


def messages(count: int, actor_id: int = 0, seed: int = 0) -> list[bytes]:
    """Consecutive chunks of one actor, frames random so nothing compresses or dedups."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        first = np.zeros((STEPS, ENVS), bool)
        first[0] = index == 0
        out.append(encode(Chunk(
            game="pong", actor_id=actor_id, chunk_index=index, teacher_version=0,
            frames=rng.integers(0, 256, (STEPS, ENVS, 84, 84), dtype=np.uint8),
            q=rng.standard_normal((STEPS, ENVS, ACTIONS)).astype(np.float32),
            actions=rng.integers(0, ACTIONS, (STEPS, ENVS), dtype=np.uint8),
            rewards=np.zeros((STEPS, ENVS), np.float32), first=first,
            terminated=np.zeros((STEPS, ENVS), bool), truncated=np.zeros((STEPS, ENVS), bool))))
    return out


def rss() -> int:
    gc.collect()
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def rate(fn, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        count += fn()
    return count / (time.perf_counter() - started)


def memory_and_local_rates(capacity: int, seconds: float, batch: int) -> dict:
    pool = messages(16)
    before = rss()
    shard = ReplayShard("pong", ACTIONS, capacity)
    index = 0
    while shard.ring.inserted < capacity + STEPS * ENVS:  # fill, then wrap once: every page touched
        shard.insert(pool[index % len(pool)])
        index += 1
    after = rss()
    measured = (after - before) / capacity
    allowed = 1.05 * bytes_per_step(ACTIONS)

    counter = iter(range(10**12))
    insert_rate = rate(lambda: shard.insert(pool[next(counter) % len(pool)]) and STEPS * ENVS, seconds)
    sample_rate = rate(lambda: len(shard.sample(batch)["obs"]) and 1, seconds)

    frames, rng = shard.ring.frames, np.random.default_rng(0)
    q, back = shard.ring.q, np.arange(STACK - 1, -1, -1)

    def gather():  # the rows a stack reads: a step and its three predecessors
        slots = rng.integers(STACK, capacity, batch)
        return (frames[slots[:, None] - back], q[slots]) and 1

    gather_rate = rate(gather, seconds)
    block = np.random.default_rng(1).integers(0, 256, (STEPS * ENVS, 84, 84), dtype=np.uint8)
    qblock = np.zeros((STEPS * ENVS, ACTIONS), np.float32)

    def scatter():
        slots = rng.integers(0, capacity - STEPS * ENVS) + np.arange(STEPS * ENVS)
        frames[slots] = block
        q[slots] = qblock
        return STEPS * ENVS

    scatter_rate = rate(scatter, seconds)
    return {
        "capacity_steps": capacity,
        "rss_before_bytes": before, "rss_after_bytes": after,
        "measured_bytes_per_step": measured, "formula_bytes_per_step": bytes_per_step(ACTIONS),
        "bound_bytes_per_step": allowed, "measured_over_formula": measured / bytes_per_step(ACTIONS),
        "local_insert_steps_per_s": insert_rate, "ceiling_scatter_steps_per_s": scatter_rate,
        "local_insert_ratio": insert_rate / scatter_rate,
        "local_sample_batches_per_s": sample_rate, "ceiling_gather_batches_per_s": gather_rate,
        "local_sample_ratio": sample_rate / gather_rate,
    }


STREAM_PATHS = (  # (label, shared slots, batches per call): the default for the batch size last
    ("object store, 1/call", False, 1), ("object store, 4/call", False, 4), ("shared slots, 1/call", True, 1),
    ("shared slots, 4/call", True, 4), ("shared slots, 8/call", True, 8), ("shared slots, 16/call", True, 16),
    ("shared slots, default", True, None))


def ray_rates(shards: int, seconds: float, batch: int, prefetch: int, ceiling: dict) -> dict:
    """Shard actors as a run starts them: insert from one client per shard, then sample with prefetch."""
    import ray

    capacity = 4 * 16 * STEPS * ENVS
    limiter = RateLimit(ratio=0.0, min_replay=1, insert_steps=STEPS * ENVS, batch_size=batch)
    slots = max(shard_slot_bytes(batch, prefetch, per_call=per_call) for *_, per_call in STREAM_PATHS)
    handles = launch_shards("pong", ACTIONS, [capacity] * shards, limiter, concurrency=prefetch + 4, slot_bytes=slots)
    ray.get([h.size.remote() for h in handles])  # started: process start-up is not insert time
    pools = [ray.put(m) for m in messages(16)]
    started, sent = time.perf_counter(), 0
    inflight = []
    while time.perf_counter() - started < seconds:
        for k, handle in enumerate(handles):
            inflight.append(handle.insert.remote(pools[sent % len(pools)]))
        sent += 1
        if len(inflight) >= 2 * shards:
            ray.get(inflight[:shards])
            inflight = inflight[shards:]
    ray.get(inflight)
    insert_rate = sent * STEPS * ENVS / (time.perf_counter() - started) / shards

    pending, started, got = [], time.perf_counter(), 0
    rng = np.random.default_rng(0)
    while time.perf_counter() - started < seconds:
        while len(pending) < prefetch * shards:
            pending.append(handles[int(rng.integers(shards))].sample.remote(batch))
        ray.get(pending.pop(0))  # fetched in full, then dropped
        got += 1
    ray.get(pending)
    sample_rate = got / (time.perf_counter() - started) / shards
    streamed = {}
    for path, shared, per_call in STREAM_PATHS:  # what a learner on the shards' node gets
        stream = BatchStream({"pong": handles}, batch, prefetch, GameSchedule({"pong": 1.0}), shared=shared,
                             per_call=per_call)
        stream.next()
        streamed[path] = rate(lambda: stream.next() and 1, seconds) / shards
        assert shared == (stream.slot_batches > 0), "the slot path was not taken"
        stream.close()
    for handle in handles:
        ray.kill(handle)
    obs = np.zeros((batch, STACK, 84, 84), np.uint8)
    object_store = rate(lambda: ray.get(ray.put(obs)) is not None, seconds)
    return {
        "shards": shards, "object_store_put_get_per_s": object_store,
        "sample_of_object_store_ceiling": sample_rate / object_store,
        "insert_steps_per_s_per_shard": insert_rate,
        "insert_ratio": insert_rate / ceiling["ceiling_scatter_steps_per_s"],
        "sample_batches_per_s_per_shard": sample_rate,
        "sample_ratio": sample_rate / ceiling["ceiling_gather_batches_per_s"],
        "stream_batches_per_s_per_shard": streamed,
        "stream_ratio": {path: r / ceiling["ceiling_gather_batches_per_s"] for path, r in streamed.items()},
    }


def request_shapes(games: int, seconds: float, batch: int, prefetch: int) -> dict:
    """The learners' streams beyond one game's student: a multi-task student's over `games` shards
    (one a game, drawn in turn) and a DQN's n-step transitions (two stacks a sample) from one shard,
    each at one batch a request and at the default several, in batches/s, one run."""
    import ray

    limiter = RateLimit(ratio=0.0, min_replay=1, insert_steps=STEPS * ENVS, batch_size=batch)
    handles = {}
    for g, stacks in enumerate([1] * games + [2]):  # a shard serves one kind of batch, as in a run
        handles[f"game{g}" if g < games else "dqn"] = launch_shards(
            "pong", ACTIONS, [4 * STEPS * ENVS], limiter, concurrency=prefetch + 4,
            slot_bytes=shard_slot_bytes(batch, prefetch, stacks=stacks))[0]
    for g, handle in enumerate(handles.values()):
        ray.get([handle.insert.remote(m) for m in messages(4, seed=g)])
    dqn = handles.pop("dqn")
    cases = {"multi-task": ({game: [h] for game, h in handles.items()}, "sample", {}),
             "DQN transitions": ({"pong": [dqn]}, "sample_transitions", {"n": 3, "gamma": 0.99})}
    rates, through_slots = {}, {}
    for name, (shards, method, kwargs) in cases.items():
        for per_call in (1, None):
            stream = BatchStream(shards, batch, prefetch, GameSchedule({game: 1.0 for game in shards}),
                                 method=method, per_call=per_call, **kwargs)
            stream.next()
            label = f"{name}, {stream.per_call}/call"
            rates[label] = rate(lambda: stream.next() and 1, seconds)
            drawn = stream.slot_batches + stream.object_store_batches
            through_slots[label] = stream.slot_batches / drawn  # 1.0: none fell back to the object store
            stream.close()
    for handle in [*handles.values(), dqn]:
        ray.kill(handle)
    return {"games": games, "batch_size": batch, "batches_per_s": rates, "through_slots": through_slots}


def bare_loop(student: str, batch: int, updates: int, heads: dict[str, int] | None = None) -> float:
    """The ceiling for a learner: the same network, loss and optimizer stepping on one fixed batch per
    head (game after game, as a multi-task schedule draws them) in this process, with no replay, Ray
    or logging around it. On CPU with one thread, as the learner actor gets; on CUDA each head's whole
    step is one graph (PyTorch's own capture recipe) on a batch already on the device, in bf16 autocast
    as the learner trains."""
    from atari_distill.learner.learner import student_optimizer
    from atari_distill.learner.losses import make_loss
    from atari_distill.models.networks import QNetwork

    heads = heads or {"pong": ACTIONS}
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = QNetwork(student, heads).to(device)
    optimizer = student_optimizer(net.parameters(), DistillConfig().student.lr, capturable=cuda)
    loss_fn = make_loss("kl", tau=0.01)
    obs = torch.randint(0, 256, (batch, STACK, 84, 84), dtype=torch.uint8, device=device)
    q_teacher = {game: torch.randn(batch, actions, device=device) for game, actions in heads.items()}

    def step(game: str) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda, cache_enabled=False):
            q = net(obs, game)
        loss_fn(q.float(), q_teacher[game]).backward()
        optimizer.step()
    steps = {game: (lambda g=game: (optimizer.zero_grad(set_to_none=True), step(g))) for game in heads}
    if cuda:
        steps = {game: captured(net, lambda g=game: step(g)) for game in heads}
    order = itertools.cycle(heads)
    for _ in range(3 * len(heads)):
        steps[next(order)]()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(updates):
        steps[next(order)]()
    if cuda:
        torch.cuda.synchronize()
    torch.set_num_threads(threads)
    return updates / (time.perf_counter() - started)


def captured(net: torch.nn.Module, step) -> callable:
    """`step` (zeroed gradients assumed) as a CUDA graph: warmed up on a side stream, then captured."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            for p in net.parameters():
                p.grad = None
            step()
    torch.cuda.current_stream().wait_stream(side)
    used = [p for p in net.parameters() if p.grad is not None]
    for p in net.parameters():
        p.grad = torch.zeros_like(p) if p.grad is not None else None
    grads = [p.grad for p in used]  # the graph holds their addresses, not the tensors: keep them alive
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        torch._foreach_zero_(grads)
        step()
    return lambda: (graph.replay(), grads)


def learner_idle(shards: int, batch: int, updates: int, student: str) -> dict:
    """The learner's time waiting for data while it trains on a filled replay (limiter off), and its
    rate against the bare loop's, measured just before it in this run."""
    import ray

    ceiling = bare_loop(student, batch, updates) if not torch.cuda.is_available() else None

    limiter = RateLimit(ratio=0.0, min_replay=1, insert_steps=STEPS * ENVS, batch_size=batch)
    handles = launch_shards("pong", ACTIONS, [8 * STEPS * ENVS] * shards, limiter, concurrency=8)
    for k, handle in enumerate(handles):
        ray.get([handle.insert.remote(m) for m in messages(8, actor_id=k, seed=k)])
    gpu = torch.cuda.is_available()
    learner = ray.remote(Learner).options(num_cpus=1, num_gpus=1 if gpu else 0).remote(
        learner_config(DistillConfig.from_flags(student=student, batch_size=batch).validate(), student, "kl", 1),
        {"pong": ACTIONS}, {"pong": handles})
    ray.get(learner.wait_for_replay.remote())
    ray.get(learner.train.remote(max(5, updates // 10)))  # warm-up
    metrics = ray.get(learner.train.remote(updates))
    for handle in [learner, *handles]:
        ray.kill(handle)
    return {"shards": shards, "batch_size": batch, "student": student, "device": "cuda" if gpu else "cpu",
            "updates_per_s": metrics["updates_per_s"], "wait_fraction": metrics["wait_fraction"],
            "bare_loop_updates_per_s": ceiling,
            "of_bare_loop": None if ceiling is None else metrics["updates_per_s"] / ceiling}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=200_000, help="steps in the ring measured for memory")
    parser.add_argument("--shards", default="1,2", help="shard counts for the Ray measurements")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--learner-updates", type=int, default=60)
    parser.add_argument("--games", type=int, default=10, help="shards of the multi-task stream measured")
    parser.add_argument("--out", default="bench/out/replay.json")
    args = parser.parse_args()

    local = memory_and_local_rates(args.capacity, args.seconds, args.batch)
    connect(None, cpus_needed=2)
    shard_counts = [int(k) for k in args.shards.split(",")]
    remote = [ray_rates(k, args.seconds, args.batch, args.prefetch, local) for k in shard_counts]
    shapes = request_shapes(args.games, args.seconds, args.batch, args.prefetch)
    idle = [learner_idle(k, b, args.learner_updates if b == args.batch else 5 * args.learner_updates, "net1")
            for k in shard_counts for b in (32, args.batch)]

    print(f"memory: {local['measured_bytes_per_step']:,.1f} bytes/step resident on a filled ring of "
          f"{local['capacity_steps']:,} steps; formula {local['formula_bytes_per_step']:,} "
          f"({local['measured_over_formula']:.3f}x), bound 1.05x = {local['bound_bytes_per_step']:,.0f}")
    print(f"\n{'measure (batch ' + str(args.batch) + ')':<44} {'rate':>14} {'of ceiling':>11}")
    rows = [
        ("NumPy gather ceiling, batches/s", local["ceiling_gather_batches_per_s"], 1.0),
        ("shard.sample in process, batches/s", local["local_sample_batches_per_s"], local["local_sample_ratio"]),
        ("NumPy scatter ceiling, steps/s", local["ceiling_scatter_steps_per_s"], 1.0),
        ("shard.insert in process, steps/s", local["local_insert_steps_per_s"], local["local_insert_ratio"]),
    ]
    for r in remote:
        rows.append((f"Ray, {r['shards']} shard(s): sample batches/s per shard", r["sample_batches_per_s_per_shard"],
                     r["sample_ratio"]))
        for path, shared, per_call in STREAM_PATHS:
            label = path if per_call else f"{path} ({request_shape(args.prefetch, args.batch)[1]}/call)"
            rows.append((f"  learner's stream, {label}, batches/s", r["stream_batches_per_s_per_shard"][path],
                         r["stream_ratio"][path]))
        rows.append((f"Ray, {r['shards']} shard(s): insert steps/s per shard", r["insert_steps_per_s_per_shard"],
                     r["insert_ratio"]))
    rows.append(("Ray object store put+get of one batch, /s", remote[0]["object_store_put_get_per_s"],
                 remote[0]["object_store_put_get_per_s"] / local["ceiling_gather_batches_per_s"]))
    for label, value, ratio in rows:
        print(f"{label:<44} {value:>14,.1f} {ratio:>11.3f}")
    print(f"\n{'stream (' + str(args.games) + ' games; batch ' + str(args.batch) + ')':<44} {'batches/s':>14}")
    for label, value in shapes["batches_per_s"].items():
        print(f"{label:<44} {value:>14,.1f}")
    print(f"\n{'learner (net1)':<32} {'updates/s':>10} {'waiting':>8} {'bare loop':>10} {'of bare':>8}")
    for r in idle:
        bare = "n/a" if r["bare_loop_updates_per_s"] is None else f"{r['bare_loop_updates_per_s']:.1f}"
        share = "n/a" if r["of_bare_loop"] is None else f"{r['of_bare_loop']:.2f}"
        print(f"{r['shards']} shard(s), batch {r['batch_size']:<4} {r['device']:<8}   "
              f"{r['updates_per_s']:>10.1f} {100 * r['wait_fraction']:>7.1f}% {bare:>10} {share:>8}")

    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
              "frame_bytes": FRAME_BYTES, "local": local, "ray": remote, "request_shapes": shapes,
              "learner": idle}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
