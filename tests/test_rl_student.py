"""A student that learns from the reward as well as from its teacher (--rl-weight): its TD term is the
DQN's, its distillation weight hands off as its selection score nears the teacher's, and with that
weight at zero the teacher's labels no longer move it while the reward still does."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from atari_distill.learner.learner import Learner
from atari_distill.learner.td import dqn_loss, rl_loss
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.config import ConfigError, DistillConfig
from atari_distill.pipelines.distill import learner_config
from atari_distill.pipelines.sections import RLSettings
from atari_distill.pipelines.stopping import StopToken
from atari_distill.evaluation.curve import Handoff, first_update
from atari_distill.rundir.directory import RunDir


def rl_learner(**flags) -> Learner:
    cfg = DistillConfig.from_flags(device="cpu", rl_weight=1.0, eval_every=10, updates=20, **flags).validate()
    return Learner(dataclasses.replace(learner_config(cfg, "net3", "kl", 1), graphs=False), {"pong": 6}, {"pong": []})


def transitions(q: np.ndarray, seed: int = 0, batch: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    return {"obs": rng.integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8),
            "next_obs": rng.integers(0, 256, (batch, 4, 84, 84), dtype=np.uint8),
            "actions": rng.integers(0, 6, batch).astype(np.uint8), "returns": rng.choice([-1.0, 0.0, 1.0], batch)
            .astype(np.float32), "discount": np.full(batch, 0.99**3, np.float32), "q": q.astype(np.float32)}


def weights(learner: Learner) -> dict:
    return {k: v.clone() for k, v in learner.student.state_dict().items()}


def test_the_reward_term_is_the_dqns_td_loss_on_the_students_outputs():
    torch.manual_seed(0)
    student, target = QNetwork("net3", {"pong": 6}), QNetwork("net3", {"pong": 6})
    batch = {k: torch.from_numpy(v) for k, v in transitions(np.zeros((16, 6))).items()}
    ours, _ = rl_loss(student(batch["obs"], "pong"), student, target, batch, "pong")
    theirs, _ = dqn_loss(student, target, batch)
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-6)


def test_the_distillation_term_reads_the_students_outputs_at_the_teachers_temperature():
    """So they stay Q values in the teacher's units, which the TD term needs (a tau-0.01 KL on raw outputs
    makes them logits a hundred times the teacher's Q)."""
    from atari_distill.learner.losses import KLLoss

    learner = rl_learner(tau=0.05)
    batch = transitions(np.random.default_rng(2).standard_normal((16, 6)))
    with torch.no_grad():
        q_student = learner.student(torch.from_numpy(batch["obs"]), "pong")
    expected = KLLoss(tau=0.05)(q_student / 0.05, torch.from_numpy(batch["q"]))
    assert float(learner.step("pong", batch)["distill_loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_at_distillation_weight_zero_the_teachers_labels_no_longer_move_the_student_but_the_reward_does():
    learners = [rl_learner(), rl_learner()]
    start = weights(learners[0])
    rng = np.random.default_rng(1)
    labels = [rng.standard_normal((16, 6)) * 5, rng.standard_normal((16, 6)) * 5]  # two teachers that disagree
    for learner, q in zip(learners, labels):
        learner.set_distill_weight(0.0)
        learner.step("pong", transitions(q))
    after = [weights(learner) for learner in learners]
    assert all(torch.equal(after[0][k], after[1][k]) for k in start)
    assert any(not torch.equal(after[0][k], start[k]) for k in start)  # the TD term moved it
    moved = [rl_learner(), rl_learner()]  # and at weight 1 the labels do
    for learner, q in zip(moved, labels):
        learner.step("pong", transitions(q))
    assert any(not torch.equal(a, b) for a, b in zip(weights(moved[0]).values(), weights(moved[1]).values()))


def test_the_distillation_weight_falls_to_zero_once_the_selection_score_reaches_the_teachers_and_never_rises(tmp_path):
    """A later, noisier point below the teacher (2.0 after 14.0) does not hand the labels back: QDagger
    anneals lambda, it does not follow each point's noise; a resume goes on from the last lambda."""
    run = RunDir.create(tmp_path / "run", "{}")
    learner = rl_learner()
    handoff = Handoff(RLSettings(rl_weight=1.0), lambda: {"pong": (10.0, -20.0, True)}, run, echo=lambda *_: None,
                      stop=StopToken())
    records = []
    for updates, score in ((100, -20.0), (200, -5.0), (250, -14.0), (300, 10.0), (400, 14.0), (500, 2.0)):  # ci95 3
        state = learner.state({"game": "pong"})
        state["updates"] = updates
        point = {"score": score, "ci95": 3.0}
        record = {"kind": "eval", "updates": updates, **point, **handoff.point("net3/kl", "pong", updates, point, state,
                                                                               learner)}
        records.append(record)
        assert float(learner.distill_weight) == pytest.approx(record["distill_weight"])
    assert [r["distill_weight"] for r in records] == pytest.approx([1.0, 0.5, 0.5, 0.0, 0.0, 0.0])
    assert first_update(records, "eval", "reached_teacher") == 300
    assert not any("passed_teacher" in r for r in records)  # decided once, on the report seeds
    assert handoff.best["updates"] == 400  # the best selection score, kept on disk for the report seeds
    assert [p.name for p in run.checkpoint_paths("student-best")][-1] == "student-best-00000400.pt"
    for line in records:
        run.log(line)
    resumed = Handoff(RLSettings(rl_weight=1.0), lambda: {"pong": (10.0, -20.0, True)}, run, echo=lambda *_: None,
                      stop=StopToken())
    resumed.resume(learner, "eval", 500)
    assert resumed.point("net3/kl", "pong", 600, {"score": -20.0, "ci95": 3.0}, state, learner)["distill_weight"] == 0.0


def test_passing_the_teacher_is_claimed_at_its_nominal_rate_for_a_student_equal_to_its_teacher():
    """4,000 runs of a student that plays exactly as its teacher (30 report episodes each, Pong-like
    scores): the one test a run makes fires in at most 2.5% of them (one-sided 95%), and for a student
    10 points better it fires nearly always. The old rule, a lower bound from 8 selection episodes above
    the teacher's 8-episode mean at each of 9 points, fired in about a third."""
    from atari_distill.evaluation.episodes import summarize
    from atari_distill.evaluation.statistics import passed_teacher

    rng = np.random.default_rng(0)

    def played(mean: float, episodes: int = 30) -> dict:
        scores = np.clip(np.round(rng.normal(mean, 6.0, size=episodes)), -21, 21)
        return summarize(list(scores), [1000] * episodes, 0.05, 30).as_dict()

    equal = [passed_teacher(played(5.0), played(5.0)) for _ in range(4000)]
    assert np.mean(equal) <= 0.025 + 0.005, np.mean(equal)  # nominal, plus two standard errors of 4,000 draws
    assert np.mean([passed_teacher(played(15.0), played(5.0)) for _ in range(500)]) > 0.95
    assert passed_teacher(played(15.0, episodes=4), played(5.0)) is None  # too few episodes to claim either way

    def old_rule() -> bool:
        teacher = played(5.0, episodes=8)["mean"]
        return any(p["mean"] - p["ci95"] > teacher for p in (played(5.0, episodes=8) for _ in range(9)))
    assert np.mean([old_rule() for _ in range(1000)]) > 0.2


def test_a_teacher_no_better_than_random_on_the_selection_seeds_hands_off_at_the_first_point(tmp_path, monkeypatch):
    """A random-weight teacher (1.4 +/- 0.8 against random's 0.6 +/- 0.5 on the selection seeds): the
    reward alone teaches. The selection episodes' results are injected; what is checked is the order the
    baselines carry them in, the test of chance, the handoff and what the run records and says."""
    from types import SimpleNamespace

    from atari_distill.evaluation.episodes import EvalResult
    from atari_distill.evaluation import curve as student_evaluations
    from atari_distill.evaluation.curve import Balancer, SelectionBaselines, distinct

    def result(mean, ci95):
        return EvalResult(8, mean, ci95, mean, 0.0, 3.0, 100.0, 0.05, 30, [mean] * 8)

    assert not distinct(result(1.4, 0.8), result(0.6, 0.5))  # 0.8 apart, half-width 0.94
    assert distinct(result(3.0, 1.5), result(1.0, 0.6)) and distinct(result(6.9, 1.0), result(0.6, 0.5))
    from atari_distill.evaluation.protocol import RANDOM_EPSILON

    played = {False: result(1.4, 0.8), True: result(0.6, 0.5)}  # the random policy? -> what it scored
    monkeypatch.setattr(student_evaluations, "submit_evaluation", lambda *a, epsilon, **k: epsilon == RANDOM_EPSILON)
    monkeypatch.setattr(student_evaluations, "collect_evaluation", lambda pending, *_: played[pending])
    cfg = DistillConfig.from_flags(device="cpu", rl_weight=1.0, eval_every=10, updates=20).validate()
    baselines = SelectionBaselines(cfg, [SimpleNamespace(spec=SimpleNamespace(name="breakout"), teacher_ref=None,
                                                         teacher=None)])
    assert baselines() == {"breakout": (1.4, 0.6, False)}

    said, learner = [], rl_learner()
    handoff = Handoff(RLSettings(rl_weight=1.0), baselines, RunDir.create(tmp_path / "r", "{}"), echo=said.append,
                      stop=StopToken())
    record = handoff.point("net3/kl", "breakout", 100, {"score": 0.2, "ci95": 0.3}, learner.state({"game": "breakout"}),
                           learner)
    assert record["distill_weight"] == 0.0 and float(learner.distill_weight) == 0.0
    assert record["teacher_apart_from_random"] is False and record["random_selection_score"] == 0.6
    assert not record["reached_teacher"]  # the teacher's score is still what "reached" means
    assert "does not beat random's 0.6 beyond chance" in said[-1] and "weight 0.00" in said[-1]
    # a balanced multi-task schedule has no reward term: it goes by the means alone
    assert Balancer(baselines).weights({"breakout": {"score": 0.6, "seeds": "selection"}}) == \
        Balancer({"breakout": (1.4, 0.6)}).weights({"breakout": {"score": 0.6, "seeds": "selection"}})


def test_kickstarting_halves_the_weight_by_updates_and_none_keeps_it():
    kick = RLSettings(rl_weight=1.0, handoff="kickstart", handoff_half_life=100)
    assert [kick.distill_weight(updates=u) for u in (0, 100, 200)] == [1.0, 0.5, 0.25]
    assert RLSettings(rl_weight=1.0, handoff="none").distill_weight(progress=5.0) == 1.0
    assert RLSettings().distill_weight(progress=5.0) == 1.0  # without --rl-weight, distillation alone
    learner = rl_learner(handoff="kickstart", handoff_half_life=2)
    for _ in range(4):
        learner._update("pong", transitions(np.zeros((16, 6))))
    assert float(learner.distill_weight) == pytest.approx(0.5 ** 1.5)  # set before the 4th update, at 3 done


def test_a_checkpoint_carries_the_target_and_weight_and_a_resume_takes_them():
    learner = rl_learner(rl_target_every=3)
    for seed in range(3):
        learner._update("pong", transitions(np.zeros((16, 6)), seed))
    assert all(torch.equal(a, b) for a, b in zip(learner.target.state_dict().values(),
                                                   learner.student.state_dict().values()))  # copied at update 3
    learner.set_distill_weight(0.25)
    learner._update("pong", transitions(np.zeros((16, 6)), 9))
    state = copy.deepcopy(learner.state())
    cfg = DistillConfig.from_flags(device="cpu", rl_weight=1.0, eval_every=10, updates=20, rl_target_every=3).validate()
    again = Learner(dataclasses.replace(learner_config(cfg, "net3", "kl", 1), graphs=False), {"pong": 6}, {"pong": []},
                    resume=state)
    assert float(again.distill_weight) == 0.25 and again.updates == 4
    assert all(torch.equal(a, b) for a, b in zip(again.target.state_dict().values(), learner.target.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(again.target.state_dict().values(),
                                                       again.student.state_dict().values()))


@pytest.mark.parametrize("flags, words", [
    ({"rl_weight": 1.0}, "--eval-every 0 draws none before update 300; use --eval-every 75, or --handoff kickstart"),
    ({"rl_weight": 1.0, "eval_every": 300}, "--eval-every 300 draws none before update 300"),
    ({"handoff": "kickstart"}, "--handoff does nothing without --rl-weight; add --rl-weight 1 or drop it"),
    ({"rl_weight": 1.0, "eval_every": 10, "handoff_half_life": 10}, "--handoff-half-life is for --handoff kickstart"),
    ({"rl_weight": 1.0, "eval_every": 10, "loss": "nll"}, "--rl-weight needs a loss that keeps the student's outputs Q"),
    ({"rl_weight": -1.0}, "--rl-weight must be in"),
    ({"rl_weight": 1.0, "handoff": "slow", "eval_every": 10}, "--handoff must be one of qdagger, kickstart, none"),
    ({"rl_weight": 1.0, "eval_every": 10, "student": "net1,net3"}, "--rl-weight trains one student"),
])
def test_bad_rl_flags_are_refused_by_name(flags, words):
    with pytest.raises(ConfigError, match=words):
        DistillConfig.from_flags(updates=300, **flags).validate()


def test_a_run_with_a_best_checkpoint_still_names_one_student(tmp_path):
    """`evaluate RUN` and `export RUN` take its student; `--series student-best` its best curve point."""
    from atari_distill.pipelines.sources import resolve_model

    run = RunDir.create(tmp_path / "run", "{}")
    learner = rl_learner()
    state = learner.state({"game": "pong"})
    run.save_checkpoint(state, "student")
    run.save_checkpoint({**state, "updates": 5}, "student-best")
    assert resolve_model(str(tmp_path / "run")).payload["updates"] == 0
    assert resolve_model(str(tmp_path / "run"), series="student-best").payload["updates"] == 5


def test_a_resumed_handoff_keeps_only_a_best_checkpoint_its_student_reached(tmp_path):
    """Stopped with student-best at 300 past its student's checkpoint at 200: the resume trains 200-300
    again and its point at 300 was dropped, so the best so far is the one kept at 100, with its score."""
    from atari_distill.models.checkpoint import make_payload

    run = RunDir.create(tmp_path / "run", "{}")
    for updates, score in ((100, 5.0), (200, 3.0)):
        run.log({"kind": "eval", "updates": updates, "score": score, "progress": 0.1})
    for updates in (100, 300):
        run.save_checkpoint(make_payload(QNetwork("net1", {"pong": 6}), "student", updates=updates), "student-best")
    handoff = Handoff(RLSettings(rl_weight=1.0), None, run, echo=print, stop=StopToken())
    handoff.resume(None, "eval", 200)
    best = handoff.best_so_far()
    assert (best["updates"], best["score"], best["state"]["updates"]) == (100, 5.0, 100)
