"""`watch`: a student and a teacher on the same episode start, as a video a person can open, and its
still in the report."""

import json

import imageio.v3 as iio

import launch
from pipelines.rundir import RunDir
from ui.report import write_report


def test_watch_writes_a_side_by_side_video_and_the_report_shows_its_still(tmp_path, capsys):
    run = RunDir.create(tmp_path / "run", json.dumps({"acting": {"game": "breakout", "teacher": "random"}}))
    run.close()
    video = tmp_path / "run" / "watch.mp4"
    assert launch.main(["watch", "--student", "zoo:breakout", "--teacher", "random", "--game", "breakout",
                        "--out", str(video), "--max-steps", "40"]) == 0
    printed = capsys.readouterr().out
    assert "breakout: student (net1) " in printed and "teacher (nature) " in printed and "over 40 steps" in printed
    frames = iio.imread(video, index=None)
    assert frames.shape[0] == 40 and frames.shape[1:3] == (288, 528)  # two 256-pixel panels under a header
    left, right = frames[20, 40:, 10:250], frames[20, 40:, 280:520]
    assert left.std() > 10 and right.std() > 10  # both panels show the game, not a blank
    assert (tmp_path / "run" / "watch.png").is_file()  # the still beside the video
    report = write_report([str(tmp_path / "run")], str(tmp_path / "report"))
    text = (tmp_path / "report" / "report.md").read_text()
    assert "![run: student beside teacher](watch-run.png)" in text and (tmp_path / "report" / "watch-run.png").is_file()
    assert report["report"].endswith("report.md")


def test_watch_refuses_a_video_name_it_cannot_write_in_one_line(tmp_path, capsys):
    assert launch.main(["watch", "--student", "zoo:breakout", "--teacher", "random", "--out",
                        str(tmp_path / "w.avi")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {str(tmp_path / 'w.avi')!r} must end in .mp4 or .gif"
