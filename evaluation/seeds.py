"""Training seeds as the unit of evidence. The CI a summary states is over one network's report
episodes: it says nothing of how differently another training run would turn out. Runs that differ
only in `--seed` are aggregated here as the field does (Agarwal et al. 2021, through `rliable`):
per game the mean over seeds with a t interval over seeds; across games the interquartile mean
(IQM) and the optimality gap of normalised scores, (student - random) / (teacher - random) on the
report seeds, with stratified bootstrap CIs; and between two such sets, the probability that one
improves on the other.
"""

from __future__ import annotations

import numpy as np

from atari_distill.evaluation.episodes import ci95_half_width

RUN_ONLY = ("out", "seed", "address", "runner", "device")  # where and as which replicate a run ran, not what it is
BOOTSTRAP_REPS = 2000  # rliable's own default for performance profiles; its 50,000 for intervals take minutes


class SeedsError(ValueError):
    pass


def experiment_of(flags: dict) -> str:
    """A run's flags (RunDir.read_config) with what a replicate may change taken out: runs with the same
    one are seeds of one experiment."""
    import json

    return json.dumps({k: v for k, v in flags.items() if k not in RUN_ONLY}, sort_keys=True)


def normalised(student: float, teacher: float, random: float) -> float | None:
    """(s - r) / (t - r): 1 is the teacher, 0 the random policy; undefined where the teacher does not
    score above random."""
    return (student - random) / (teacher - random) if teacher > random else None


def score_matrix(results: list, series: int = 0) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """(seeds x games) normalised scores of each run's `series`-th student, the games kept, and why
    each other game was left out (a teacher not above random in some run, a game some run lacks)."""
    games = sorted(set.intersection(*(set(r.students[series].per_game) for r in results)))
    left_out = {g: "not played by every run" for r in results for g in r.students[series].per_game if g not in games}
    rows = []
    for result in results:
        row = []
        for game in games:
            played = result.students[series].per_game[game]
            value = None
            if played.student and played.teacher and played.random:
                value = normalised(played.student.mean, played.teacher.mean, played.random.mean)
            row.append(np.nan if value is None else value)
        rows.append(row)
    matrix = np.array(rows, dtype=np.float64).reshape(len(results), len(games))
    keep = ~np.isnan(matrix).any(axis=0)
    left_out.update({g: "its teacher does not score above random in every run"
                     for g, kept in zip(games, keep) if not kept})
    return matrix[:, keep], [g for g, kept in zip(games, keep) if kept], left_out


def over_seeds(values: list[float]) -> dict:
    """A mean over training seeds with the half-width of its t interval over them (None from one)."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "ci95": ci95_half_width(values), "seeds": len(values),
            "values": [float(v) for v in values]}


def aggregate(matrix: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict:
    """rliable's IQM, optimality gap, mean and median of a (seeds x games) normalised matrix, each with
    its stratified bootstrap 95% CI (games are the strata: each resample redraws seeds within a game)."""
    from rliable import library as rly
    from rliable import metrics

    if matrix.shape[0] < 2 or matrix.shape[1] < 1:
        raise SeedsError(f"an aggregate over seeds needs at least two seeds and one game, got {matrix.shape[0]} "
                         f"seed(s) and {matrix.shape[1]} game(s) with normalised scores")

    def measures(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_optimality_gap(scores),
                         metrics.aggregate_mean(scores), metrics.aggregate_median(scores)])
    points, intervals = rly.get_interval_estimates({"runs": matrix}, measures, reps=reps,
                                                   random_state=np.random.RandomState(seed))
    names = ("iqm", "optimality_gap", "mean", "median")
    return {name: {"value": float(points["runs"][i]), "low95": float(intervals["runs"][0][i]),
                   "high95": float(intervals["runs"][1][i])} for i, name in enumerate(names)}


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict:
    """P(a run of x beats a run of y on a random game), both (seeds x games) over the same games, with
    its stratified bootstrap 95% CI: above 0.5 with its lower bound too, x improves on y."""
    from rliable import library as rly
    from rliable import metrics

    if x.shape[1] != y.shape[1]:
        raise SeedsError(f"the two sets of runs have {x.shape[1]} and {y.shape[1]} games; compare them on the same games")
    points, intervals = rly.get_interval_estimates({"pair": [x, y]}, metrics.probability_of_improvement, reps=reps,
                                                   random_state=np.random.RandomState(seed))
    return {"value": float(points["pair"]), "low95": float(intervals["pair"][0]),
            "high95": float(intervals["pair"][1])}


def performance_profile(matrix: np.ndarray, taus: np.ndarray, reps: int = BOOTSTRAP_REPS) -> dict:
    """The fraction of runs (every seed, every game) scoring above each tau, with its 95% CI band."""
    from rliable import library as rly

    points, bands = rly.create_performance_profile({"runs": matrix}, taus, reps=reps)
    return {"taus": [float(t) for t in taus], "fraction": [float(v) for v in points["runs"]],
            "low95": [float(v) for v in bands["runs"][0]], "high95": [float(v) for v in bands["runs"][1]]}


def seeds_summary(results: list, seeds: list, series: int = 0, reps: int = BOOTSTRAP_REPS) -> dict:
    """Runs of one experiment, one per training seed (`seeds`, theirs): per game the student's score
    and normalised score over seeds, and across games rliable's aggregates of the normalised scores."""
    matrix, games, left_out = score_matrix(results, series)
    per_game = {}
    for j, game in enumerate(games):
        scores = [r.students[series].per_game[game].student.mean for r in results]
        per_game[game] = {"score": over_seeds(scores), "normalised": over_seeds(list(matrix[:, j]))}
    return {"runs": [str(r.run_dir) for r in results], "seeds": seeds, "games": games, "left_out": left_out,
            "per_game": per_game, "aggregate": aggregate(matrix, reps), "matrix": matrix.tolist(),
            "bootstrap_reps": reps}
