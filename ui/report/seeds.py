"""## Training seeds: runs given to one report that differ only in `--seed` are replicates of one
experiment; their aggregate (evaluation/seeds.py) is what a claim about the method rests on, where
each run's own CI covers only its report episodes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from atari_distill.evaluation.seeds import SeedsError, experiment_of, performance_profile, seeds_summary
from atari_distill.rundir.result import RunResult
from atari_distill.ui.plots import Plots
from atari_distill.ui.report.tables import table

MEASURES = (("iqm", "IQM"), ("median", "median"), ("mean", "mean"),
            ("optimality_gap", "optimality gap (short of 1, lower is better)"))


def experiments(runs: list[dict]) -> list[list[dict]]:
    """Finished student runs grouped by experiment, each group of two seeds or more, in the order given."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        if run["summary"].get("complete") and run["summary"].get("students"):
            groups.setdefault(experiment_of(run["config"]), []).append(run)
    return [g for g in groups.values() if len({r["config"].get("seed") for r in g}) >= 2]


def seeds_section(runs: list[dict], plots: Plots, out_dir: Path) -> str:
    found = experiments(runs)
    if not found:
        return ""
    if importlib.util.find_spec("rliable") is None:  # evaluation/seeds.py imports it where it computes
        return ("## Training seeds\n\nRuns of one experiment under several seeds were given; their aggregate "
                "needs rliable: pip install -e \".[analysis]\"")
    texts, written = [], {}
    for index, group in enumerate(found, 1):
        results = [RunResult.from_summary(r["summary"], r["path"]) for r in group]
        seeds = [r["config"].get("seed") for r in group]
        name = f"experiment {index}: {', '.join(r['name'] for r in group)}"
        try:
            summary = seeds_summary(results, seeds)
        except SeedsError as error:
            texts.append(f"### {name}\n\nNo aggregate: {error}.")
            continue
        written[name] = summary
        image = _plot(plots, f"seeds-{index}", name, summary,
                      performance_profile(np.array(summary["matrix"]), np.linspace(0.0, 2.0, 41)))
        texts.append(_text(name, summary) + (f"\n\n![seeds]({image})" if image else ""))
    (out_dir / "seeds.json").write_text(json.dumps(written, indent=2))
    return "## Training seeds\n\n" + "\n\n".join(texts)


def _text(name: str, summary: dict) -> str:
    agg = summary["aggregate"]
    head = (f"### {name}\n\nSeeds {', '.join(str(s) for s in summary['seeds'])}; normalised scores "
            f"((student - random) / (teacher - random), report seeds) over {len(summary['games'])} game(s): IQM "
            f"{agg['iqm']['value']:.2f} (95% CI {agg['iqm']['low95']:.2f} to {agg['iqm']['high95']:.2f}, stratified "
            f"bootstrap over seeds, {summary['bootstrap_reps']:,} resamples).")
    if summary["left_out"]:
        head += " Left out: " + "; ".join(f"{g} ({why})" for g, why in summary["left_out"].items()) + "."
    measures = table(["measure", "value", "low 95%", "high 95%"],
                     [[label, f"{agg[key]['value']:.3f}", f"{agg[key]['low95']:.3f}", f"{agg[key]['high95']:.3f}"]
                      for key, label in MEASURES])
    games = table(["game", "score over seeds", "95% CI over seeds", "normalised", "95% CI", "per seed"],
                  [[g, f"{r['score']['mean']:.1f}", _ci(r["score"]["ci95"], 1), f"{r['normalised']['mean']:.2f}",
                    _ci(r["normalised"]["ci95"], 2), ", ".join(f"{v:.1f}" for v in r["score"]["values"])]
                   for g, r in summary["per_game"].items()])
    return f"{head}\n\n{measures}\n\n{games}"


def _ci(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"+/- {value:.{digits}f}"


def _plot(plots: Plots, name: str, title: str, summary: dict, profile: dict) -> str | None:
    fig, axes = plots.figure(name, f"Training seeds, {title}",
                             ("normalised score (1 = teacher, 0 = random)", "", "Aggregates, 95% CIs"),
                             ("normalised score tau", "fraction of runs above tau", "Performance profile"))
    agg = summary["aggregate"]
    for y, (key, label) in enumerate(MEASURES):
        low, high = agg[key]["low95"], agg[key]["high95"]
        axes[0].plot([low, high], [y, y], color="tab:blue", linewidth=6, solid_capstyle="butt",
                     label="95% CI (stratified bootstrap)" if y == 0 else None)
        axes[0].plot([agg[key]["value"]], [y], "k|", markersize=14, label="point estimate" if y == 0 else None)
    axes[0].set_yticks(range(len(MEASURES)), [label.replace(" (", "\n(") for _, label in MEASURES])
    axes[0].invert_yaxis()  # the IQM, the headline, on top
    for x, label in ((0.0, "random policy"), (1.0, "teacher")):
        axes[0].axvline(x, color="grey", linestyle=":" if x == 0 else "--", linewidth=1, label=label)
        axes[1].axvline(x, color="grey", linestyle=":" if x == 0 else "--", linewidth=1)
    taus = profile["taus"]
    axes[1].plot(taus, profile["fraction"], color="tab:blue", label="runs above tau")
    axes[1].fill_between(taus, profile["low95"], profile["high95"], color="tab:blue", alpha=0.2,
                         label="its 95% CI (stratified bootstrap)")
    axes[1].set_ylim(0, 1.02)
    plots.count(name, len(MEASURES) + len(taus))
    return plots.save(name, fig, axes)
