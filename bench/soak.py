"""Memory over a long run: does any process grow once the replay is full?

    python bench/soak.py [--minutes 30] [--kinds distill,online] [--interval 60] [--out bench/out/soak.json]

Runs a distill run and an online run (one after the other, each for --minutes counted from
when its replay shard is up, ended by a stop request as Ctrl-C would) in this process, and
every --interval seconds samples the resident memory of every process of the run, read from
/proc (the driver, each Ray actor by its title, Ray's own raylet, GCS and helpers) and the
object store's use. The replay is small (--capacity-hours) so its ring is full early; growth
per hour is the slope of a line fitted to each process's samples after --warmup minutes, as a
share of its mean. Writes the samples, the growth table and a plot (PNG beside the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.cluster.processes import descendants, role  # noqa: E402
from atari_distill.pipelines.stopping import StopToken  # noqa: E402
from atari_distill.pipelines.config import DistillConfig, OnlineConfig  # noqa: E402
from atari_distill.ui.progress import Progress  # noqa: E402


def rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else None


def object_store_mib() -> float | None:
    import ray
    from ray._private.internal_api import memory_summary

    if not ray.is_initialized():  # the run has not connected yet (asking would start a runtime of our own)
        return None
    try:
        text = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    except Exception:  # the runtime is going down
        return None
    found = re.search(r"Plasma memory usage (\d+) MiB", text)
    return float(found.group(1)) if found else None


def sample(started: float) -> dict:
    processes = {"driver": rss_mib(os.getpid())}
    for pid in sorted(descendants(os.getpid())):
        name, rss = role(pid), rss_mib(pid)
        if name and rss is not None:
            processes[f"{name}:{pid}"] = rss
    return {"t_s": time.monotonic() - started, "rss_mib": processes, "object_store_mib": object_store_mib()}


def growth(samples: list[dict], warmup_s: float) -> list[dict]:
    """Per process: mean RSS after warm-up and the fitted growth per hour, in MiB and % of the mean."""
    late = [s for s in samples if s["t_s"] >= warmup_s]
    rows = []
    for name in sorted({n for s in late for n in s["rss_mib"]}):
        points = [(s["t_s"], s["rss_mib"][name]) for s in late if name in s["rss_mib"]]
        if len(points) < 3:
            continue
        t, rss = np.array(points).T
        slope = float(np.polyfit(t, rss, 1)[0]) * 3600
        rows.append({"process": name, "samples": len(points), "mean_mib": float(rss.mean()),
                     "growth_mib_per_h": slope, "growth_pct_per_h": 100 * slope / float(rss.mean())})
    store = [(s["t_s"], s["object_store_mib"]) for s in late if s["object_store_mib"] is not None]
    if len(store) >= 3:
        t, used = np.array(store).T
        rows.append({"process": "object store", "samples": len(store), "mean_mib": float(used.mean()),
                     "growth_mib_per_h": float(np.polyfit(t, used, 1)[0]) * 3600,
                     "growth_pct_per_h": None if used.mean() == 0 else
                     100 * float(np.polyfit(t, used, 1)[0]) * 3600 / float(used.mean())})
    return rows


def run_kind(kind: str, args, folder: Path) -> dict:
    from atari_distill.pipelines.distill import run_distill
    from atari_distill.pipelines.online import run_online

    stop = StopToken()
    if kind == "distill":
        cfg = DistillConfig.from_flags(game=args.game, updates=10**9, capacity_hours=args.capacity_hours, log_every=200,
                            checkpoint_every=10**6, eval_episodes=1, out=str(folder / kind)).validate()
        run = lambda: run_distill(cfg, echo=Progress.quiet(), stop=stop)
    else:
        cfg = OnlineConfig.from_flags(game=args.game, preset="net3", frames=10**9, capacity_hours=args.capacity_hours,
                           distill_capacity_hours=args.capacity_hours, min_replay=2000, distill_min_replay=1000,
                           eval_every=200_000, eval_episodes=1, log_every=100, checkpoint_every=10**6,
                           out=str(folder / kind)).validate()
        run = lambda: run_online(cfg, echo=Progress.quiet(), stop=stop)
    samples, started, done = [], time.monotonic(), threading.Event()
    up: list[float] = []  # when the run's replay shard was first seen: start-up is not soak time

    def sampler():
        while not done.wait(0 if not samples else args.interval):
            samples.append(sample(started))
            if not up and any(name.startswith("ReplayShard") for name in samples[-1]["rss_mib"]):
                up.append(time.monotonic())
            if up and time.monotonic() - up[0] >= args.minutes * 60:
                stop.request("the soak's duration")
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        summary = run()
    finally:
        done.set()
        thread.join()
    import ray

    ray.shutdown()
    return {"kind": kind, "samples": samples, "growth": growth(samples, args.warmup * 60),
            "updates": summary.get("updates"), "wall_s": summary.get("wall_s")}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for axis, result in zip(axes[0], results):
        names = sorted({n for s in result["samples"] for n in s["rss_mib"]})
        for name in names:
            points = [(s["t_s"] / 60, s["rss_mib"][name]) for s in result["samples"] if name in s["rss_mib"]]
            axis.plot(*zip(*points), label=name.split(":")[0])
        axis.set(title=f"{result['kind']}: resident memory", xlabel="minutes", ylabel="MiB")
        axis.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of the growth fit")
    parser.add_argument("--kinds", default="distill,online")
    parser.add_argument("--game", default="pong")
    parser.add_argument("--capacity-hours", type=float, default=0.1)
    parser.add_argument("--out", default="bench/out/soak.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    results = [run_kind(kind, args, folder) for kind in args.kinds.split(",")]
    print(f"{'run':<8} {'process':<28} {'samples':>7} {'mean MiB':>9} {'MiB/h':>8} {'%/h':>7}")
    for result in results:
        for row in result["growth"]:
            pct = "n/a" if row["growth_pct_per_h"] is None else f"{row['growth_pct_per_h']:.2f}"
            print(f"{result['kind']:<8} {row['process']:<28} {row['samples']:>7} {row['mean_mib']:>9.1f} "
                  f"{row['growth_mib_per_h']:>8.2f} {pct:>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "runs": results}, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
