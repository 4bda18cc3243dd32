"""The evaluation protocol: disjoint seed ranges, whole-episode held-out frames, ratios with their evidence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atari_distill.actors.env import ACTOR_SEED_STRIDE, MAX_ACTOR_ID, MAX_ENVS_PER_ACTOR, actor_seed, restarted_actor_seed
from atari_distill.evaluation.episodes import MAX_SLOTS
from atari_distill.evaluation.holdout import NUM_ENVS, holdout_frames
from atari_distill.evaluation.protocol import HOLDOUT, MAX_SEED, REPORT, SELECTION, STICKY_HOLDOUT, EvalProtocol, ProtocolError
from atari_distill.evaluation.statistics import compare, geometric_mean, geometric_means, ratio_bound


def seeds_of(protocol: EvalProtocol, purpose: str, block: int = 0) -> set[int]:
    """Every env seed an evaluation of `purpose` resets (slots of evaluation/episodes.py, or held-out envs)."""
    if purpose == HOLDOUT:
        plain = protocol.env_seeds(HOLDOUT, NUM_ENVS)
        return set(plain.tolist()) | set((plain + STICKY_HOLDOUT).tolist())
    return set(protocol.env_seeds(purpose, MAX_SLOTS, block).tolist())


def ranges_of(seed: int) -> dict[str, set[int]]:
    protocol = EvalProtocol(seed=seed)
    ranges = {purpose: seeds_of(protocol, purpose) for purpose in (HOLDOUT, SELECTION, REPORT)}
    ranges["verify"] = seeds_of(protocol, REPORT, block=1)
    return ranges


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, MAX_SEED - 1), other_seed=st.integers(0, MAX_SEED - 1),
       actors=st.integers(1, MAX_ACTOR_ID), envs=st.integers(1, 1024))
def test_seed_ranges_never_overlap(seed, other_seed, actors, envs):
    """Within a run, for any seed and actor count; and across runs, no purpose of one seed meets another
    purpose of any other seed (a card scored with seed 0 plays no episode a run with seed s chose by)."""
    ranges, others = ranges_of(seed), ranges_of(other_seed)
    first, last = actor_seed(seed, 0), actor_seed(seed, actors - 1) + envs - 1  # actor i: base + 4096 i + env
    for name, seeds in ranges.items():
        assert not any(first <= s <= last for s in seeds), f"{name} seeds meet an actor's"
        assert not any(first <= s <= last for s in others[name]), f"seed {other_seed}'s {name} meets an actor's"
        assert max(seeds) < 2**31, "ALE seeds are 32-bit"
        for other, theirs in ranges.items():
            assert other == name or not seeds & theirs, f"{name} and {other} share seeds"
            assert other == name or not seeds & others[other], f"{name} meets seed {other_seed}'s {other}"


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, MAX_SEED - 1), actor=st.integers(0, MAX_ACTOR_ID - 1), pid=st.integers(1, 2**22),
       envs=st.integers(1, MAX_ENVS_PER_ACTOR))
def test_a_restarted_actor_plays_new_episodes_inside_its_own_seeds(seed, actor, pid, envs):
    """Ray restarts a dead actor with its first arguments; its environments move to fresh seeds that stay
    in its own stride: never its first incarnation's, another actor's, or an evaluation range's."""
    first = actor_seed(seed, actor)
    restarted = restarted_actor_seed(first, pid)
    assert first + envs <= restarted and restarted + envs <= first + ACTOR_SEED_STRIDE


def test_an_actor_id_past_the_limit_is_refused():
    with pytest.raises(ValueError, match="outside"):
        actor_seed(0, MAX_ACTOR_ID)


def test_a_seed_outside_the_ranges_is_refused():
    with pytest.raises(ProtocolError, match="--seed must be in"):
        EvalProtocol(seed=MAX_SEED)


def test_the_protocol_is_written_with_its_seed_ranges():
    record = EvalProtocol(seed=3, episodes=30).as_dict({"extra": {"env_mode": "cleanrl"}})
    assert record["env_mode"] == "cleanrl" and record["episodes"] == 30
    assert record["seeds"] == {p: EvalProtocol(seed=3).seed_base(p) for p in (SELECTION, REPORT, HOLDOUT)}
    assert "report seeds" in record["text"] and "cleanrl" in record["text"]


def test_ratios_are_withheld_below_ten_episodes():
    few = {"mean": 100.0, "ci95": 10.0, "episodes": 2}
    result = compare(few, {"mean": 50.0, "ci95": 5.0, "episodes": 30}, None)
    assert result["student_pct_of_teacher"] is None and "2 episodes" in result["pct_withheld"]


def test_a_student_below_a_negative_teacher_reads_normalised_far_above_random():
    """Pong: a student at -2.8 against a teacher at 17.0 is '-16% of teacher' raw, though far above random."""
    student = {"mean": -2.8, "ci95": 2.0, "episodes": 30}
    teacher = {"mean": 17.0, "ci95": 0.6, "episodes": 30}
    random = {"mean": -20.4, "ci95": 0.3, "episodes": 30}
    result = compare(student, teacher, random)
    assert result["student_pct_of_teacher"] == pytest.approx(-16.47, abs=0.01)
    assert result["normalised_pct"] == pytest.approx(100 * 17.6 / 37.4)
    assert result["normalised_low95"] < result["normalised_pct"] and result["pct_low95"] < result["student_pct_of_teacher"]


def test_a_teacher_no_better_than_random_gets_no_normalised_percentage_but_the_margin_over_random():
    """A random-weight Breakout teacher (1.8 +/- 0.5 against random's 1.6 +/- 0.6) and a student that
    learnt from the reward (6.6 +/- 0.7): a normalised % would be 3700% with a lower bound of -18901%."""
    from atari_distill.ui.summaries import ratio_text

    result = compare({"mean": 6.57, "ci95": 0.69, "episodes": 30}, {"mean": 1.77, "ci95": 0.53, "episodes": 30},
                     {"mean": 1.63, "ci95": 0.63, "episodes": 30})
    assert result["normalised_pct"] is None and "beyond chance" in result["normalised_withheld"]
    assert result["above_random"] == pytest.approx(4.94) and 3.9 < result["above_random_low95"] < 4.1
    line = ratio_text(result)  # the margin leads; no % of a teacher that is noise is the headline
    assert line.startswith("4.9 above the random policy (low 95% 4.0); no % of teacher claimed"), line
    kept = compare({"mean": 6.1, "ci95": 0.7, "episodes": 30}, {"mean": 6.87, "ci95": 0.99, "episodes": 30},
                   {"mean": 1.57, "ci95": 0.58, "episodes": 30})  # the zoo teacher: far above random
    assert kept["normalised_pct"] == pytest.approx(100 * 4.53 / 5.3) and "normalised_withheld" not in kept



def test_a_head_whose_agreement_does_not_beat_the_majority_baseline_gets_no_percentage_of_teacher():
    """The ten-game Freeway head: "114% of teacher" at agreement 0.914 against a majority baseline of
    0.914. Its % is withheld and named in the headline's reason; a head beyond chance above it keeps its %."""
    from atari_distill.evaluation.statistics import unless_majority_action

    teacher, random = {"mean": 21.0, "ci95": 0.4, "episodes": 30}, {"mean": 0.0, "ci95": 0.0, "episodes": 30}
    row = compare({"mean": 24.0, "ci95": 0.5, "episodes": 30}, teacher, random)
    assert row["student_pct_of_teacher"] == pytest.approx(114.3, abs=0.1)
    constant = unless_majority_action(row, 0.914, 0.914, 2000)
    assert constant["student_pct_of_teacher"] is None and constant["normalised_pct"] is None
    assert constant["pct_withheld"].startswith("agreement 0.914 does not beat the majority baseline 0.914")
    assert unless_majority_action(row, 0.95, 0.914, 2000) == row  # 0.95 - 0.0096 > 0.914
    assert unless_majority_action(row, 0.93, 0.914, 200)["agreement_not_above_majority"]  # within chance on 200 frames
    other = compare({"mean": 10.0, "ci95": 1.0, "episodes": 30}, teacher, random)
    means = geometric_means({"freeway": constant, "pong": other})
    assert means["geometric_mean_of"] is None
    assert "freeway: its agreement does not beat the majority baseline" in means["geometric_mean_undefined"]

def test_ratio_bound_matches_a_simulation():
    """The delta-method lower bound against the 2.5% quantile of simulated ratios of two noisy means."""
    rng = np.random.default_rng(0)
    a, b, sa, sb = 80.0, 100.0, 6.0, 4.0
    ratios = 100 * rng.normal(a, sa, 200_000) / rng.normal(b, sb, 200_000)
    _, low = ratio_bound(a, 1.96 * sa, b, 1.96 * sb)
    assert low == pytest.approx(np.quantile(ratios, 0.025), abs=1.0)
    assert ratio_bound(1.0, 0.1, 0.0, 0.1) is None


def test_geometric_mean_of_percentages():
    assert geometric_mean([50.0, 200.0]) == pytest.approx(100.0)
    assert geometric_mean([0.0, 150.0]) == 0.0
    assert geometric_mean([]) is None
    assert geometric_mean([-16.0, 150.0]) is None, "a negative % has no geometric mean"
    games = {"pong": {"student_pct_of_teacher": -16.0, "normalised_pct": 47.0},
             "ms_pacman": {"student_pct_of_teacher": 110.0, "normalised_pct": 113.0}}
    means = geometric_means(games)
    assert means["geometric_mean_pct_of_teacher"] is None and means["geometric_mean_of"] == "normalised"
    assert means["geometric_mean_normalised_pct"] == pytest.approx((47.0 * 113.0) ** 0.5)
    both = geometric_means({g: {**r, "student_pct_of_teacher": 100.0} for g, r in games.items()})
    assert both["geometric_mean_of"] == "raw" and both["geometric_mean_pct_of_teacher"] == pytest.approx(100.0)
    below = geometric_means({**games, "pong": {"student_pct_of_teacher": -16.0, "normalised_pct": -3.0}})
    assert below["geometric_mean_normalised_pct"] is None and below["geometric_mean_of"] is None, \
        "a game below random must not floor the headline to 0%"
    assert below["geometric_mean_undefined"] == "1 of 2 games below the random policy (pong)"
    noise = geometric_means({"pong": {"student_pct_of_teacher": -16.0, "normalised_pct": -3.0}, "ms_pacman": {"student_pct_of_teacher": -5.0, "normalised_pct": None,
                                                    "normalised_withheld": "the teacher (1.8 +/- 0.5) does not ..."}})
    assert noise["geometric_mean_undefined"] == ("2 of 2 games define no ratio: pong: below the random policy; "
                                                 "ms_pacman: its teacher does not beat the random policy beyond chance")


def test_geometric_mean_lower_bound_matches_a_simulation():
    from atari_distill.evaluation.statistics import geometric_mean_low95

    rng = np.random.default_rng(0)
    means, sds = np.array([95.0, 120.0, 70.0, 100.0]), np.array([8.0, 15.0, 6.0, 12.0])
    draws = np.exp(np.log(rng.normal(means, sds, (200_000, 4))).mean(axis=1))
    low = geometric_mean_low95(list(means), list(means - 1.96 * sds))
    assert low == pytest.approx(np.quantile(draws, 0.025), abs=1.5)  # the draws' logs sit ~1 point low (Jensen)
    assert geometric_mean_low95([0.0, 100.0], [0.0, 90.0]) == 0.0 and geometric_mean_low95([90.0], [None]) is None
    games = {"a": {"student_pct_of_teacher": 90.0, "pct_low95": 80.0, "normalised_pct": 85.0, "normalised_low95": 70.0},
             "b": {"student_pct_of_teacher": 110.0, "pct_low95": 95.0, "normalised_pct": 115.0, "normalised_low95": 90.0}}
    found = geometric_means(games)
    assert found["geometric_mean_pct_low95"] < found["geometric_mean_pct_of_teacher"]
    assert found["geometric_mean_normalised_low95"] < found["geometric_mean_normalised_pct"]


def test_held_out_frames_span_whole_episodes(pong_teacher):
    """Frames from every part of complete episodes, not the first few hundred steps of each."""
    protocol = EvalProtocol(holdout_steps=400)
    obs, q, played = holdout_frames("pong", pong_teacher, protocol)
    assert obs.shape == (400, 4, 84, 84) and obs.dtype == np.uint8 and q.shape == (400, 6)
    assert played["episodes"] >= NUM_ENVS and played["steps_played"] >= 4 * 400
    # the old sample, the first 250 steps of 8 episodes, had its median at step 125
    assert played["median_step_in_episode"] > 250 and played["max_step_in_episode"] > 600
    openings = (obs[:, :3] == 0).all(axis=(1, 2, 3)).mean()  # an episode's first step: three zero frames
    assert openings < 0.05
    again, q_again, _ = holdout_frames("pong", pong_teacher, protocol)
    assert np.array_equal(again, obs) and np.array_equal(q_again, q), "held-out frames are a function of the seeds"
    sticky, _, info = holdout_frames("pong", pong_teacher, protocol, sticky_actions=True)
    assert info["sticky_actions"] and not np.array_equal(sticky, obs)
