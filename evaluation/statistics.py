"""How close a student is to its teacher, the measures every run kind reports alike: % of the
teacher's score raw (Rusu et al.) and normalised by the random policy on the same report
seeds, each with its lower 95% bound; their geometric mean over games; and agreement on
held-out frames across whole episodes, beside the majority-action baseline it must beat."""

from __future__ import annotations

import math

import numpy as np

from atari_distill.evaluation.protocol import MIN_CLAIM_EPISODES
from atari_distill.runners import handles


def pct_of_teacher(student: float, teacher: float) -> float | None:
    """Rusu et al.'s ratio; undefined (None) when the teacher's mean score is not positive."""
    return 100.0 * student / teacher if teacher > 0 else None


def ratio_bound(a: float, ca: float, b: float, cb: float, cov: float = 0.0) -> tuple[float, float] | None:
    """100 a / b and its lower 95% bound (delta method; ca, cb are the 95% half-widths of a and b and
    cov the covariance of their half-widths); None where b is not positive."""
    if b <= 0:
        return None
    ratio = a / b
    spread = ca**2 / b**2 + a**2 * cb**2 / b**4 - 2 * a * cov / b**3
    return 100.0 * ratio, 100.0 * (ratio - math.sqrt(max(spread, 0.0)))


def beats_beyond_chance(a: float, ca: float | None, b: float, cb: float | None) -> bool:
    """Whether mean a exceeds mean b by more than the 95% half-width of their difference (ca, cb: each
    mean's half-width; None, too few episodes for one, counts as 0)."""
    return a - b > math.hypot(ca or 0.0, cb or 0.0)


def passed_teacher(student: dict, teacher: dict) -> bool | None:
    """Whether the student beats its teacher beyond chance on the report seeds (2.5% one-sided for an equal
    student), asked once a student: asked at every curve point of 8 selection episodes against the
    teacher's mean taken as exact, an equal student passed in a third of runs. None: too few episodes."""
    if min(student["episodes"], teacher["episodes"]) < MIN_CLAIM_EPISODES:
        return None
    return beats_beyond_chance(student["mean"], student["ci95"], teacher["mean"], teacher["ci95"])


def compare(student: dict, teacher: dict, random: dict | None) -> dict:
    """The student against its teacher, raw and normalised ((s - r) / (t - r), random on the same
    report seeds), each with its lower 95% bound. Below MIN_CLAIM_EPISODES episodes on either side
    the ratios are withheld (None) and `pct_withheld` says why."""
    episodes = min(student["episodes"], teacher["episodes"])
    if episodes < MIN_CLAIM_EPISODES:
        return {"student_pct_of_teacher": None, "pct_low95": None, "normalised_pct": None, "normalised_low95": None,
                "pct_withheld": f"{episodes} episodes: % of teacher needs at least {MIN_CLAIM_EPISODES} "
                                f"(--eval-episodes)"}
    s, cs = student["mean"], student["ci95"] or 0.0
    t, ct = teacher["mean"], teacher["ci95"] or 0.0
    raw = ratio_bound(s, cs, t, ct)
    normalised, withheld = None, {}
    if random is not None:
        r, cr = random["mean"], random["ci95"] or 0.0
        if beats_beyond_chance(t, ct, r, cr):
            normalised = ratio_bound(s - r, math.hypot(cs, cr), t - r, math.hypot(ct, cr), cov=cr**2)
        else:  # a normalised % would divide by noise: say how far above random the student is instead
            withheld = {"normalised_withheld": f"the teacher ({t:.1f} +/- {ct:.1f}) does not beat the random policy "
                                               f"({r:.1f} +/- {cr:.1f}) beyond chance",
                        "above_random": s - r, "above_random_low95": s - r - math.hypot(cs, cr)}
    return {"student_pct_of_teacher": raw and raw[0], "pct_low95": raw and raw[1],
            "normalised_pct": normalised and normalised[0], "normalised_low95": normalised and normalised[1],
            "pct_withheld": None, **withheld}


def geometric_mean(values: list[float]) -> float | None:
    """Of percentages: one game at 0% makes it 0; undefined for no games or a negative value."""
    if not values or any(v < 0 for v in values):
        return None
    return 0.0 if min(values) == 0 else float(np.exp(np.mean(np.log(values))))


def geometric_mean_low95(values: list[float], lows: list[float]) -> float | None:
    """The lower 95% bound of the geometric mean of independent percentages, each given with its own
    lower bound (delta method on the mean of their logs); 0 where a game is at or below 0."""
    if not values or any(v is None for v in values) or any(low is None for low in lows):
        return None
    if min(values) <= 0:
        return 0.0
    spread = math.sqrt(sum(((v - low) / 1.96 / v) ** 2 for v, low in zip(values, lows))) / len(values)
    return float(np.exp(np.mean(np.log(values)) - 1.96 * spread))


def undefined_because(per_game: dict[str, dict]) -> str:
    """Why neither geometric mean is defined: each game that defines no usable ratio, and why."""
    why = {}
    for game, r in per_game.items():
        normalised, raw = r.get("normalised_pct"), r.get("student_pct_of_teacher")
        if r.get("agreement_not_above_majority"):
            why[game] = "its agreement does not beat the majority baseline"
        elif r.get("pct_withheld"):
            why[game] = "too few episodes"
        elif normalised is not None and normalised < 0:
            why[game] = "below the random policy"
        elif normalised is None and r.get("normalised_withheld"):
            why[game] = "its teacher does not beat the random policy beyond chance"
        elif normalised is None and (raw is None or raw < 0):
            why[game] = "no random-policy score, and its raw % is undefined or below 0"
    below = [game for game, reason in why.items() if reason == "below the random policy"]
    if below and len(below) == len(why):
        return f"{len(below)} of {len(per_game)} games below the random policy ({', '.join(below)})"
    return f"{len(why)} of {len(per_game)} games define no ratio: " + "; ".join(f"{g}: {r}" for g, r in why.items())


def geometric_means(per_game: dict[str, dict]) -> dict:
    """The geometric means over games of the raw and the normalised % of teacher, each with its lower
    95% bound, and which one a headline should quote: the raw one (the paper's) when every game
    defines it, else the normalised one where every game defines that. A game below the random policy
    leaves the normalised one undefined, with the reason (flooring it at 0 made the headline
    "normalised 0%", which says nothing about the other games)."""
    rows = list(per_game.values())
    raw = [r.get("student_pct_of_teacher") for r in rows]
    normalised = [r.get("normalised_pct") for r in rows]
    raw_mean = geometric_mean(raw) if all(v is not None for v in raw) else None
    norm_mean = geometric_mean(normalised) if all(v is not None for v in normalised) else None
    headline = "raw" if raw_mean is not None else ("normalised" if norm_mean is not None else None)
    undefined = {"geometric_mean_undefined": undefined_because(per_game)} if headline is None else {}
    return {**undefined, "geometric_mean_pct_of_teacher": raw_mean,
            "geometric_mean_pct_low95": raw_mean and geometric_mean_low95(raw, [r.get("pct_low95") for r in rows]),
            "geometric_mean_normalised_pct": norm_mean,
            "geometric_mean_normalised_low95": norm_mean and geometric_mean_low95(
                normalised, [r.get("normalised_low95") for r in rows]),
            "geometric_mean_of": headline, "geometric_mean_over": list(per_game)}


HOLDOUTS = (("plain", False), ("sticky", True))  # held-out frames as played, and with sticky actions


def submit_holdouts(game: str, teacher, protocol) -> dict:
    """The teacher's held-out frames, plain and with sticky actions, each a task of one CPU."""
    from atari_distill.evaluation.holdout import holdout_frames

    play = handles.remote(holdout_frames, num_cpus=1)
    return {key: play.remote(game, teacher, protocol, sticky) for key, sticky in HOLDOUTS}


def majority_baseline(q_teacher: np.ndarray) -> float:
    """The agreement of always playing the teacher's most frequent action."""
    counts = np.bincount(q_teacher.argmax(axis=1), minlength=q_teacher.shape[1])
    return float(counts.max() / counts.sum())


def beats_the_majority_action(agreement: float, majority: float, frames: int) -> bool:
    """Whether held-out agreement beats always playing the teacher's most common action by more than
    its binomial 95% half-width on the frames. Conservative for a student near the baseline (both are
    read on the same frames, which a paired test would use) and lenient where frames of one episode are
    alike; a paired test needs per-frame hits, which the learners do not return yet."""
    return agreement - 1.96 * math.sqrt(agreement * (1.0 - agreement) / max(frames, 1)) > majority


def unless_majority_action(row: dict, agreement: float, majority: float, frames: int) -> dict:
    """`row` (compare's), its % of teacher withheld where agreement does not beat the majority baseline:
    nothing then shows the student learnt more of the teacher than its most common action, and a % of
    teacher says nothing of distillation (a ten-game Freeway head scored "114%" at 0.914 against 0.914)."""
    if row.get("pct_withheld") or beats_the_majority_action(agreement, majority, frames):
        return row
    return {**row, "student_pct_of_teacher": None, "pct_low95": None, "normalised_pct": None,
            "normalised_low95": None, "agreement_not_above_majority": True,
            "pct_withheld": f"agreement {agreement:.3f} does not beat the majority baseline {majority:.3f} beyond "
                            f"chance on {frames:,} held-out frames, so nothing shows more of the teacher was learnt "
                            f"than its most common action"}
