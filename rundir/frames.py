"""A run's metrics and results as pandas tables, for a notebook or a spreadsheet: where many labs
compare runs. pandas is optional (`pip install 'atari-distill[analysis]'`); nothing else needs it.

Metrics lines are flattened one column per leaf (`per_game.pong.score`), every line keeps its
`kind` (a learner's lines without one are `distill`, as everywhere else), and results are one row
per student and game, scores on the report seeds with their intervals and episodes.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from atari_distill.rundir.directory import RunDir


class PandasMissing(ValueError):
    """A missing optional library is the user's to install (one line from launch.py), not a bug."""


def pandas():
    try:
        import pandas
    except ModuleNotFoundError:
        raise PandasMissing("metrics and results as tables need pandas: pip install 'atari-distill[analysis]' "
                            "(or pip install pandas)") from None
    return pandas


def metrics_frame(run_dir: str | Path, kind: str | None = None):
    """metrics.jsonl as a DataFrame, one row per line (`kind`'s only, if given), in the order written."""
    records = [{**r, "kind": r.get("kind", "distill")} for r in RunDir.open(run_dir).metrics()]
    frame = pandas().json_normalize([r for r in records if kind is None or r["kind"] == kind])
    return frame.reindex(columns=["kind", *sorted(c for c in frame.columns if c != "kind")])


def results_frame(results: list) -> "object":
    """One row per run, student and game of `results` (RunResults): scores, % of teacher, agreement."""
    rows = []
    for result in results:
        students = result.students or [None]
        for student in students:
            per_game = student.per_game if student is not None else result.per_game
            for game, played in per_game.items():
                row = {"run": result.run_dir.name, "game": game, "kind": result.kind, "complete": result.complete,
                       "series": student.series if student else None, "student": student.preset if student else None,
                       "loss": student.loss if student else None, "params": student.params if student else None,
                       "updates": student.updates if student else None}
                fields = asdict(played)
                fields.pop("game")
                for who in ("student", "teacher", "random"):
                    score = fields.pop(who) or {}
                    row.update({f"{who}_{key}": score.get(key) for key in ("mean", "ci95", "episodes")})
                rows.append({**row, **fields})
    return pandas().DataFrame(rows)


def write_csv(runs: list[str], results: list, out: Path) -> list[Path]:
    """metrics.csv (every one of `runs`' lines, a `run` column first) and results.csv (of `results`, the
    RunResults of those that have a summary) in `out`."""
    pd = pandas()
    frames = [metrics_frame(run).assign(run=Path(run).name) for run in runs]
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    metrics = metrics.reindex(columns=["run", *[c for c in metrics.columns if c != "run"]])
    written = [out / "metrics.csv", out / "results.csv"]
    metrics.to_csv(written[0], index=False)
    results_frame(results).to_csv(written[1], index=False)
    return written
