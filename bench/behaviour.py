"""Who drives, and how frames are weighted: net3 students of zoo teachers at equal samples (issue 35).

For each game, one student per variant, every one trained live for the same updates and batch size
(so the same samples), from the same teacher and seed, and scored on the report seeds:
  teacher/kl      the teacher acts (Rusu et al.; the project's default)
  student/kl      the student acts with its weights of the last push (--behaviour student)
  mixed/kl        per episode, the teacher with share beta halving every --beta-half-life updates
  teacher/gap_nll NLL weighted by the teacher's greedy-action probability (the action gap)
  teacher/entropy_kl KL weighted by the teacher's sureness
Prints a table (normalised % of teacher with lower 95% bounds) and writes behaviour.json and
behaviour.md. A finished variant's run directory is read back, not run again.

    python bench/behaviour.py --games breakout,seaquest,ms_pacman,pong --updates 2000
    python bench/behaviour.py --games pong --updates 60 --eval-episodes 2 --holdout-steps 200 --out /tmp/b  # tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fidelity import geometric_lines, markdown, print_rows, runner_flag, timed, use_runner  # noqa: E402
from atari_distill.evaluation.statistics import geometric_means  # noqa: E402
from atari_distill.rundir.summary import Summary  # noqa: E402

VARIANTS = ("teacher/kl", "student/kl", "mixed/kl", "teacher/gap_nll", "teacher/entropy_kl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="breakout,seaquest,ms_pacman,pong", help="comma-separated zoo games")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="BEHAVIOUR/LOSS pairs")
    parser.add_argument("--student", default="net3")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--behaviour-every", type=int, default=250)
    parser.add_argument("--beta-half-life", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=30, help="report episodes for every final score")
    parser.add_argument("--holdout-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/out/behaviour")
    runner_flag(parser)
    args = parser.parse_args()

    games, variants = args.games.split(","), args.variants.split(",")
    use_runner(args.runner, cpus=4)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for game in games:
        for variant in variants:
            behaviour, loss = variant.split("/")
            path = out / f"{game}-{behaviour}-{loss}"
            argv = ["distill", "--teacher", f"zoo:{game}", "--student", args.student, "--loss", loss,
                    "--behaviour", behaviour, "--behaviour-every", str(args.behaviour_every),
                    "--beta-half-life", str(args.beta_half_life), "--updates", str(args.updates),
                    "--eval-episodes", str(args.eval_episodes), "--holdout-steps", str(args.holdout_steps),
                    "--log-every", "250", "--checkpoint-every", str(args.updates), "--seed", str(args.seed)]
            for row in timed(argv, path, behaviour):
                replay = Summary.read(path).as_dict().get("replay") or {}
                row["student_acted_share"] = (replay.get("student_acted_steps", 0) / replay["labelled_steps"]
                                              if replay.get("labelled_steps") else None)
                rows.append(row)
    print_rows(rows)
    geo = {f"{v}": geometric_means({r["game"]: r for r in rows if f"{r['section']}/{r['loss']}" == v})
           for v in variants}
    for line in geometric_lines(geo):
        print(line)
    report = {"rows": rows, "geometric_means": geo, "args": vars(args), "machine": platform.node(),
              "cpu_count": os.cpu_count(), "paper": {}}
    (out / "behaviour.json").write_text(json.dumps(report, indent=2))
    (out / "behaviour.md").write_text(markdown(report))
    print(f"wrote {out / 'behaviour.json'} and {out / 'behaviour.md'}")


if __name__ == "__main__":
    main()
