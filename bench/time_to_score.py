"""DQN time-to-score: frames and wall time until a teacher run first reached a score.

    python bench/time_to_score.py [--runs RUN_DIR ...] [--out bench/out/time_to_score.json]

Reads learning curves, not timings taken here: the zoo cards' (`trained.curve`, every scored
checkpoint with the wall time its frames were reached) or, with --runs, teacher run
directories'. Two marks per game: the first checkpoint clearly above the random policy (its
mean above the random mean's 95% upper bound; the random score comes from the zoo card of that
game) and the first within 90% of the run's best checkpoint. Checkpoint scores are the run's
own short evaluations (8 episodes by default), so a mark is as noisy as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill.rundir.directory import RunDir  # noqa: E402
from atari_distill.zoo import catalog, publish  # noqa: E402


def first_reaching(curve: list[dict], score: float) -> dict | None:
    return next((point for point in curve if point["score"] >= score), None)


def marks(game: str, curve: list[dict], random: dict | None, run_frames: int, wall_s: float, device: str) -> dict:
    best = max(point["score"] for point in curve)
    above_random = None if random is None else first_reaching(curve, random["mean"] + (random["ci95"] or 0) + 1e-9)
    near_best = first_reaching(curve, 0.9 * best)
    return {"game": game, "device": device, "random_mean": random and random["mean"], "best_checkpoint_score": best,
            "above_random": above_random, "within_90pct_of_best": near_best, "run_frames": run_frames,
            "wall_s": wall_s, "frames_per_s": run_frames / wall_s if wall_s else None}


def from_card(game: str) -> dict:
    card = catalog.card(game)
    trained = card["trained"]
    return marks(game, trained["curve"], card["random_score"], trained["run_frames"], trained["wall_s"],
                 trained["device"])


def from_run(path: str) -> dict:
    config = RunDir(path).read_config()
    summary = json.loads((Path(path) / "summary.json").read_text())
    game = config["game"]
    random = catalog.card(game)["random_score"] if game in catalog.games() else None
    return marks(game, publish.learning_curve(path), random, summary["frames"], summary["wall_s"],
                 summary.get("learner_device", "?"))


def text(point: dict | None) -> str:
    if point is None:
        return "not reached"
    minutes = "?" if point["elapsed_s"] is None else f"{point['elapsed_s'] / 60:.0f} min"
    return f"{point['frames']:,} frames, {minutes} ({point['score']:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=None, metavar="RUN_DIR",
                        help="teacher run directories (default: every zoo card)")
    parser.add_argument("--out", default="bench/out/time_to_score.json")
    args = parser.parse_args()
    rows = [from_run(path) for path in args.runs] if args.runs else [from_card(game) for game in catalog.games()]
    if not rows:
        raise SystemExit("no curves: the zoo is empty and no --runs were given")
    print(f"{'game':<15} {'device':<6} {'clearly above random':<34} {'within 90% of best':<34} {'frames/s':>8}")
    for row in rows:
        print(f"{row['game']:<15} {row['device']:<6} {text(row['above_random']):<34} "
              f"{text(row['within_90pct_of_best']):<34} {row['frames_per_s'] or 0:>8,.0f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
