"""Policy Distillation's tables on the zoo's real teachers: losses, compression, multi-task.

    python bench/fidelity.py [--games zoo] [--steps 60000] [--updates 6000] [--eval-every 1500]
                             [--eval-episodes 30] [--select-episodes 8] [--out bench/out/fidelity]

Each zoo teacher is recorded once (`launch.py record`); every single-game student distils
from that same dataset, so the rows differ only in the student and the loss:
- losses: KL (tau 0.01), NLL and MSE into a teacher-sized student;
- compression: Dist-KL-net1, net2, net3 with KL;
- multi-task: one student over all the games, a head per game (live teacher actors: a
  multi-task run takes no dataset).
Every student is scored during training (`--eval-every`), so each row also says how many
updates it took to reach 90% of its teacher. Prints a table and writes fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from atari_distill import cli as launch  # noqa: E402
from atari_distill.cluster.runtime import connect  # noqa: E402
from atari_distill.evaluation.statistics import geometric_means  # noqa: E402
from atari_distill.rundir.result import RunResult  # noqa: E402
from atari_distill.zoo import catalog  # noqa: E402

PAPER = {"compression": {"net1": 108, "net2": 102, "net3": 84}, "multitask-10": 89, "multitask-3-kl": 117}


RUNNER: list[str] = []  # every run's --runner, set once by use_runner


def runner_flag(parser) -> None:
    parser.add_argument("--runner", default="ray", choices=("ray", "local"),
                        help="every run's --runner: ray (as the figures in RESULTS.md) or local (one process)")


def use_runner(runner: str, cpus: int) -> None:
    """Every run of this bench on `runner`; on Ray, one runtime for them all, sized for `cpus`."""
    RUNNER[:] = ["--runner", runner]
    if runner == "ray":
        connect(None, cpus_needed=cpus)


def run(argv: list[str]) -> None:
    argv = argv + RUNNER
    code = launch.main(argv)
    if code != 0:
        raise SystemExit(f"launch.py {' '.join(argv)} exited {code}")


def first_update_at(metrics: list[dict], kind: str, game: str, share: float, normalised: bool = False) -> int | None:
    """The first curve point (`kind`'s evaluations, selection seeds) at `share` of the teacher's score on
    the same selection seeds (of the way from the random policy's, `normalised`); a point played before
    the teacher's selection score was known, or where it is not positive (raw), cannot say."""
    for record in metrics:
        if record.get("kind") != kind:
            continue
        point = record["per_game"][game] if "per_game" in record else record
        teacher, random = point.get("teacher_selection_score"), point.get("random_selection_score")
        if teacher is None or (random is None if normalised else teacher <= 0):
            continue
        if point["score"] >= (random + share * (teacher - random) if normalised else share * teacher):
            return record["updates"]
    return None


def rows_of(path: Path, section: str, wall_s: float) -> list[dict]:
    result = RunResult.load(path)
    metrics = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    rows = []
    for student in result.students:
        kind = "eval" if len(result.students) == 1 else f"eval-{student.preset}-{student.loss}"
        for game, played in student.per_game.items():
            teacher_mean = played.teacher.mean
            reached = first_update_at(metrics, kind, game, 0.9)
            if reached is None and (played.pct_of_teacher or 0) >= 90:
                reached = student.updates
            rows.append({
                "section": section, "game": game, "student": student.preset, "loss": student.loss,
                "params": student.params, "teacher_params": result.summary["per_game"][game]["teacher_params"],
                "score": played.student.mean, "ci95": played.student.ci95, "episodes": played.student.episodes,
                "teacher_score": teacher_mean, "teacher_ci95": played.teacher.ci95, "random_score": played.random.mean,
                "student_pct_of_teacher": played.pct_of_teacher, "pct_low95": played.pct_low95,
                "normalised_pct": played.normalised_pct, "normalised_low95": played.normalised_low95,
                "pct_withheld": played.pct_withheld, "agreement": played.agreement,
                "agreement_sticky": played.agreement_sticky, "majority_baseline": played.majority_baseline,
                "updates": student.updates, "samples": student.updates * result.summary["batch_size"],
                "updates_to_90pct": reached, "wall_s": wall_s, "device": result.summary["learner_device"],
                "run": str(path),
            })
    return rows


def timed(argv: list[str], path: Path, section: str) -> list[dict]:
    """Runs one distillation, or reads it back if an earlier invocation finished it (a partial one starts over)."""
    summary = path / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("complete", True):
        return rows_of(path, section, json.loads(summary.read_text())["wall_s"])
    if path.exists():
        shutil.rmtree(path)
    started = time.monotonic()
    run(argv + ["--out", str(path)])
    return rows_of(path, section, time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", default="zoo", help="'zoo' (every zoo teacher) or comma-separated zoo games")
    parser.add_argument("--steps", type=int, default=60_000, help="labelled steps recorded per teacher")
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--eval-every", type=int, default=1500)
    parser.add_argument("--eval-episodes", type=int, default=30, help="report episodes for every final score")
    parser.add_argument("--select-episodes", type=int, default=8, help="episodes for each curve point")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sections", default="compression,losses,multitask")
    parser.add_argument("--holdout-steps", type=int, default=4000, help="held-out frames for each agreement figure")
    parser.add_argument("--out", default="bench/out/fidelity")
    runner_flag(parser)
    parser.add_argument("--render", action="store_true", help="only rewrite fidelity.md from --out's fidelity.json")
    args = parser.parse_args()
    if args.render:
        report = json.loads((Path(args.out) / "fidelity.json").read_text())
        (Path(args.out) / "fidelity.md").write_text(markdown(report))
        print(markdown(report))
        return

    games = catalog.games() if args.games == "zoo" else args.games.split(",")
    use_runner(args.runner, cpus=len(games) + 4)  # actors, learners and evaluators
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run_sections(args, games, out)
    print_rows(rows)
    geo = {}
    for section, student, loss in {(r["section"], r["student"], r["loss"]) for r in rows}:
        geo[f"{section}/{student}/{loss}"] = geometric_means(
            {r["game"]: r for r in rows if (r["section"], r["student"], r["loss"]) == (section, student, loss)})
    for line in geometric_lines(geo):
        print(line)
    report = {"rows": rows, "geometric_means": geo, "paper": PAPER, "args": vars(args), "machine": platform.node(),
              "cpu_count": os.cpu_count()}
    (out / "fidelity.json").write_text(json.dumps(report, indent=2))
    (out / "fidelity.md").write_text(markdown(report))
    print(f"wrote {out / 'fidelity.json'} and {out / 'fidelity.md'}")


def run_sections(args, games: list[str], out: Path) -> list[dict]:
    """Records each zoo teacher once, then distils every section's students from the recording."""
    sections = args.sections.split(",")
    common = ["--updates", str(args.updates), "--eval-every", str(args.eval_every), "--eval-episodes",
              str(args.eval_episodes), "--select-episodes", str(args.select_episodes), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--log-every", "250", "--checkpoint-every", str(args.updates), "--holdout-steps", str(args.holdout_steps)]
    rows = []
    for game in games:
        data = out / f"{game}-data"
        if not (data / "index.json").is_file():
            run(["record", "--teacher", f"zoo:{game}", "--steps", str(args.steps), "--actors", "2", "--out", str(data)])
        if "compression" in sections:
            rows += timed(["distill", "--dataset", str(data), "--student", "net1,net2,net3", "--loss", "kl", *common],
                          out / f"{game}-compression", "compression")
        if "losses" in sections:
            same_size = catalog.card(game)["preset"]
            reused = [{**r, "section": "losses"} for r in rows if (r["section"], r["game"], r["student"]) == (
                "compression", game, same_size)]  # the compression sweep's KL student is already teacher-sized
            losses = "nll,mse" if reused else "kl,nll,mse"
            rows += reused + timed(["distill", "--dataset", str(data), "--student", same_size, "--loss", losses,
                                    *common], out / f"{game}-losses", "losses")
    if "multitask" in sections and len(games) >= 2:
        rows += timed(["multitask", "--games", ",".join(games), "--teachers", "zoo", "--actors", "1",
                       "--schedule", "fixed", *common],
                      out / "multitask", "multitask")
    return rows


def ratio_cell(value: float | None, low: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}% ({'n/a' if low is None else f'{low:.0f}%'})"


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'section':<12} {'game':<12} {'student':<9} {'loss':<4} {'params':>9} {'score':>16} {'teacher':>16} "
          f"{'random':>8} {'% teacher (low)':>16} {'normalised (low)':>16} {'agree':>6} {'base':>5} {'upd->90%':>8} "
          f"{'wall s':>7}")
    for r in rows:
        print(f"{r['section']:<12} {r['game']:<12} {r['student']:<9} {r['loss']:<4} {r['params']:>9,} "
              f"{r['score']:>8.1f} +/- {r['ci95'] or 0:<5.1f} {r['teacher_score']:>8.1f} +/- {r['teacher_ci95'] or 0:<5.1f} "
              f"{r['random_score']:>8.1f} {ratio_cell(r['student_pct_of_teacher'], r['pct_low95']):>16} "
              f"{ratio_cell(r['normalised_pct'], r['normalised_low95']):>16} {r['agreement']:>6.3f} "
              f"{r['majority_baseline']:>5.3f} {str(r['updates_to_90pct']):>8} {r['wall_s']:>7.0f}")


def geometric_lines(geo: dict) -> list[str]:
    lines = []
    for key, means in sorted(geo.items()):
        raw, norm = means["geometric_mean_pct_of_teacher"], means["geometric_mean_normalised_pct"]
        lines.append(f"geometric mean over {len(means['geometric_mean_over'])} game(s), {key}: raw "
                     f"{'n/a' if raw is None else f'{raw:.0f}%'}, normalised {'n/a' if norm is None else f'{norm:.0f}%'}")
    return lines


def markdown(report: dict) -> str:
    """The rows as the table in bench/RESULTS.md: raw and normalised % of teacher, each with its lower
    95% bound (evaluation/statistics.py), the random policy on the same report seeds."""
    lines = ["| section | game | student | loss | params | score | teacher | random | % of teacher (low 95%) | "
             "normalised (low 95%) | agreement (sticky; majority) | updates | samples | updates to 90% (8-episode "
             "curve, indicative) | wall s | "
             "device |", "|" + "---|" * 16]
    for r in report["rows"]:
        pct = "withheld" if r.get("pct_withheld") else ratio_cell(r["student_pct_of_teacher"], r["pct_low95"])
        norm = "withheld" if r.get("pct_withheld") else ratio_cell(r["normalised_pct"], r["normalised_low95"])
        sticky = "" if r.get("agreement_sticky") is None else f"{r['agreement_sticky']:.3f}; "
        lines.append(f"| {r['section']} | {r['game']} | {r['student']} | {r['loss']} | {r['params']:,} | "
                     f"{r['score']:.1f} +/- {r['ci95'] or 0:.1f} | {r['teacher_score']:.1f} +/- {r['teacher_ci95'] or 0:.1f} | "
                     f"{r['random_score']:.1f} | {pct} | {norm} | {r['agreement']:.3f} ({sticky}{r['majority_baseline']:.3f}) | "
                     f"{r['updates']:,} | {r['samples']:,} | "
                     f"{r['updates_to_90pct'] if r['updates_to_90pct'] is not None else 'not reached'} | "
                     f"{r['wall_s']:.0f} | {r['device']} |")
    lines.append("")
    lines += [f"- {line}" for line in geometric_lines(report["geometric_means"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
