"""Students that outgrow their teacher (issue 35): a net3 that also learns from the reward (--rl-weight),
against its zoo teacher and against the same student without the reward, at equal samples.

For each game, two runs from the same teacher and seed, both student-driven (the student acts, the
teacher labels every step) and trained for the same updates and batch size:
  student/kl        distillation alone
  student/kl+rl     distillation handed off to the student's own n-step double-DQN loss (--handoff)
Both are scored on the report seeds; the RL run also states its best selection-seed checkpoint on
the report seeds (chosen on other seeds, as a DQN's best is) and the update at which its selection
score first reached the teacher's. Prints a table (normalised % of teacher with lower 95% bounds)
and writes outgrow.json and outgrow.md. A finished run directory is read back, not run again.

    nice python bench/outgrow.py --games breakout,seaquest --updates 40000 --eval-every 4000 --lr 2.5e-4
    nice python bench/outgrow.py --games breakout --teacher random --variants kl+rl --updates 40000 --eval-every 4000 \\
        --lr 2.5e-4 --out bench/out/outgrow-random
    python bench/outgrow.py --games pong --updates 60 --eval-every 30 --eval-episodes 2 --select-episodes 1 \\
        --holdout-steps 200 --out /tmp/o  # tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fidelity import markdown, print_rows, runner_flag, timed, use_runner  # noqa: E402
from atari_distill.rundir.directory import RunDir  # noqa: E402
from atari_distill.rundir.summary import Summary  # noqa: E402
from atari_distill.ui.summaries import passed_text  # noqa: E402

VARIANTS = ("kl+rl", "kl")  # the reward-weighted run first: it is the one the target is about


def rl_columns(path: Path) -> dict:
    """The RL run's handoff and its best selection checkpoint on report seeds, as flat table columns."""
    summary = Summary.read(path).as_dict()
    rl = (summary.get("students") or [{}])[0].get("rl") or {}
    best = rl.get("best") or {}
    replay = summary.get("replay") or {}
    points = [r for r in RunDir.open(path).metrics() if r.get("kind") == "eval" and "teacher_selection_score" in r]
    reached = next((r["updates"] for r in points if r["score"] >= r["teacher_selection_score"]), None)
    final = next(iter(((summary.get("students") or [{}])[0].get("per_game") or {}).values()), {})
    return {"labelled_frames": 4 * replay["labelled_steps"] if replay.get("labelled_steps") else None,
            "above_random": final.get("above_random"), "above_random_low95": final.get("above_random_low95"),
            "best_above_random": best.get("above_random"), "best_above_random_low95": best.get("above_random_low95"),
            "reached_teacher_at": reached, "passed_teacher": rl.get("passed_teacher"), "final_distill_weight": rl.get("distill_weight"),
            "best_updates": best.get("updates"), "best_score": (best.get("student_score") or {}).get("mean"),
            "best_ci95": (best.get("student_score") or {}).get("ci95"), "best_normalised_pct": best.get("normalised_pct"),
            "best_normalised_low95": best.get("normalised_low95")}


def best_line(row: dict) -> str:
    reached = row["reached_teacher_at"]
    return (f"{row['game']} {row['section']}: on selection seeds its mean "
            + (f"first reached the teacher's at update {reached:,}" if reached is not None else "never reached the teacher's")
            + "; " + passed_text(row.get("passed_teacher"), "the final student")
            + (f"; best selection checkpoint (update {row['best_updates']:,}) on report seeds {row['best_score']:.1f} "
               f"+/- {row['best_ci95'] or 0:.1f}, " + versus(row, "best_") if row["best_updates"] is not None else "")
            + (f"; the final student {row['above_random']:.1f} above the random policy (low 95% "
               f"{row['above_random_low95']:.1f})" if row.get("above_random") is not None else "")
            + f"; {row['labelled_frames']:,} frames labelled")


def versus(row: dict, prefix: str) -> str:
    """Normalised % of teacher, or, where the teacher does not beat random beyond chance (so the summary
    withholds that %), the margin over the random policy."""
    if row.get(f"{prefix}above_random") is not None:
        return (f"{row[f'{prefix}above_random']:.1f} above the random policy (low 95% "
                f"{row[f'{prefix}above_random_low95']:.1f}; no normalised %: the teacher does not beat random)")
    percent = lambda v: "n/a" if v is None else f"{v:.0f}%"  # noqa: E731
    return f"normalised {percent(row[f'{prefix}normalised_pct'])} (low 95% {percent(row[f'{prefix}normalised_low95'])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="breakout,seaquest", help="comma-separated zoo games")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="kl+rl (with --rl-weight) and/or kl")
    parser.add_argument("--teacher", default="zoo", help="zoo (each game's zoo teacher) or random: seeded weights, "
                                                          "a teacher no better than random play, which hands off at "
                                                          "once (does the student learn from the reward alone?)")
    parser.add_argument("--student", default="net3")
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=2500, help="updates between selection-seed points (the "
                                                                     "handoff and the best checkpoint read them)")
    parser.add_argument("--rl-weight", type=float, default=1.0)
    parser.add_argument("--handoff", default="qdagger")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--behaviour-every", type=int, default=250)
    parser.add_argument("--eval-episodes", type=int, default=30, help="report episodes for every final score")
    parser.add_argument("--select-episodes", type=int, default=8)
    parser.add_argument("--holdout-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/out/outgrow")
    runner_flag(parser)
    args = parser.parse_args()

    use_runner(args.runner, cpus=4)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for game in args.games.split(","):
        for variant in args.variants.split(","):
            teacher = f"zoo:{game}" if args.teacher == "zoo" else "random"
            path = out / f"{game}-student-{variant}" if args.teacher == "zoo" else out / f"{game}-random-teacher-{variant}"
            argv = ["distill", "--game", game, "--teacher", teacher, "--student", args.student, "--loss", "kl",
                    "--behaviour", "student", "--behaviour-every", str(args.behaviour_every), "--lr", str(args.lr),
                    "--updates", str(args.updates), "--eval-every", str(args.eval_every),
                    "--eval-episodes", str(args.eval_episodes), "--select-episodes", str(args.select_episodes),
                    "--holdout-steps", str(args.holdout_steps), "--log-every", "500",
                    "--checkpoint-every", str(args.eval_every), "--seed", str(args.seed)]
            if variant == "kl+rl":
                argv += ["--rl-weight", str(args.rl_weight), "--handoff", args.handoff, "--rl-life-loss-terminal"]
            for row in timed(argv, path, f"student/{variant}" + ("" if args.teacher == "zoo" else " (random teacher)")):
                rows.append({**row, **rl_columns(path)})
    print_rows(rows)
    lines = [best_line(row) for row in rows if "+rl" in row["section"]]
    print("\n".join(lines))
    report = {"rows": rows, "geometric_means": {}, "args": vars(args), "machine": platform.node(),
              "cpu_count": os.cpu_count(), "paper": {}}
    (out / "outgrow.json").write_text(json.dumps(report, indent=2))
    (out / "outgrow.md").write_text(markdown(report) + "".join(f"- {line}\n" for line in lines))
    print(f"wrote {out / 'outgrow.json'} and {out / 'outgrow.md'}")


if __name__ == "__main__":
    main()
