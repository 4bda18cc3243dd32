"""The runs a report is made from, read from their directories, and the series and students in them."""

from __future__ import annotations

from atari_distill.rundir.directory import ABANDONED, RunDir
from atari_distill.rundir.summary import Summary, kind_of_config
from atari_distill.ui.plots import series_key

BY_FRAMES = ("teacher", "online")


class ReportError(ValueError):
    pass


def load_run(path: str) -> dict:
    run = RunDir.open(path)
    config = run.read_config()
    summary = Summary.read(run.path, config) or Summary(kind_of_config(config), complete=False)
    return {"name": run.path.name, "path": str(run.path), "kind": summary.kind, "config": config,
            "summary": summary.as_dict(), "metrics": run.metrics(), "timeline": run.metrics("timeline.jsonl")}


def kinds_of(run: dict, evaluations: bool = False) -> list[str]:
    """The learners' record kinds, or (`evaluations`) the kinds of their periodic evaluations."""
    kinds = {m.get("kind", "distill") for m in run["metrics"]} - {ABANDONED}
    return sorted(k for k in kinds if k.startswith("eval") == evaluations)


def games_of(summary: dict, config: dict) -> list[str]:
    return summary.get("games") or [summary.get("game") or config.get("game")]


def students(run: dict) -> list[dict]:
    """Every student a run trained, in one shape whatever the run's kind: its series key, preset,
    parameters and own updates, and per game its results beside the frame they are read against
    (the teacher's and the random policy's scores on the report seeds, the majority baseline)."""
    summary, name = run["summary"], run["name"]
    if run["kind"] == "teacher":
        return []
    rows = summary.get("students") or ([summary] if summary.get("student_score") or summary.get("per_game") else [])
    games = games_of(summary, run["config"])
    found = []
    for row in rows:
        per_game = {}
        for game in games:
            result = (row.get("per_game") or {}).get(game)
            frame = (summary.get("per_game") or {}).get(game) or {}
            if result and result.get("student_score"):
                per_game[game] = {**result, **{k: frame.get(k) for k in ("teacher_score", "random_score",
                                                                         "majority_baseline", "teacher_fingerprint")}}
        found.append({"key": series_key(name, row.get("checkpoint_series") or "student"), "run": run,
                      "preset": row.get("student"), "loss": row.get("loss"), "params": row.get("student_params"),
                      "updates": row.get("student_updates", row.get("updates")), "per_game": per_game,
                      "geometric": row if len(games) > 1 else None, "best": (row.get("rl") or {}).get("best")})
    return found


def series_keys(runs: list[dict]) -> list[str]:
    """Every series of the report in the order the runs were named: a run's DQN, then its students."""
    keys = []
    for run in runs:
        if run["kind"] in BY_FRAMES:
            keys.append(series_key(run["name"], "dqn"))
        keys += [s["key"] for s in students(run)]
        keys += [series_key(run["name"], kind) for kind in kinds_of(run) + kinds_of(run, evaluations=True)]
    return keys

