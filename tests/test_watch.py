"""`watch`: a student and its teacher on the same episode start, as a video a person can open, and its
still in the report."""

import json

import imageio.v3 as iio

from atari_distill import cli as launch
from atari_distill.actors.games import game_spec
from atari_distill.actors.teachers import load_teacher
from atari_distill.models.checkpoint import fingerprint, make_payload
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.config import DistillConfig
from atari_distill.rundir.directory import RunDir
from atari_distill.ui.report import write_report


def test_watching_a_run_shows_its_student_beside_its_teacher_and_the_report_shows_the_still(tmp_path, capsys):
    folder = tmp_path / "run"
    cfg = DistillConfig.from_flags(teacher="zoo:breakout", student="net3", out=str(folder)).validate()
    run = RunDir.create(folder, cfg.to_json())
    student = QNetwork("net3", {"breakout": 4})
    run.save_checkpoint(make_payload(student, "student", updates=10, extra={"env_modes": {"breakout": "cleanrl"}}))
    teacher = load_teacher("zoo:breakout", game_spec("breakout"))
    (folder / "summary.json").write_text(json.dumps({"kind": "distill", "complete": True, "game": "breakout",
                                                     "teacher": "zoo:breakout", "teacher_fingerprint": fingerprint(teacher)}))
    run.close()
    assert launch.main(["watch", "--student", str(folder), "--max-steps", "40"]) == 0
    printed = capsys.readouterr().out
    assert "net3 student beside teacher zoo:breakout" in printed and "over 40 steps" in printed
    frames = iio.imread(folder / "watch.mp4", index=None)
    assert frames.shape[0] == 41 and frames.shape[1:3] == (288, 528)  # the first frame and one per step
    left, right = frames[20, 40:, 10:250], frames[20, 40:, 280:520]
    assert left.std() > 10 and right.std() > 10  # both panels show the game, not a blank
    assert (folder / "watch.png").is_file()
    write_report([str(folder)], str(tmp_path / "report"))
    text = (tmp_path / "report" / "report.md").read_text()
    assert "![run: student beside teacher](watch-1-run.png)" in text and (tmp_path / "report" / "watch-1-run.png").is_file()


def test_watch_refuses_a_video_name_it_cannot_write_in_one_line(tmp_path, capsys):
    assert launch.main(["watch", "--student", "zoo:breakout", "--teacher", "random", "--out",
                        str(tmp_path / "w.avi")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {str(tmp_path / 'w.avi')!r} must end in .mp4 or .gif"
