"""## Compression: students' size against their score, a panel per game."""

from __future__ import annotations

from atari_distill.ui.plots import MARKERS, Plots
from atari_distill.ui.report.curves import dodge
from atari_distill.ui.report.runs import students
from atari_distill.ui.report.tables import RATIO_HEADER, ratios, table


def compression_section(runs: list[dict], plots: Plots) -> str:
    """Students' size against their score, a panel per game: normalised % of teacher (0: random policy,
    100: teacher) with a bar down to its lower 95% bound; where a game's teacher does not beat the
    random policy, held-out agreement above the majority baseline instead, and the panel says so."""
    points = [(s, game) for run in runs if run["kind"] != "multitask" for s in students(run)
              for game in s["per_game"] if s["params"]]
    if len(points) < 2:
        return ""
    games = list(dict.fromkeys(game for _, game in points))
    scored, panels = _panels(points, games)
    fig, axes = plots.grid("compression", "Compression: student size against score", panels)
    rows, runs_named = [], list(dict.fromkeys(s["run"]["name"] for s, _ in points))
    for ax, game in zip(axes, games):
        here = sorted(((s, s["per_game"][game]) for s, g in points if g == game), key=lambda p: p[0]["params"])
        xs, withheld = [], []
        for s, result in here:
            xs.append(float(s["params"]))
            rows.append([s["key"], game, s["preset"], s["params"], *ratios(result), result.get("action_agreement"),
                         result.get("majority_baseline")])
            if scored[game] and result.get("normalised_pct") is None:  # named under the panel, not on another scale
                withheld.append(f"{s['key']} ({result['pct_withheld'].split(':')[0]})" if result.get("pct_withheld")
                                else f"{s['key']} (no normalised %)")
                continue
            y, low = (result["normalised_pct"], result.get("normalised_low95")) if scored[game] else (
                100 * result["action_agreement"], None)
            drawn = ax.errorbar([xs[-1]], [y], yerr=[[0 if low is None else max(0.0, y - low)], [0]],
                                fmt=MARKERS[runs_named.index(s["run"]["name"]) % len(MARKERS)], capsize=4,
                                markersize=7, color=plots.color(s["key"]), label=f"{s['key']} ({s['preset']})")
            same = [other for other, _ in here if other["params"] == s["params"]]
            if len(same) > 1:  # side by side a few points apart on screen, each at its true size on the axis
                shift = dodge(ax, same.index(s), len(same))
                for artist in drawn.get_children():
                    artist.set_transform(shift)
            plots.count("compression", 1)
        _frame(ax, here, scored[game], withheld, xs)
    image = plots.save("compression", fig, axes)
    return ((f"## Compression\n\n![compression]({image})\n\n" if image else "## Compression\n\n")
            + "A panel per game; bars run down to the lower 95% bound. Students of one size sit at that size, drawn "
              "side by side a few points apart.\n\n"
            + table(["series", "game", "student", "parameters", *RATIO_HEADER, "action agreement", "majority baseline"],
                    rows))


def _panels(points: list[tuple], games: list[str]) -> tuple[dict, list]:
    """Per game, whether any student there has a normalised % (else the panel shows agreement, and
    says why), and the panels' labels."""
    results = {g: [s["per_game"][g] for s, game in points if game == g] for g in games}
    scored = {g: any(r.get("normalised_pct") is not None for r in results[g]) for g in games}
    why = {g: "% withheld: " + ("too few episodes" if not any(r.get("agreement_not_above_majority") for r in results[g])
                                 else "too few episodes, or agreement not above the majority baseline")
           if all(r.get("pct_withheld") for r in results[g])
           else "no normalised %: teacher not above random, or no random score" for g in games}
    return scored, [("student parameters (thousands)",
                     "normalised % of teacher" if scored[g] else "held-out action agreement (%)",
                     f"{g}" + ("" if scored[g] else f": agreement ({why[g]})")) for g in games]


def _frame(ax, here: list[tuple], scored: bool, withheld: list[str], xs: list[float]) -> None:
    """The lines a panel's points are read against, the students it could not draw, and a log x axis
    in thousands of parameters."""
    import matplotlib.ticker as ticker

    if scored:
        ax.axhline(100, linestyle="--", color="black", label="teacher")
        ax.axhline(0, linestyle=":", color="grey", label="random policy")
    else:
        baseline = here[0][1].get("majority_baseline")
        if baseline is not None:
            ax.axhline(100 * baseline, linestyle=":", color="grey", label="majority-action baseline")
        ax.set_ylim(0, 100)
    if withheld:
        ax.text(0.5, -0.2, "not drawn: " + ", ".join(withheld), transform=ax.transAxes, fontsize=7,
                ha="center", va="top", wrap=True)
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
