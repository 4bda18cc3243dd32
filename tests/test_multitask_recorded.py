"""A multi-task student from recordings: one dataset per game, the same checks as `distill
--dataset`, and no teacher actor running."""

import json
import shutil

import pytest

from atari_distill import cli as launch
from atari_distill.pipelines.config import ConfigError, MultitaskConfig, RecordConfig
from atari_distill.pipelines.distill import run_distill
from atari_distill.pipelines.record import run_record
from atari_distill.replay.dataset import RECORD_HEADER, Dataset

pytestmark = pytest.mark.xdist_group("test_multitask_recorded")  # its module-scoped fixture is built once

GAMES = ("freeway", "ms_pacman")  # zoo teachers far above random play, in episodes of 700-2,000 steps


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    for game in GAMES:
        run_record(RecordConfig.from_flags(game=game, teacher=f"zoo:{game}", steps=3072, file_mb=1,
                                           out=str(folder / game), runner="local").validate(), echo=lambda *_: None)
    return folder


def refusal(args, capsys) -> str:
    code = launch.main(args)
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip() and "Stella" not in line and "A.L.E" not in line]
    assert code == 2 and len(lines) == 1, stderr
    return lines[0]


def test_a_multitask_run_refuses_a_missing_game_another_teacher_and_damage_in_one_line(recordings, tmp_path,
                                                                                          capsys):
    from atari_distill.models.checkpoint import make_payload, save_checkpoint
    from atari_distill.models.networks import QNetwork

    out = ["--out", str(tmp_path / "run"), "--min-replay", "500"]
    assert "no recording of pong" in refusal(["multitask", "--datasets", str(recordings), "--games", "freeway,pong",
                                              *out], capsys)
    listed = f"{recordings / 'freeway'},{recordings / 'ms_pacman'}"
    line = refusal(["multitask", "--datasets", listed, "--games", "freeway,breakout", *out], capsys)
    assert "no recording of breakout" in line and f"--teacher zoo:breakout --out {recordings / 'breakout'})" in line
    line = refusal(["multitask", "--datasets", listed, "--games", "freeway,alien", *out], capsys)
    assert "--teacher ALIEN_TEACHER.pt" in line  # alien has no zoo teacher to suggest
    other = tmp_path / "ms_pacman.pt"
    save_checkpoint(other, make_payload(QNetwork("net1", {"ms_pacman": 9}), "teacher"))
    line = refusal(["multitask", "--datasets", listed, "--teachers", f"zoo:freeway,{other}", *out], capsys)
    assert "is not the teacher that recorded" in line and "ms_pacman" in line
    damaged = tmp_path / "damaged"
    shutil.copytree(recordings, damaged)
    record = Dataset.open(damaged / "ms_pacman").records[3]
    path = damaged / "ms_pacman" / record.file
    data = bytearray(path.read_bytes())
    data[record.offset + RECORD_HEADER.size + 50] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "pass --skip-damaged" in refusal(["multitask", "--datasets", str(damaged), *out], capsys)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def trained(recordings, tmp_path_factory):
    run = tmp_path_factory.mktemp("multitask") / "run"
    cfg = MultitaskConfig.from_flags(datasets=str(recordings), student="net3", updates=1200, log_every=600,
                                     checkpoint_every=1200, eval_every=600, schedule="fixed", min_replay=1000,
                                     eval_episodes=2,
                                     select_episodes=1, holdout_steps=500, runner="local", out=str(run)).validate()
    return cfg, run_distill(cfg, echo=print), run


def test_multitask_from_two_recordings_trains_both_heads_and_beats_random_play(recordings, trained):
    cfg, summary, run = trained
    assert cfg.game_list() == ["freeway", "ms_pacman"] and cfg.teachers == "zoo:freeway,zoo:ms_pacman"
    assert summary["samples_per_game"] == {g: 600 * 32 for g in cfg.game_list()}
    for game, result in summary["per_game"].items():
        student, random = result["student_score"]["mean"], result["random_score"]["mean"]
        print(f"{game}: student {student:.1f}, random {random:.1f}, teacher {result['teacher_score']['mean']:.1f}")
        assert result["dataset"]["steps"] == 3072 and result["steps_labelled"] == 3072
        assert student >= random + MARGIN[game], game
    # the replay holds the recordings, not the 2 x 270,000 steps the default --capacity-hours asks for
    assert [s["steps"] for s in summary["replay"]["memory_plan"]["shards"]] == [3072, 3072]
    config = json.loads((run / "config.json").read_text())
    assert config["datasets"] == f"{recordings / 'freeway'},{recordings / 'ms_pacman'}"  # resolved, in order


MARGIN = {"freeway": 5.0, "ms_pacman": 100.0}  # +20 and +730 over 2 episodes (2026-12-02); +150 on Ms. Pac-Man since its batches are keyed (2026-12-05), the same every run


def test_the_report_draws_a_curve_per_game_between_teacher_and_random(trained, tmp_path):
    from atari_distill.ui.report import write_report
    from atari_distill.ui.summaries import distill_lines

    _, summary, run = trained
    result = write_report([str(run)], str(tmp_path / "report"))
    panels = result["artists"]["curves_per_game"]
    assert [p["ylabel"] for p in panels] == ["score", "score"] and result["plots"]["curves_per_game"] == 4
    for panel in panels:  # the curve (one point on selection seeds, the final on report seeds) and its frame
        assert {s["label"] for s in panel["series"]} >= {run.name, "teacher", "random policy"}
    assert "per_game" in result["plots"]
    lines = distill_lines(summary, run)
    assert any("geometric mean over 2 games withheld (2 episodes" in line for line in lines), lines


def test_games_picked_from_a_folder_leave_its_other_recordings_unread(recordings, tmp_path):
    """A folder of recordings may hold games a run does not name: a broken one of those does not stop it."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for game in GAMES:
        (folder / game).symlink_to(recordings / game)
    (folder / "pong").mkdir()
    (folder / "pong" / "index.json").write_text("{not json")
    cfg = MultitaskConfig.from_flags(datasets=str(folder), games=",".join(GAMES), min_replay=500).validate()
    assert cfg.game_list() == list(GAMES)
    with pytest.raises(ConfigError, match="pong"):  # named, it is read and refused
        MultitaskConfig.from_flags(datasets=str(folder), min_replay=500).validate()
