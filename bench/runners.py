"""The quick start on both runners, one after the other on one machine, with the same seed.

    python bench/runners.py [--out bench/out/runners.json] [EXTRA DISTILL FLAGS, e.g. --updates 500]

Each runner runs `launch.py distill --teacher zoo:ms_pacman --student net3 --updates 2000 --eval-every 500`
(the README's first command) in a fresh process, as a user would: its wall time includes starting
Ray (or not), the run, and its final evaluation. The scores are the run's own, on the report seeds.
A live run is not reproducible across runners (actors and learner interleave differently), so the
two students differ; their scores say whether either runner costs the student anything.
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

ROOT = Path(__file__).resolve().parent.parent
QUICK_START = ["distill", "--teacher", "zoo:ms_pacman", "--student", "net3", "--updates", "2000", "--eval-every", "500"]


def run_once(runner: str, extra: list[str], folder: Path) -> dict:
    out = folder / runner
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "launch.py"), *QUICK_START, *extra, "--runner", runner,
                           "--out", str(out)], capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"--runner {runner} exited {done.returncode}: {done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    student, teacher = summary["student_score"], summary["teacher_score"]
    return {"runner": runner, "wall_s": round(wall, 1), "run_wall_s": summary["wall_s"],
            "student_mean": student["mean"], "student_ci95": student["ci95"], "episodes": student["episodes"],
            "teacher_mean": teacher["mean"], "pct_of_teacher": summary.get("student_pct_of_teacher"),
            "action_agreement": summary["action_agreement"], "updates": summary["updates"],
            "seed": json.loads((out / "config.json").read_text())["run"]["seed"]}


def table(rows: list[dict]) -> str:
    lines = ["| runner | wall s | student (report seeds) | teacher | % of teacher | agreement |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ci = "" if r["student_ci95"] is None else f" +/- {r['student_ci95']:.1f}"
        pct = "withheld" if r["pct_of_teacher"] is None else f"{r['pct_of_teacher']:.0f}%"
        lines.append(f"| {r['runner']} | {r['wall_s']:.0f} | {r['student_mean']:.1f}{ci} ({r['episodes']} ep.) | "
                     f"{r['teacher_mean']:.1f} | {pct} | {r['action_agreement']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", default="ray,local")
    parser.add_argument("--out", default="bench/out/runners.json")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory(prefix="runners-") as folder:
        rows = [run_once(runner, extra, Path(folder)) for runner in args.runners.split(",")]
    print(table(rows))
    ratio = rows[0]["wall_s"] / rows[-1]["wall_s"] if len(rows) > 1 else None
    if ratio:
        print(f"{rows[-1]['runner']} took {1 / ratio:.2f}x the wall time of {rows[0]['runner']} (measured in this run)")
    report = {"rows": rows, "wall_ratio_last_over_first": None if ratio is None else 1 / ratio, "extra_flags": extra,
              "command": " ".join(["launch.py", *QUICK_START]), "machine": platform.node(),
              "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
