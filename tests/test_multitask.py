"""Multi-task students: a head per game, isolated gradients, and a schedule that keeps its shares."""

from pathlib import Path

import pytest
import torch

from atari_distill.learner.losses import make_loss
from atari_distill.learner.schedule import GameSchedule
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.config import ConfigError, MultitaskConfig

HEADS = {"pong": 6, "breakout": 4, "space_invaders": 6}


def test_games_with_different_action_counts_share_one_student():
    net = QNetwork("multi-3", HEADS)
    obs = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    assert {game: net(obs, game).shape for game in HEADS} == {g: (5, n) for g, n in HEADS.items()}
    with pytest.raises(ValueError, match="no head for 'enduro'"):
        net(obs, "enduro")


def test_a_batch_of_one_game_updates_only_the_trunk_and_that_games_head():
    torch.manual_seed(0)
    net = QNetwork("net1", HEADS)
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    q_teacher = torch.randn(8, 4)
    make_loss("kl", tau=0.01)(net(obs, "breakout"), q_teacher).backward()
    for name, parameter in net.named_parameters():
        touched = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        expected = name.startswith("trunk.") or name.startswith("heads.breakout.")
        assert touched == expected, name


@pytest.mark.parametrize("weights", [{"pong": 1.0, "breakout": 1.0, "space_invaders": 1.0},
                                     {"pong": 3.0, "breakout": 1.0, "space_invaders": 0.5}])
def test_schedule_shares_match_the_weights(weights):
    schedule = GameSchedule(weights)
    turns = 9_000
    drawn = [schedule.next() for _ in range(turns)]
    total = sum(weights.values())
    for game, weight in weights.items():
        expected = turns * weight / total
        # binomial sampling error would be sqrt(turns p (1-p)); the schedule stays within one batch
        assert abs(drawn.count(game) - expected) <= 1.0, (game, drawn.count(game), expected)
        assert schedule.counts[game] == drawn.count(game)
    window = drawn[:int(2 * total / min(weights.values()))]
    assert set(window) == set(weights)  # interleaved, not in blocks


def test_schedule_resumes_where_it_stopped():
    weights = {"pong": 2.0, "breakout": 1.0}
    whole = GameSchedule(weights)
    expected = [whole.next() for _ in range(50)]
    first = GameSchedule(weights)
    head = [first.next() for _ in range(20)]
    second = GameSchedule(weights)
    second.load(first.state())
    assert head + [second.next() for _ in range(30)] == expected


@pytest.mark.parametrize("flags, words", [
    (dict(games="pong"), "at least two games"),
    (dict(games="pong,pong"), "lists a game twice"),
    (dict(games="pong,pongg"), "did you mean"),
    (dict(teachers="random,random,random"), "3 teachers for 2 games"),
    (dict(weights="1,0"), "one positive weight per game"),
    (dict(teachers="/nonexistent"), "neither 'random', zoo:GAME nor an existing checkpoint file"),
])
def test_bad_multitask_flags_are_refused(flags, words):
    with pytest.raises(ConfigError, match=words):
        MultitaskConfig.from_flags(**{"games": "pong,breakout", **flags}).validate()


def test_teacher_directory_is_matched_by_game_name(tmp_path):
    from atari_distill.models.checkpoint import make_payload, save_checkpoint

    for game, actions in (("pong", 6), ("breakout", 4)):
        save_checkpoint(tmp_path / f"{game}.pt", make_payload(QNetwork("nature", {game: actions}), "teacher"))
    cfg = MultitaskConfig.from_flags(games="breakout,pong", teachers=str(tmp_path)).validate()
    assert cfg.game_teachers() == [("breakout", str(tmp_path / "breakout.pt")), ("pong", str(tmp_path / "pong.pt"))]
    with pytest.raises(ConfigError, match="no file for space_invaders"):
        MultitaskConfig.from_flags(games="pong,space_invaders", teachers=str(tmp_path)).validate()


def test_multitask_student_learns_two_live_random_teachers(tmp_path):
    """End to end on real ALE games with live teacher actors: one net1 trunk, two heads of 9 and 4
    actions (games whose episodes are short, so the one episode each scored is not most of the test).
    On the local runner: learning is the subject (bench/multitask_bench.py's tiny test runs one on Ray)."""
    import json

    from atari_distill.pipelines.distill import run_distill

    cfg = MultitaskConfig.from_flags(games="ms_pacman,breakout", student="net1", updates=2000, log_every=1000,
                          checkpoint_every=2000, capacity_hours=0.2, min_replay=1000, eval_episodes=1, select_episodes=1,
                          holdout_steps=1500, runner="local", out=str(tmp_path / "run")).validate()
    summary = run_distill(cfg, echo=print)
    assert json.loads((Path(cfg.run.out) / "summary.json").read_text())["kind"] == "multitask"
    assert summary["samples_per_game"] == {"ms_pacman": 32_000, "breakout": 32_000}  # 1,000 batches each
    for game, result in summary["per_game"].items():
        print(f"{game}: agreement {result['action_agreement']:.3f}, majority {result['majority_baseline']:.3f}")
        assert result["action_agreement"] >= result["majority_baseline"] + MULTITASK_MARGIN, game
        assert result["student_score"]["episodes"] == result["teacher_score"]["episodes"] == 1
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["samples_per_game"] == {"ms_pacman": 32_000, "breakout": 32_000}
    assert set(metrics[-1]["replay_per_game"]) == {"ms_pacman", "breakout"}
    from atari_distill.models.checkpoint import load_checkpoint

    final = load_checkpoint(tmp_path / "run" / "checkpoints" / "student-00002000.pt")
    assert final["heads"] == {"ms_pacman": 9, "breakout": 4}


MULTITASK_MARGIN = 0.08  # measured: +0.21 ms_pacman, +0.13 breakout over the majority action (2026-12-05)


def test_reweighting_a_schedule_moves_its_shares_from_that_turn_on():
    schedule = GameSchedule({"pong": 1.0, "breakout": 1.0})
    first = [schedule.next() for _ in range(100)]
    schedule.reweight({"pong": 3.0, "breakout": 1.0})
    later = [schedule.next() for _ in range(400)]
    assert first.count("pong") == 50 and abs(later.count("pong") - 300) <= 1
    with pytest.raises(ValueError, match="one per game"):
        schedule.reweight({"pong": 1.0})


def test_a_checkpoint_keeps_the_balancers_newest_weights_before_training_reaches_them():
    import dataclasses

    from atari_distill.learner.learner import Learner
    from atari_distill.pipelines.config import DistillConfig
    from atari_distill.pipelines.distill import learner_config

    config = learner_config(DistillConfig.from_flags(batch_size=32).validate(), "net3", "kl", 1)
    learner = Learner(dataclasses.replace(config, device="cpu", graphs=False), {"pong": 6, "breakout": 4},
                      {"pong": [], "breakout": []})
    learner.set_weights({"pong": 1.25, "breakout": 0.25})  # requested, not yet trained: a resume must not lose it
    schedule = learner.state()["extra"]["schedule"]
    assert schedule["next_weights"] == {"pong": 1.25, "breakout": 0.25}
    assert schedule["weights"] == {"pong": 1.0, "breakout": 1.0}  # what the trained batches came under


def test_the_balancing_schedule_gives_a_lagging_game_more_batches_and_reads_only_selection_seeds():
    from atari_distill.evaluation.curve import Balancer

    baselines = {"pong": (20.0, -20.0), "breakout": (30.0, 2.0), "freeway": (20.0, 0.0)}  # (teacher, random)
    balancer = Balancer(baselines)
    point = {"pong": {"score": 21.0, "seeds": "selection"},  # past its teacher
             "breakout": {"score": 5.0, "seeds": "selection"},  # barely above random
             "freeway": {"score": 10.0, "seeds": "selection"}}  # half way
    weights = balancer.weights(point)
    schedule = GameSchedule(weights)
    drawn = [schedule.next() for _ in range(1000)]
    assert drawn.count("breakout") > drawn.count("freeway") > drawn.count("pong") > 0  # rehearsed, not dropped
    assert drawn.count("breakout") >= 3 * drawn.count("pong")
    with pytest.raises(ValueError, match="selection-seed scores only; pong's point was played on 'report' seeds"):
        balancer.weights({**point, "pong": {"score": 21.0, "seeds": "report"}})


def test_balanced_schedule_needs_evaluations_to_steer_by():
    with pytest.raises(ConfigError, match="--eval-every is 0; add --eval-every"):
        MultitaskConfig.from_flags(games="pong,breakout", schedule="balanced").validate()
    assert MultitaskConfig.from_flags(games="pong,breakout", schedule="balanced", eval_every=100).validate().balanced()
    # the default: balanced where there are curve points to steer by and no shares were set, and so written
    assert [MultitaskConfig.from_flags(games="pong,breakout", teachers="zoo", **flags).validate().schedule for flags in (
        {"eval_every": 100}, {}, {"eval_every": 100, "weights": "1,2"})] == ["balanced", "fixed", "fixed"]
    # random teachers are no better than random play: no progress to steer by
    assert MultitaskConfig.from_flags(games="pong,breakout", eval_every=100).validate().schedule == "fixed"
    assert MultitaskConfig.from_flags(games="pong,breakout", teachers="zoo:pong, random",  # one is enough, spaced
                                      eval_every=100).validate().schedule == "fixed"


def test_a_run_from_before_the_schedule_flag_resumes_with_its_fixed_shares(tmp_path):
    import json
    from argparse import Namespace

    from atari_distill.pipelines.commands import RUN_KINDS, open_for_resume
    from atari_distill.rundir.directory import RunDir

    cfg = MultitaskConfig.from_flags(games="pong,breakout", teachers="zoo", eval_every=100,
                                     out=str(tmp_path / "run")).validate()
    stored = json.loads(cfg.to_json())
    del stored["schedule"]  # as runs before --schedule wrote it
    RunDir.create(tmp_path / "run", json.dumps(stored))
    kind = next(k for k in RUN_KINDS.values() if k.config is MultitaskConfig)
    _, resumed = open_for_resume(kind, Namespace(resume=str(tmp_path / "run"), override=None))
    assert (cfg.schedule, resumed.schedule) == ("balanced", "fixed")
    with pytest.raises(ConfigError, match="--weights sets fixed shares and --schedule balanced sets its own"):
        MultitaskConfig.from_flags(games="pong,breakout", schedule="balanced", eval_every=100, weights="1,2").validate()


def test_a_rebuilt_learners_points_past_its_checkpoint_are_dropped_and_the_others_kept(tmp_path):
    """Learner a died at 40 and went back to its checkpoint at 20: its points asked for at 30 and 40 were
    of a network no student has, and would steer the balancer; b's, and a's at 20, stay."""
    from atari_distill.evaluation.curve import StudentEvaluations
    from atari_distill.pipelines.stopping import StopToken
    from atari_distill.rundir.directory import RunDir

    cfg = MultitaskConfig.from_flags(games="pong,breakout", updates=40).validate()
    evaluations = StudentEvaluations(cfg, [], {}, RunDir.create(tmp_path / "run", "{}"), print, 0.0, StopToken())
    a, b = object(), object()
    evaluations.pending = [{"group": group, "updates": u} for u in (20, 30, 40) for group in (a, b)]
    evaluations.discard(a, 20)
    assert [(e["group"] is a, e["updates"]) for e in evaluations.pending] == [
        (True, 20), (False, 20), (False, 30), (False, 40)]
