"""The DQN learner's update, the epsilon schedule, and a tiny `launch.py teacher` run end to end."""

import json
import re

import numpy as np
import pytest
import torch

from atari_distill.learner.td import dqn_loss, td_targets
from atari_distill.models.checkpoint import load_checkpoint
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.config import ConfigError, DistillConfig, OnlineConfig, TeacherConfig
from tests.conftest import frees_every_actor


def tiny_batch(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "obs": torch.from_numpy(rng.integers(0, 255, (3, 4, 84, 84), dtype=np.uint8)),
        "next_obs": torch.from_numpy(rng.integers(0, 255, (3, 4, 84, 84), dtype=np.uint8)),
        "actions": torch.tensor([0, 2, 1], dtype=torch.uint8),
        "returns": torch.tensor([1.0, -0.5, 0.0]),
        "discount": torch.tensor([0.99**3, 0.0, 0.99]),  # 3-step, terminal, truncated after one step
    }


@pytest.mark.parametrize("double", [True, False])
def test_td_target_and_loss_equal_a_hand_computation(double):
    torch.manual_seed(0)
    online, target = QNetwork("net3", {"g": 3}), QNetwork("net3", {"g": 3})
    with torch.no_grad():  # make the two networks disagree about the best next action
        for p in target.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = tiny_batch()
    q_online_next = online(batch["next_obs"]).tolist()
    q_target_next = target(batch["next_obs"]).tolist()
    q_now = online(batch["obs"]).tolist()
    expected_targets, expected_loss = [], 0.0
    for i in range(3):
        if double:
            best = max(range(3), key=lambda a: q_online_next[i][a])
            bootstrap = q_target_next[i][best]
        else:
            bootstrap = max(q_target_next[i])
        y = float(batch["returns"][i]) + float(batch["discount"][i]) * bootstrap
        expected_targets.append(y)
        error = abs(q_now[i][int(batch["actions"][i])] - y)
        expected_loss += (0.5 * error**2 if error < 1 else error - 0.5) / 3
    assert td_targets(online, target, batch, double).tolist() == pytest.approx(expected_targets, rel=1e-5, abs=1e-5)
    loss, _ = dqn_loss(online, target, batch, double)
    assert float(loss.detach()) == pytest.approx(expected_loss, rel=1e-5, abs=1e-5)
    if double:
        picks_differ = [max(range(3), key=lambda a: q_online_next[i][a]) != int(np.argmax(q_target_next[i]))
                        for i in range(3)]
        assert any(picks_differ), "the check must cover a case where double DQN picks another action"


def test_epsilon_falls_linearly_then_stays():
    cfg = TeacherConfig.from_flags(epsilon_start=1.0, epsilon_end=0.1, epsilon_frames=1000)
    assert [cfg.dqn.epsilon_at(f) for f in (0, 500, 1000, 5000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


@pytest.mark.parametrize("change, words", [
    ({"replay_ratio": 0}, "--replay-ratio"), ({"n_step": 0}, "--n-step"), ({"gamma": 1.5}, "--gamma"),
    ({"teacher": "x.pt"}, r"has no flag\(s\) \['teacher'\]"), ({"epsilon_end": 2}, "--epsilon-end"), ({"preset": "huge"}, "--preset"),
    ({"frames": 20_000}, "ends before the first DQN update: the whole chunks it allows hold 4,864 steps, fewer than "
                         "--min-replay 20,000; use --frames 80896 --eval-every 20224, or --min-replay 4864 "
                         "--eval-every 5000"),
    ({"frames": 200_000, "eval_every": 200_000}, "no checkpoint would be scored"),
])
def test_bad_teacher_flags_are_refused_by_name(change, words):
    with pytest.raises(ConfigError, match=words):
        TeacherConfig.from_flags(**change).validate()


@pytest.mark.parametrize("config, flags", [
    (TeacherConfig, {"frames": 30_000}), (OnlineConfig, {"frames": 50_000}), (TeacherConfig, {"frames": 80_896}),
    (TeacherConfig, {"frames": 30_000, "eval_every": 1_000}), (DistillConfig, {"updates": 100, "eval_every": 500}),
])
def test_every_command_a_budget_refusal_suggests_starts(config, flags):
    """A refusal names all the flags that together make a valid run, not one that leads to the next refusal."""
    with pytest.raises(ConfigError) as refused:
        config.from_flags(**flags).validate()
    suggestions = str(refused.value).split("; ", 1)[1].removeprefix("use ").split(", or ")
    for suggestion in suggestions:
        pairs = re.findall(r"--([a-z-]+) (\d+)", suggestion)
        assert pairs, str(refused.value)
        config.from_flags(**{**flags, **{k.replace("-", "_"): int(v) for k, v in pairs}}).validate()


TINY = ["--frames", "6000", "--min-replay", "500", "--eval-every", "2500", "--eval-episodes", "1", "--select-episodes", "1",
        "--log-every", "10", "--checkpoint-every", "50", "--replay-ratio", "2", "--capacity-hours", "0.05",
        "--chunk-steps", "32", "--target-every", "40"]


def test_tiny_teacher_run_writes_a_complete_run_directory(ray_runtime, tmp_path):
    from atari_distill.cli import build_parser
    from atari_distill.pipelines.config import from_args
    from atari_distill.pipelines.teacher import run_teacher

    args = build_parser().parse_args(["teacher", *TINY, "--out", str(tmp_path / "run")])
    cfg = from_args(TeacherConfig, args).validate()
    with frees_every_actor():
        summary = run_teacher(cfg, echo=lambda *a: None)
    run = tmp_path / "run"
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["complete"] is True and on_disk["kind"] == "teacher"
    # the best checkpoint beside the random policy, on the same report seeds: did the DQN learn anything?
    best_report, random_report = summary["best_report_score"], summary["random_score"]
    assert random_report["episodes"] == best_report["episodes"] == 1 and random_report["epsilon"] == 1.0
    assert summary["beats_random"] is None  # one episode each: no interval, so no claim either way
    chunk_frames = 4 * cfg.acting.chunk_size  # --frames is an upper bound, met to within one chunk
    assert 6000 - chunk_frames < summary["frames"] <= 6000 and summary["updates"] > 0
    history = summary["evaluations"]
    assert len(history) >= 2 and all(entry["score"] is not None for entry in history)
    assert [e["version"] for e in history] == list(range(1, len(history) + 1))
    best = summary["best"]
    assert best["score"] == max(e["score"] for e in history)
    assert best["version"] == min(e["version"] for e in history if e["score"] == best["score"])
    teacher = load_checkpoint(best["checkpoint"])
    assert teacher["role"] == "teacher" and teacher["heads"] == {"pong": 6}
    state = load_checkpoint(sorted((run / "checkpoints").glob("dqn-*.pt"))[-1])
    assert state["updates"] == summary["updates"]
    steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {float(summary["updates"])}, "Adam's step count must equal the update count"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epsilons = [m["epsilon"] for m in metrics]
    assert epsilons == sorted(epsilons, reverse=True) and epsilons[0] < 1.0
    assert json.loads((run / "registry.json").read_text())["best"] == best["version"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "dqn_eval"))
    events.Reload()
    scored = sorted(events.Scalars("dqn_eval/score"), key=lambda e: e.value)
    assert sorted(e["score"] for e in history) == [e.value for e in scored]
    assert {e.step for e in scored} <= set(range(summary["updates"] + 1))
    assert max(e.value for e in events.Scalars("dqn_eval/best_score")) == best["score"]

    # a run that died (not stopped) resumes from a checkpoint older than its newest snapshots: the
    # registry keeps them and new snapshots take the versions after them
    from atari_distill import cli as launch
    from atari_distill.models.checkpoint import save_checkpoint

    newest = sorted((run / "checkpoints").glob("dqn-*.pt"))[-1]
    state = load_checkpoint(newest)
    state["extra"]["versions"] = 1
    save_checkpoint(newest, state)
    assert launch.main(["teacher", "--resume", str(run), "--frames", "9000", "--override", "frames"]) == 0
    versions = [e["version"] for e in json.loads((run / "registry.json").read_text())["history"]]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) > len(history)


@pytest.mark.parametrize("mode, fire", [("auto", False), ("native", False), ("sb3", True)])
def test_a_teacher_trains_and_records_the_env_mode_it_was_given(tmp_path, mode, fire):
    from atari_distill.rundir.directory import RunDir
    from atari_distill.pipelines.teacher import DQNTraining

    cfg = TeacherConfig.from_flags(game="breakout", env_mode=mode, out=str(tmp_path / "run")).validate()
    training = DQNTraining(cfg, RunDir.create(cfg.run.out, cfg.to_json()), None)
    assert training.env_config.fire_reset is fire and training.env_mode == ("native" if mode == "auto" else mode)
