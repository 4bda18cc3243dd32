"""The paper's flagship: ten games in one `multi-10` network, on the zoo's real teachers.

    python bench/ten_games.py [--data DIR] [--steps 40000] [--updates 30000] [--eval-every 10000]
                              [--schedules fixed,balanced] [--trunks multi-10] [--singles net1]
                              [--out bench/out/ten_games]
    python bench/ten_games.py --live ...     (the GPU node's run: live teacher actors, bench/gpu_ten_games.sh)

Each zoo teacher is recorded once into --data (`launch.py record`, skipped where a complete
recording is there); every student then trains from those recordings, so no teacher actor
competes with the learner, and every row saw the same frames:
- the multi-task student, one per schedule (`--schedule fixed`: equal shares; `balanced`: more
  batches to the games furthest below their teacher, judged on selection seeds) and per trunk
  (`multi-3` over ten games asks what a smaller trunk costs);
- a single-game student per game (`--singles`) with the multi-task run's samples per game.
Every final score is on the report seeds (30 episodes), raw and normalised % of teacher with
lower 95% bounds, and the geometric means with theirs. Prints the table and writes
ten_games.json and ten_games.md; a run already finished in --out is read back, not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fidelity import first_update_at, ratio_cell, run, runner_flag, timed, use_runner  # noqa: E402
from atari_distill.evaluation.statistics import geometric_means  # noqa: E402
from atari_distill.zoo import catalog  # noqa: E402

PAPER_TEN_GAMES = 89.3  # Rusu et al. 2015, multi-task over ten games, geometric mean (secondary summaries)


def recorded(data: Path) -> bool:
    index = data / "index.json"
    return index.is_file() and json.loads(index.read_text()).get("complete", False)


def batches_by(metrics: list[dict], updates: int, game: str, batch_size: int) -> int | None:
    """This game's batches when the student had made `updates` updates in all (the log line at or before it)."""
    counts = [r["samples_per_game"][game] // batch_size for r in metrics
              if r.get("kind", "distill") == "distill" and "samples_per_game" in r and r["updates"] <= updates]
    return counts[-1] if counts else None


def normalised_90pct_at(metrics: list[dict], row: dict) -> int | None:
    """The first update whose curve point is 90% of the way from the random policy to the teacher (all
    three on the selection seeds), or the final update if only the final score (report seeds) is; None
    if neither."""
    reached = first_update_at(metrics, "eval", row["game"], 0.9, normalised=True)
    return reached if reached is not None else row["updates"] if (row.get("normalised_pct") or 0) >= 90 else None


def with_game_batches(rows: list[dict], path: Path) -> list[dict]:
    """Each row's updates to 90% (normalised), and a multi-task row's as the batches of its own game,
    comparable with a single-game student's."""
    metrics = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((path / "summary.json").read_text())
    for row in rows:
        row["updates_to_90pct"] = reached = normalised_90pct_at(metrics, row)
        if "samples_per_game" in summary:
            row["game_batches"] = summary["samples_per_game"][row["game"]] // summary["batch_size"]
            row["game_batches_to_90pct"] = reached and batches_by(metrics, reached, row["game"], summary["batch_size"])
        else:
            row["game_batches"], row["game_batches_to_90pct"] = row["updates"], reached
        row["schedule"] = summary.get("schedule", "fixed")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="zoo", help="'zoo' (every zoo teacher) or comma-separated zoo games")
    parser.add_argument("--data", default=None, help="a folder of recordings, one per game (default: OUT/data)")
    parser.add_argument("--steps", type=int, default=40_000, help="labelled steps recorded per teacher")
    parser.add_argument("--updates", type=int, default=30_000, help="multi-task updates in all (a tenth per game)")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--holdout-steps", type=int, default=2000, help="held-out frames per game for agreement")
    parser.add_argument("--eval-episodes", type=int, default=30)
    parser.add_argument("--select-episodes", type=int, default=8)
    parser.add_argument("--schedules", default="fixed,balanced")
    parser.add_argument("--trunks", default="multi-10", help="multi-task presets to train (multi-3: a smaller trunk)")
    parser.add_argument("--singles", default="net1", help="single-game presets, one student per game; empty: none")
    parser.add_argument("--capacity-hours", type=float, default=1.0, help="replay per game (1 hour: 54,000 steps)")
    parser.add_argument("--live", action="store_true", help="train from live teacher actors, not the recordings")
    parser.add_argument("--actors", type=int, default=1, help="with --live: teacher actors per game")
    parser.add_argument("--out", default="bench/out/ten_games")
    runner_flag(parser)
    parser.add_argument("--render", action="store_true", help="only rewrite ten_games.md from --out's json")
    args = parser.parse_args()
    out = Path(args.out)
    if args.render:
        report = json.loads((out / "ten_games.json").read_text())
        (out / "ten_games.md").write_text(markdown(report))
        print(markdown(report))
        return
    games = catalog.games() if args.games == "zoo" else args.games.split(",")
    data = Path(args.data) if args.data else out / "data"
    out.mkdir(parents=True, exist_ok=True)
    use_runner(args.runner, cpus=len(games) * (args.actors if args.live else 1) + 4)
    for game in games:
        if not args.live and not recorded(data / game):
            run(["record", "--teacher", f"zoo:{game}", "--steps", str(args.steps), "--actors", "2",
                 "--out", str(data / game)])
    common = ["--eval-episodes", str(args.eval_episodes), "--select-episodes", str(args.select_episodes),
              "--log-every", "1000", "--capacity-hours", str(args.capacity_hours), "--holdout-steps",
              str(args.holdout_steps)]
    source = (["--teachers", "zoo", "--actors", str(args.actors)] if args.live
              else ["--datasets", ",".join(str(data / g) for g in games)])
    jobs = [(trunk, schedule) for trunk in args.trunks.split(",") if trunk
            for schedule in args.schedules.split(",") if schedule]
    multitask, singles = [], []

    def train_multitask(trunk: str, schedule: str) -> None:
        path = out / f"{trunk}-{schedule}"
        multitask.extend(with_game_batches(timed(
            ["multitask", "--games", ",".join(games), *source, "--student", trunk, "--schedule", schedule,
             "--updates", str(args.updates), "--eval-every", str(args.eval_every),
             "--checkpoint-every", str(args.eval_every // 2), *common], path, f"{trunk}/{schedule}"), path))

    if jobs:  # the first multi-task student, then the single-game ones, so a cut-short bench has the comparison
        train_multitask(*jobs[0])
    per_game = args.updates // len(games)
    for preset in [p for p in args.singles.split(",") if p]:
        for game in games:
            source_of = (["--teacher", f"zoo:{game}", "--game", game, "--actors", str(args.actors)] if args.live
                         else ["--dataset", str(data / game)])
            path = out / f"{game}-{preset}"
            singles.extend(with_game_batches(timed(
                ["distill", *source_of, "--student", preset, "--updates", str(per_game),
                 "--eval-every", str(max(args.eval_every // len(games), 1)), "--checkpoint-every", str(per_game),
                 *common], path, f"single/{preset}"), path))
    for job in jobs[1:]:
        train_multitask(*job)
    rows = singles + multitask
    report = {"rows": rows, "geometric_means": {section: geometric_means({r["game"]: r for r in rows
                                                                          if r["section"] == section})
                                                for section in dict.fromkeys(r["section"] for r in rows)},
              "paper_ten_games_pct": PAPER_TEN_GAMES, "args": vars(args), "machine": platform.node(),
              "cpu_count": os.cpu_count()}
    (out / "ten_games.json").write_text(json.dumps(report, indent=2))
    (out / "ten_games.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'ten_games.json'} and {out / 'ten_games.md'}")


def cell(row: dict | None) -> str:
    if row is None:
        return ""
    return (f"{row['score']:.1f} +/- {row['ci95'] or 0:.1f}: {ratio_cell(row['normalised_pct'], row['normalised_low95'])}"
            f" norm., {ratio_cell(row['student_pct_of_teacher'], row['pct_low95'])} raw")


def effort(rows: list[dict], section: str) -> str:
    """A multi-task section is one run; a single-game section is one run per game, its updates and wall time summed."""
    mine = [r for r in rows if r["section"] == section]
    combine = sum if section.startswith("single") else max
    return f"{combine(r['updates'] for r in mine):,}; {combine(r['wall_s'] for r in mine):,.0f}"


def markdown(report: dict) -> str:
    """Per game: the teacher, the random policy, and each student's score with its normalised and raw
    % of teacher (lower 95% bounds in brackets); then the geometric means beside the paper's."""
    rows = report["rows"]
    sections = list(dict.fromkeys(r["section"] for r in rows))
    by = {(r["section"], r["game"]): r for r in rows}
    games = list(dict.fromkeys(r["game"] for r in rows))
    lines = ["| game | teacher | random | " + " | ".join(sections) + " |", "|" + "---|" * (3 + len(sections))]
    for game in games:
        first = next(r for r in rows if r["game"] == game)
        lines.append(f"| {game} | {first['teacher_score']:.1f} +/- {first['teacher_ci95'] or 0:.1f} | "
                     f"{first['random_score']:.1f} | " + " | ".join(cell(by.get((s, game))) for s in sections) + " |")
    geo = report["geometric_means"]
    for key, label in (("normalised_pct", "normalised"), ("pct_of_teacher", "raw")):
        low_key = "geometric_mean_normalised_low95" if key == "normalised_pct" else "geometric_mean_pct_low95"
        lines.append(f"| geometric mean, {label} | | | " + " | ".join(
            ratio_cell(geo[s][f"geometric_mean_{key}"], geo[s].get(low_key)) for s in sections) + " |")
    lines.append("| updates in all; wall s | | | " + " | ".join(effort(rows, s) for s in sections) + " |")
    lines += ["", f"Rusu et al. (2015), ten games in one network: {report['paper_ten_games_pct']}% of the teachers "
                  f"(geometric mean, raw; from secondary summaries).", "",
              "| game | " + " | ".join(f"{s}: batches of the game to 90% normalised (of its batches)"
                                       for s in sections) + " |",
              "|" + "---|" * (1 + len(sections))]
    for game in games:
        lines.append(f"| {game} | " + " | ".join(
            "" if (s, game) not in by else
            f"{by[(s, game)]['game_batches_to_90pct'] or 'not reached'} ({by[(s, game)]['game_batches']:,})"
            for s in sections) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
