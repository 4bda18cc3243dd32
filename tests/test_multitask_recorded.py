"""A multi-task student from recordings: one dataset per game, the same checks as `distill
--dataset`, and no teacher actor running."""

import json
import shutil

import pytest

import launch
from pipelines.config import MultitaskConfig, RecordConfig
from pipelines.distill import run_distill
from pipelines.record import run_record
from replay.dataset import RECORD_HEADER, Dataset

GAMES = ("freeway", "enduro")  # both zoo teachers far above a random policy that scores 0


@pytest.fixture(scope="module")
def recordings(ray_runtime, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    for game in GAMES:
        run_record(RecordConfig.from_flags(game=game, teacher=f"zoo:{game}", steps=3072, file_mb=1,
                                           out=str(folder / game)).validate(), echo=lambda *_: None)
    return folder


def refusal(args, capsys) -> str:
    code = launch.main(args)
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip() and "Stella" not in line and "A.L.E" not in line]
    assert code == 2 and len(lines) == 1, stderr
    return lines[0]


def test_a_multitask_run_refuses_a_missing_game_another_teacher_and_damage_in_one_line(recordings, tmp_path,
                                                                                          capsys):
    from models.checkpoint import make_payload, save_checkpoint
    from models.networks import QNetwork

    out = ["--out", str(tmp_path / "run"), "--min-replay", "500"]
    assert "no recording of pong" in refusal(["multitask", "--datasets", str(recordings), "--games", "freeway,pong",
                                              *out], capsys)
    listed = f"{recordings / 'freeway'},{recordings / 'enduro'}"
    assert "no recording of breakout" in refusal(["multitask", "--datasets", listed, "--games", "freeway,breakout",
                                                  *out], capsys)
    other = tmp_path / "enduro.pt"
    save_checkpoint(other, make_payload(QNetwork("net1", {"enduro": 9}), "teacher"))
    line = refusal(["multitask", "--datasets", listed, "--teachers", f"zoo:freeway,{other}", *out], capsys)
    assert "is not the teacher that recorded" in line and "enduro" in line
    damaged = tmp_path / "damaged"
    shutil.copytree(recordings, damaged)
    record = Dataset.open(damaged / "enduro").records[3]
    path = damaged / "enduro" / record.file
    data = bytearray(path.read_bytes())
    data[record.offset + RECORD_HEADER.size + 50] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "pass --skip-damaged" in refusal(["multitask", "--datasets", str(damaged), *out], capsys)
    assert not (tmp_path / "run").exists()


def test_multitask_from_two_recordings_trains_both_heads_and_beats_random_play(recordings, tmp_path):
    cfg = MultitaskConfig.from_flags(datasets=str(recordings), student="net3", updates=1200, log_every=600,
                                     checkpoint_every=1200, min_replay=1000, eval_episodes=2, select_episodes=1,
                                     holdout_steps=500, out=str(tmp_path / "run")).validate()
    assert cfg.game_list() == ["enduro", "freeway"] and cfg.teachers == "zoo:enduro,zoo:freeway"
    summary = run_distill(cfg, echo=print)
    assert summary["samples_per_game"] == {g: 600 * 32 for g in cfg.game_list()}
    for game, result in summary["per_game"].items():
        student, random = result["student_score"]["mean"], result["random_score"]["mean"]
        print(f"{game}: student {student:.1f}, random {random:.1f}, teacher {result['teacher_score']['mean']:.1f}")
        assert result["dataset"]["steps"] == 3072 and result["steps_labelled"] == 3072
        assert student >= random + MARGIN[game], game
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["datasets"] == f"{recordings / 'enduro'},{recordings / 'freeway'}"  # resolved, in --games order


MARGIN = {"freeway": 5.0, "enduro": 5.0}
