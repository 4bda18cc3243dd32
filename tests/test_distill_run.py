"""The whole slice on a real local Ray runtime and real ALE Pong."""

import json

import numpy as np
import torch

from atari_distill.actors.rollout import TeacherRollout
from atari_distill.models.checkpoint import load_checkpoint
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.config import DistillConfig
from atari_distill.pipelines.distill import run_distill
from atari_distill.rundir.directory import RunDir
from tests.conftest import frees_every_actor

SUMMARY_KEYS = {"game", "loss", "tau", "student", "student_params", "teacher_params", "updates", "steps_labelled",
                "teacher_score", "student_score", "student_pct_of_teacher", "action_agreement",
                "majority_baseline", "wall_s"}


def test_distill_writes_a_complete_run_directory(ray_runtime, tmp_path):
    cfg = DistillConfig.from_flags(game="ALE/Pong-v5", student="net3", updates=40, log_every=20, checkpoint_every=20,
                        min_replay=300, chunk_steps=32, eval_episodes=2, select_episodes=1, holdout_steps=300, actors=2, replay_shards=2,
                        out=str(tmp_path / "run")).validate()
    with frees_every_actor():
        summary = run_distill(cfg, echo=lambda *_: None)
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["acting"]["game"] == "pong"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["updates"] for m in metrics] == [20, 40]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["student-00000020.pt", "student-00000040.pt"]
    on_disk = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(on_disk)
    assert on_disk["updates"] == 40 and summary["student_params"] == 61_174 and on_disk["kind"] == "distill"
    assert on_disk["steps_labelled"] >= 300
    replay = on_disk["replay"]
    assert len(replay["shard_sizes"]) == 2 and min(replay["shard_sizes"]) > 0  # actor i feeds shard i mod 2
    assert [s["steps"] for s in replay["memory_plan"]["shards"]] == [270_000, 270_000]
    assert replay["sampled_steps"] >= 40 * 32
    assert on_disk["teacher_score"]["episodes"] == on_disk["student_score"]["episodes"] == 2
    final = load_checkpoint(run / "checkpoints" / "student-00000040.pt")
    assert final["updates"] == 40 and final["optimizer"] is not None
    assert final["extra"]["env_modes"] == {"pong": "native"}  # what evaluate and export play the student in


def test_distilled_student_agrees_with_the_random_teacher_far_above_baselines(tmp_path, pong_teacher):
    cfg = DistillConfig.from_flags(student="net1", updates=1500, batch_size=32, log_every=500, checkpoint_every=1500,
                                   min_replay=2000, eval_episodes=1, select_episodes=1, holdout_steps=2000,
                                   runner="local", out=str(tmp_path / "run")).validate()
    summary = run_distill(cfg, echo=print)
    obs, q = TeacherRollout("pong", pong_teacher, 8, seed=4242).labelled_stacks(2000)
    torch.manual_seed(0)
    untrained = QNetwork("net1", {"pong": 6})
    with torch.inference_mode():
        untrained_agreement = float((untrained(torch.from_numpy(obs)).argmax(1).numpy() == q.argmax(1)).mean())
    print(f"agreement {summary['action_agreement']:.3f}, majority {summary['majority_baseline']:.3f}, "
          f"untrained {untrained_agreement:.3f}")
    assert summary["action_agreement"] >= summary["majority_baseline"] + LEARNING_MARGIN
    assert summary["action_agreement"] >= untrained_agreement + LEARNING_MARGIN
    assert np.isfinite(summary["student_score"]["mean"])


LEARNING_MARGIN = 0.10


def test_log_checkpoint_and_evaluation_points_land_on_their_multiples():
    from atari_distill.pipelines.distill import interval

    cfg = DistillConfig.from_flags(updates=130, log_every=50, checkpoint_every=100, eval_every=60)
    done, stops = 0, []
    while done < cfg.updates:
        done += interval(cfg, done)
        stops.append(done)
    assert stops == [50, 60, 100, 120, 130]


def test_with_the_student_driving_and_learning_from_the_reward_the_run_says_so(tmp_path):
    """--behaviour student: after the first push the actors act with the student's weights, and the
    replay counts the steps it chose (the labels stay the teacher's: tests/test_behaviour.py). With
    --rl-weight, each curve point hands the distillation weight off and keeps the best checkpoint, which
    the summary plays on the report seeds (the losses themselves: tests/test_rl_student.py)."""
    cfg = DistillConfig.from_flags(game="pong", student="net3", updates=60, log_every=20, checkpoint_every=60,
                                   min_replay=256, chunk_steps=32, eval_episodes=1, select_episodes=1, holdout_steps=100,
                                   replay_ratio=0, behaviour="student", behaviour_every=5, eval_workers=1,
                                   rl_weight=1.0, eval_every=30, runner="local", out=str(tmp_path / "run")).validate()
    summary = run_distill(cfg, echo=lambda *_: None)
    assert summary["behaviour"] == "student"
    assert 0 < summary["replay"]["student_acted_steps"] < summary["replay"]["labelled_steps"]  # the teacher filled min_replay
    points = [m for m in RunDir.open(tmp_path / "run").metrics() if m.get("kind") == "eval"]
    assert [p["updates"] for p in points] == [30] and 0.0 <= points[0]["distill_weight"] <= 1.0
    rl = summary["students"][0]["rl"]
    assert rl["distill_weight"] == points[0]["distill_weight"] and rl["best"]["updates"] == 30
    assert rl["best"]["student_score"]["episodes"] == 1
    assert rl["passed_teacher"] is None and rl["best"]["passed_teacher"] is None  # one report episode claims nothing
    assert points[0]["teacher_selection_score"] is not None  # what the point is measured against, on its seeds
    assert (tmp_path / "run" / "checkpoints" / "student-best-00000030.pt").is_file()
    assert "target_model" in load_checkpoint(tmp_path / "run" / "checkpoints" / "student-00000060.pt")["extra"]
    from atari_distill.ui.summaries import distill_lines

    lines = distill_lines(summary, tmp_path / "run")
    assert any(line.startswith("--behaviour student: the student chose the actions of ") for line in lines)
    assert any(line.startswith("--rl-weight 1 (--handoff qdagger): distillation weight ") for line in lines)
    from atari_distill.ui.report import write_report

    write_report([str(tmp_path / "run")], str(tmp_path / "report"))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "(distill, --behaviour student: the student chose " in report and "  - net3/kl: --rl-weight 1" in report
