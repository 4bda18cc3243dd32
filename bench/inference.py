"""What a student costs to run where it is deployed: an agent in a game loop, on a CPU, one frame at a time.

    python bench/inference.py [--presets nature,net1,net2,net3,multi-10] [--iters 2000] [--out bench/out/inference.json]
    python bench/inference.py --play RUN_DIR[,RUN_DIR...] [--episodes 30]

Per preset (one head of 18 actions, as the paper counts; multi-10 with one head) and runtime (PyTorch
eager, torch.export's program, onnxruntime float32, onnxruntime int8): batch-1 latency (median and
p99 over --iters calls) and batch-32 throughput, on one thread and on every core, the file's size
and the peak memory the model adds to a fresh process. Every (preset, runtime) is measured in its own
process, so no model warms another's caches. Ratios are to the Nature network in the same run,
beside its ratio of multiply-adds. Weights are random (latency does not depend on them); int8 is
calibrated on real frames.

--play takes distilled run directories: each student is exported as float32 and as int8, both play the
protocol's report episodes through onnxruntime, and the table states each score with its CI, int8's
agreement with float32 on held-out frames, and whether int8's mean lies inside float32's 95% CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.actors.teachers import calibration_frames  # noqa: E402
from atari_distill.models.checkpoint import make_payload, save_checkpoint  # noqa: E402
from atari_distill.models.export import (EXPORT_FORMAT, EXPORT_VERSION, OnnxQ, Pt2Q, onnx_bytes, pt2_bytes,  # noqa: E402
                           pt2_program, quantize_int8)
from atari_distill.models.networks import KERNELS, PRESETS, QNetwork, parameter_count  # noqa: E402

RUNTIMES = ("torch-eager", "torch-export", "onnxruntime-fp32", "onnxruntime-int8")
FILES = {"torch-eager": "model.pt", "torch-export": "model.pt2", "onnxruntime-fp32": "model.onnx",
         "onnxruntime-int8": "model-int8.onnx"}
ACTIONS = 18
GAME = "ms_pacman"  # whose real frames calibrate int8 and feed every timing


def multiply_adds(preset: str) -> int:
    spec, size, channels, total = PRESETS[preset], 84, 4, 0
    for width, (kernel, stride) in zip(spec.convs, KERNELS):
        size = (size - kernel) // stride + 1
        total += width * channels * kernel * kernel * size * size
        channels = width
    features = channels * size * size
    for width in spec.hidden:
        total += features * width
        features = width
    if spec.head_hidden:
        total += features * spec.head_hidden
        features = spec.head_hidden
    return total + features * ACTIONS


def real_frames(count: int = 256) -> np.ndarray:
    return calibration_frames(GAME, 0).numpy()[:count]


def build_artifacts(preset: str, folder: Path, frames: np.ndarray) -> None:
    torch.manual_seed(0)
    net = QNetwork(preset, {GAME: ACTIONS}).eval()
    metadata = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "heads": {GAME: ACTIONS}, "outputs": [GAME],
                "env_modes": {GAME: "native"}, "preset": preset, "precision": "float32"}
    save_checkpoint(folder / FILES["torch-eager"], make_payload(net, "student"))
    (folder / FILES["torch-export"]).write_bytes(pt2_bytes(pt2_program(net, [GAME]), metadata))
    data = onnx_bytes(net, [GAME], metadata)
    (folder / FILES["onnxruntime-fp32"]).write_bytes(data)
    (folder / FILES["onnxruntime-int8"]).write_bytes(quantize_int8(data, frames[:128]))


def memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (the peak) of this process; unlike ru_maxrss, VmHWM does not carry the parent's
    peak across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(runtime: str, path: str, iters: int, threads_list: list[int]) -> dict:
    """Runs in its own process: load, time batch 1 and batch 32 at each thread count, report memory."""
    import onnxruntime  # noqa: F401  (imported before the baseline, as torch is: the column is the model's own)

    frames = np.load(Path(path).parent / "frames.npy")
    before = memory_mib("VmRSS")
    out = {"rows": []}
    for threads in threads_list:
        torch.set_num_threads(threads)
        if runtime == "torch-eager":
            from atari_distill.models.checkpoint import build_network, load_checkpoint
            net = build_network(load_checkpoint(path)).eval()

            def call(obs, net=net):
                with torch.inference_mode():
                    return net(torch.from_numpy(obs)).numpy()
        elif runtime == "torch-export":
            call = Pt2Q(Path(path).read_bytes())
        else:
            call = OnnxQ(Path(path).read_bytes(), threads=threads)
        one, batch = frames[:1], frames[:32]
        for _ in range(max(20, iters // 20)):
            call(one)
        times = []
        for i in range(iters):
            obs = frames[i % len(frames)][None]
            started = time.perf_counter()
            call(obs)
            times.append(time.perf_counter() - started)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < max(0.5, iters / 4000):
            call(batch)
            calls += 1
        elapsed = time.perf_counter() - started
        out["rows"].append({"threads": threads, "batch1_median_us": 1e6 * float(np.median(times)),
                            "batch1_p99_us": 1e6 * float(np.percentile(times, 99)),
                            "batch32_frames_per_s": 32 * calls / elapsed})
    out["peak_mib_added"] = memory_mib("VmHWM") - before
    return out


def measure(presets: list[str], iters: int, threads_list: list[int]) -> list[dict]:
    rows = []
    frames = real_frames()
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            folder = Path(tmp) / preset
            folder.mkdir()
            np.save(folder / "frames.npy", frames)
            build_artifacts(preset, folder, frames)
            for runtime in RUNTIMES:
                path = folder / FILES[runtime]
                result = subprocess.run([sys.executable, __file__, "--worker", runtime, str(path), "--iters",
                                         str(iters), "--threads", ",".join(map(str, threads_list))],
                                        capture_output=True, text=True, timeout=900)
                if result.returncode != 0:
                    raise RuntimeError(f"{preset} {runtime}: {result.stderr[-2000:]}")
                measured = json.loads(result.stdout.strip().splitlines()[-1])
                for row in measured["rows"]:
                    rows.append({"preset": preset, "runtime": runtime, **row, "file_bytes": path.stat().st_size,
                                 "peak_mib_added": measured["peak_mib_added"],
                                 "params": parameter_count(QNetwork(preset, {GAME: ACTIONS})),
                                 "multiply_adds": multiply_adds(preset)})
                print(f"  {preset:<9} {runtime:<17} " + "  ".join(
                    f"{r['threads']}t {r['batch1_median_us']:7.0f} us" for r in measured["rows"]), flush=True)
    nature = {(r["runtime"], r["threads"]): r for r in rows if r["preset"] == "nature"}
    fastest_nature = {t: min((r["batch1_median_us"] for r in nature.values() if r["threads"] == t), default=None)
                      for t in threads_list}
    for row in rows:
        base, fastest = nature.get((row["runtime"], row["threads"])), fastest_nature[row["threads"]]
        row["nature_over_this_same_runtime"] = base["batch1_median_us"] / row["batch1_median_us"] if base else None
        row["nature_fastest_over_this"] = fastest / row["batch1_median_us"] if fastest else None
        row["macs_ratio"] = multiply_adds("nature") / row["multiply_adds"]
    return rows


def play(runs: list[str], episodes: int, workers: int) -> list[dict]:
    """Each run's student as float32 and int8 ONNX, both played on the protocol's report seeds."""
    from atari_distill.evaluation.protocol import REPORT, EvalProtocol
    from atari_distill.evaluation.episodes import evaluate_parallel
    from atari_distill.cluster.runtime import connect
    from atari_distill.models.export import load_exported
    from atari_distill.pipelines.export import run_export
    from atari_distill.pipelines.sources import for_game

    connect(None, cpus_needed=workers)
    protocol = EvalProtocol(episodes=episodes)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            results = {}
            for precision in ("float32", "int8"):
                path = Path(tmp) / f"{Path(run).name}-{precision}.onnx"
                metadata = run_export(run, str(path), int8=precision == "int8", echo=lambda *_: None)
                payload = for_game(load_exported(path), metadata["outputs"][0])
                game = metadata["outputs"][0]
                score = evaluate_parallel(payload, game, episodes, workers, **protocol.play(REPORT, payload))
                results[precision] = (metadata, score)
            (meta, fp), (meta8, q8) = results["float32"], results["int8"]
            source = meta["source_scores"].get(game)
            rows.append({"run": run, "game": game, "preset": meta["preset"], "episodes": episodes,
                         "source_score": source, "float32": {"mean": fp.mean, "ci95": fp.ci95},
                         "int8": {"mean": q8.mean, "ci95": q8.ci95},
                         "int8_agreement": meta8["int8"]["per_game"][game]["agreement"],
                         "int8_frames": meta8["int8"]["per_game"][game]["frames"],
                         "int8_within_float_ci": abs(q8.mean - fp.mean) <= (fp.ci95 or 0),
                         "float_bytes": len(Path(tmp, f"{Path(run).name}-float32.onnx").read_bytes()),
                         "int8_bytes": len(Path(tmp, f"{Path(run).name}-int8.onnx").read_bytes())})
            print(f"  {game:<15} float32 {fp.mean:8.1f} +/- {fp.ci95 or 0:6.1f}   int8 {q8.mean:8.1f} +/- "
                  f"{q8.ci95 or 0:6.1f}   agreement {meta8['int8']['per_game'][game]['agreement']:.3f}", flush=True)
    return rows


def ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(result: dict) -> str:
    lines = []
    if result.get("rows"):
        lines += ["| preset | params | MACs (M) | runtime | threads | batch 1 median (us) | p99 (us) | "
                  "batch 32 (frames/s) | x faster than Nature, same runtime | x faster than Nature's fastest | "
                  "MACs ratio | file (KB) | peak memory (MiB) |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            lines.append(f"| {r['preset']} | {r['params']:,} | {r['multiply_adds'] / 1e6:.2f} | {r['runtime']} | "
                         f"{r['threads']} | {r['batch1_median_us']:,.0f} | {r['batch1_p99_us']:,.0f} | "
                         f"{r['batch32_frames_per_s']:,.0f} | {ratio(r['nature_over_this_same_runtime'])} | "
                         f"{ratio(r['nature_fastest_over_this'])} | {r['macs_ratio']:.1f} | {r['file_bytes'] / 1024:,.0f} | "
                         f"{r['peak_mib_added']:.0f} |")
    if result.get("play"):
        lines += ["", "| game | preset | float32 (mean +/- 95% CI) | int8 | int8 inside float's CI | int8 agreement "
                      "with float32 | file float32 / int8 (KB) |", "|---|---|---|---|---|---|---|"]
        for r in result["play"]:
            lines.append(f"| {r['game']} | {r['preset']} | {r['float32']['mean']:.1f} +/- {r['float32']['ci95'] or 0:.1f}"
                         f" | {r['int8']['mean']:.1f} +/- {r['int8']['ci95'] or 0:.1f} | "
                         f"{'yes' if r['int8_within_float_ci'] else 'no'} | {r['int8_agreement']:.3f} "
                         f"({r['int8_frames']} frames) | {r['float_bytes'] / 1024:,.0f} / {r['int8_bytes'] / 1024:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="nature,net1,net2,net3,multi-10")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--threads", default=None, help="thread counts, comma-separated (default: 1 and every core)")
    parser.add_argument("--play", default=None, metavar="RUN_DIRS", help="distilled runs whose students to play as "
                                                                         "float32 and int8")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("RUNTIME", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default="bench/out/inference.json")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, os.cpu_count() or 1})
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.iters, threads)))
        return
    started = time.time()
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "iters": args.iters, "game": GAME}
    import onnxruntime

    result["onnxruntime"] = onnxruntime.__version__
    if args.presets:
        result["rows"] = measure(args.presets.split(","), args.iters, threads)
    if args.play:
        result["play"] = play(args.play.split(","), args.episodes, args.workers)
    result["wall_s"] = time.time() - started
    print(markdown(result))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
