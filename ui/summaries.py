"""What launch.py prints when a run ends: the few lines of its summary a person reads first."""

from __future__ import annotations

import json

from actors.evaluate import score_text


def number(value, missing: str = "not scored") -> str:
    return missing if value is None else f"{value:.2f}"


def percent(value) -> str:
    """A % of teacher, or n/a where the teacher's score is not positive."""
    return "n/a" if value is None else f"{value:.0f}%"


def stopped(summary: dict, command: str, path) -> str:
    if command == "record":
        return (f"[record] stopped by {summary.get('stopped_by')} with {summary.get('steps', 0):,} steps of whole "
                f"chunks recorded; continue with: python launch.py record --resume {path}")
    if summary.get("updates"):
        return (f"[{command}] stopped by {summary.get('stopped_by')} at update {summary.get('updates')}; wrote a final "
                f"checkpoint and an incomplete summary; continue with: python launch.py {command} --resume {path}")
    return (f"[{command}] stopped by {summary.get('stopped_by')} before the first update, so there is no checkpoint "
            f"to write; an incomplete summary is in {path}; start it afresh with: python launch.py {command} "
            f"--resume {path}")


def distill_lines(summary: dict, path) -> list[str]:
    games = summary.get("games") or [summary["game"]]
    lines = []
    for game in games:
        teacher = summary["per_game"][game] if "per_game" in summary else summary
        t = teacher["teacher_score"]
        lines.append(f"{game}: teacher {score_text(t['mean'], t['ci95'], t['episodes'])}, "
                     f"majority-action baseline {teacher['majority_baseline']:.3f}")
    for row in summary["students"]:
        for game, result in (row.get("per_game") or {games[0]: row}).items():
            score, pct = result["student_score"], result["student_pct_of_teacher"]
            lines.append(f"{game}: {row['student']} ({row['student_params']:,} params, {row['loss']}, "
                         f"{row['updates']} updates) {score_text(score['mean'], score['ci95'], score['episodes'])}; "
                         f"agreement {result['action_agreement']:.3f}; {percent(pct)} of teacher")
        if "geometric_mean_pct_of_teacher" in row:
            lines.append(f"{row['student']}/{row['loss']}: geometric mean % of teacher "
                         f"{percent(row['geometric_mean_pct_of_teacher'])} over "
                         f"{', '.join(row['geometric_mean_over']) or 'no game'}")
    restarts = summary["restarts"]
    if restarts["actors"] or restarts["learners"]:
        lines.append(f"restarts: {restarts['actors']} actor(s), {restarts['learners']} learner(s)")
    return lines + [f"[distill] wrote {path}"]


def teacher_lines(summary: dict, path) -> list[str]:
    best = summary["best"] or {}
    return [json.dumps({k: summary[k] for k in ("game", "frames", "updates", "wall_s")}),
            f"best checkpoint: {best.get('checkpoint')} (version {best.get('version')}, score {best.get('score')}, "
            f"at {best.get('frames')} frames)"]


def online_lines(summary: dict, path) -> list[str]:
    lines = [json.dumps({k: summary[k] for k in ("game", "frames", "updates", "student_updates", "wall_s")})]
    for row in summary["timeline"]:
        best = "not scored" if row["best_version"] is None else f"{number(row['best_score'])} (v{row['best_version']})"
        lines.append(f"frames {row['frames']:>10,}: dqn {number(row['dqn_score'])}, best so far {best}, student "
                     f"{number(row['student_score'], 'not trained yet')}")
    return lines + [f"final: student {summary['student_score']['mean']:.2f}, best teacher "
                    f"{summary['teacher_score']['mean']:.2f} ({percent(summary['student_pct_of_teacher'])} of teacher)"]


def record_lines(index: dict, path) -> list[str]:
    return [json.dumps({k: index[k] for k in ("game", "steps", "chunks", "teacher")})]

