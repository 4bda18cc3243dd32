"""`write_report`: the runs read, their names kept apart, every section written to report.md."""

from __future__ import annotations

from pathlib import Path

from atari_distill.rundir.directory import RunDirError
from atari_distill.ui.plots import Plots
from atari_distill.ui.report.compression import compression_section
from atari_distill.ui.report.game_curves import game_curves_section
from atari_distill.ui.report.learning import learning_section
from atari_distill.ui.report.loss import loss_section
from atari_distill.ui.report.multitask import multitask_section
from atari_distill.ui.report.runs import ReportError, load_run, series_keys
from atari_distill.ui.report.score import score_section
from atari_distill.ui.report.seeds import seeds_section
from atari_distill.ui.report.summary import summary_section
from atari_distill.ui.report.throughput import throughput_section
from atari_distill.ui.report.watch import watch_section
from atari_distill.ui.summaries import rl_text, student_acted


def write_report(paths: list[str], out: str, csv: bool = False) -> dict:
    """Returns {"report": path, "plots": {name: points drawn}, "tables": [csv paths]}; `csv`: metrics.csv
    and results.csv beside report.md (rundir/frames.py)."""
    runs = _load(paths)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = Plots(out_dir)
    plots.assign(series_keys(runs))
    sections = [
        _heading(runs), summary_section(runs), loss_section(runs, plots), score_section(runs, plots),
        learning_section(runs, plots), throughput_section(runs, plots), multitask_section(runs, plots),
        game_curves_section(runs, plots), compression_section(runs, plots), seeds_section(runs, plots, out_dir),
        watch_section(runs, out_dir),
    ]
    report = out_dir / "report.md"
    report.write_text("\n\n".join(s for s in sections if s) + "\n")
    tables = []
    if csv:
        from atari_distill.rundir.frames import write_csv
        from atari_distill.rundir.result import RunResult

        finished = [RunResult.from_summary(run["summary"], run["path"]) for run in runs
                    if (Path(run["path"]) / "summary.json").is_file()]  # a run still going: its metrics only
        tables = [str(path) for path in write_csv([run["path"] for run in runs], finished, out_dir)]
    return {"report": str(report), "plots": dict(plots.drawn), "artists": plots.artists, "legends": plots.legends,
            "tables": tables}


def _load(paths: list[str]) -> list[dict]:
    if not paths:
        raise ReportError("give at least one run directory")
    try:
        runs = [load_run(p) for p in paths]
        names = [r["name"] for r in runs]
        for index, run in enumerate(runs, 1):  # two runs of one folder name (seeds in three parents) stay apart
            if names.count(run["name"]) > 1:
                run["name"] = f"{Path(run['path']).parent.name}/{run['name']} ({index})"
    except RunDirError as error:
        raise ReportError(str(error)) from None
    return runs


def _heading(runs: list[dict]) -> str:
    """Each run's path and kind, who acted, what learnt from the reward, and the evaluation protocols."""
    protocols: dict[str, list[str]] = {}
    for r in runs:
        if r["summary"].get("eval_protocol"):
            protocols.setdefault(r["summary"]["eval_protocol"], []).append(r["name"])
    return ("# Report\n\n" + "\n".join(f"- `{r['path']}` ({r['kind']}{_driven(r['summary'])})" + _learnt_from_reward(r)
                                       for r in runs)
            + "".join(f"\n\nEvaluation protocol of {', '.join(names)}: {p}." for p, names in protocols.items()))


def _driven(summary: dict) -> str:
    """Who acted while the teacher labelled, where it was not the teacher alone (--behaviour)."""
    if summary.get("behaviour", "teacher") == "teacher":
        return ""
    acted = student_acted(summary)
    share = f": the student chose {100 * acted[0] / acted[1]:.0f}% of the labelled steps" if acted else ""
    return f", --behaviour {summary['behaviour']}{share}"


def _learnt_from_reward(run: dict) -> str:
    """Its students that learnt from the reward too (--rl-weight), each a line under the run's."""
    return "".join(f"\n  - {row['student']}/{row['loss']}: {rl_text(row['rl'])}"
                   for row in run["summary"].get("students", []) if row.get("rl"))

