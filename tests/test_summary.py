"""summary.json is written and read by one class: the kind is explicit, a damaged file is one line."""

import json

import pytest

from atari_distill.rundir.summary import Summary, SummaryError, kind_of_config


def test_every_run_config_has_a_summary_kind():
    from atari_distill.pipelines.config import RunConfig
    from atari_distill.rundir.summary import KINDS

    assert sorted(KINDS) == sorted(RunConfig.kinds())


def test_a_summary_reads_back_as_written(tmp_path):
    written = Summary("online", True, {"frames": 1200, "score": float("nan")}, wall_s=3.5)
    written.write(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "kind": "online", "complete": True, "wall_s": 3.5, "frames": 1200, "score": None, "version": 2}
    read = Summary.read(tmp_path)
    assert (read.kind, read.complete, read.wall_s, read.results) == ("online", True, 3.5, {"frames": 1200, "score": None})
    stopped = Summary("teacher", False, {"updates": 7}, 1.0, "SIGINT")
    stopped.write(tmp_path)
    assert Summary.read(tmp_path) == stopped


def test_an_older_summary_takes_its_kind_from_the_config(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"complete": True, "frames": 10}))
    older = Summary.read(tmp_path, {"frames": 10, "distill_actors": 1})
    assert (older.kind, older.version) == ("online", 1)
    assert [kind_of_config(c) for c in ({"games": "a,b"}, {"frames": 1}, {"updates": 1})] == \
        ["multitask", "teacher", "distill"]


@pytest.mark.parametrize("text", ["[]", "{\"complete\": \"yes\"}", "{\"kind\": \"dance\"}", "{not json", "\xff"])
def test_a_damaged_summary_is_refused_in_one_line(tmp_path, text):
    (tmp_path / "summary.json").write_text(text, encoding="latin-1")
    with pytest.raises(SummaryError) as error:
        Summary.read(tmp_path)
    assert "\n" not in str(error.value)


def test_no_summary_yet_is_none(tmp_path):
    assert Summary.read(tmp_path) is None


def test_record_teacher_and_online_end_with_human_lines_not_json():
    from atari_distill.ui.summaries import online_lines, record_lines, teacher_lines

    score = {"mean": 17.5, "ci95": 0.8, "episodes": 30}
    teacher = teacher_lines({"game": "pong", "frames": 4_000_000, "updates": 250_000, "wall_s": 4_000.0,
                             "best": {"checkpoint": "dqn-00250000.pt", "version": 40, "frames": 3_900_000, "score": 18.0},
                             "best_report_score": score}, "runs/pong")
    online = online_lines({"game": "pong", "frames": 200_000, "updates": 12_500, "student_updates": 11_750,
                           "wall_s": 95.0, "timeline": [], "student_score": score, "teacher_score": score,
                           "student_pct_of_teacher": 100.0, "pct_low95": 90.0}, "runs/online")
    record = record_lines({"game": "pong", "steps": 40_960, "chunks": 160, "teacher": {
        "source": "zoo:pong", "fingerprint": "abc123"}}, "data/pong")
    assert teacher[0] == "pong: DQN trained on 4,000,000 frames, 250,000 updates, in 1 h 06 min"
    random = {"mean": -20.4, "ci95": 0.3, "episodes": 30}
    beside = teacher_lines({"game": "pong", "frames": 10_000, "updates": 500, "best": {}, "best_report_score": score,
                            "random_score": random, "beats_random": False}, "runs/pong")
    assert beside[-2] == ("random policy on the same seeds: -20.40 +/- 0.30 (30 episodes); the best checkpoint does "
                          "not beat it beyond chance: no policy learnt yet to distill"), beside
    few = teacher_lines({"game": "pong", "frames": 10_000, "updates": 500, "best": {}, "best_report_score": score,
                         "random_score": {**random, "ci95": None, "episodes": 1}, "beats_random": None}, "runs/pong")
    assert few[-2].endswith("; whether the best checkpoint beats it needs at least 10 episodes (--eval-episodes)")
    assert online[0] == "pong: DQN trained on 200,000 frames (12,500 updates), its student 11,750 updates, in 1 min 35 s"
    assert record == ["pong: 40,960 labelled steps in 160 chunks from teacher zoo:pong (fingerprint abc123)",
                      "[record] wrote data/pong"]
    for lines, kind in ((teacher, "teacher"), (online, "online"), (record, "record")):
        assert not any(line.lstrip().startswith("{") for line in lines) and lines[-1].startswith(f"[{kind}] wrote ")


def test_every_run_kind_has_its_results_per_game_and_old_runs_read_the_same(tmp_path):
    """A one-game run writes per_game as a ten-game run does (its top-level keys stay, as a view); a
    summary written before that shape reads back with the same per_game."""
    flat = {"game": "pong", "teacher_score": {"mean": 17.0}, "random_score": {"mean": -20.7}, "action_agreement": 0.8,
            "student_score": {"mean": 15.0}, "normalised_pct": 94.7, "updates": 500, "placement": {"nodes": {}},
            "students": [{"student": "net3", "loss": "kl", "student_score": {"mean": 15.0}, "normalised_pct": 94.7,
                          "updates": 500}]}
    Summary("distill", True, flat, 9.0).write(tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["per_game"]["pong"]["teacher_score"] == {"mean": 17.0} and written["teacher_score"] == {"mean": 17.0}
    assert "placement" not in written["per_game"]["pong"] and "updates" not in written["per_game"]["pong"]
    assert written["students"][0]["per_game"] == {"pong": {"student_score": {"mean": 15.0}, "normalised_pct": 94.7}}
    (tmp_path / "summary.json").write_text(json.dumps({"kind": "distill", "complete": True, "wall_s": 9.0, **flat}))
    assert Summary.read(tmp_path).as_dict() == {**written, "version": 1}  # the same view; its version says older
    Summary("teacher", True, {"game": "pong", "best_report_score": {"mean": 19.0}}).write(tmp_path)
    assert Summary.read(tmp_path).as_dict()["per_game"] == {"pong": {"best_report_score": {"mean": 19.0}}}
    ten = {"games": ["pong", "breakout"], "per_game": {"pong": {"teacher_score": {"mean": 17.0}}, "breakout": {}}}
    Summary("multitask", True, ten).write(tmp_path)
    assert Summary.read(tmp_path).as_dict()["per_game"] == ten["per_game"]


@pytest.mark.parametrize("name, kind, students", [("demo", "distill", 1), ("sweep", "distill", 3),
                                                  ("mt2", "multitask", 1), ("teacher", "teacher", 0),
                                                  ("online", "online", 1), ("from-dataset", "distill", 1)])
def test_every_kind_of_older_summary_reads_as_a_typed_result(name, kind, students):
    from atari_distill.rundir.result import RunResult
    from tests.conftest import ROOT

    folder = ROOT / "tests" / "data" / "report_runs" / name
    summary = json.loads((folder / "summary.json").read_text())
    result = RunResult.load(folder)
    assert (result.kind, result.version, result.complete, len(result.students)) == (kind, 1, True, students)
    games = summary.get("games") or [summary["game"]]
    assert result.games == games
    for game in games:
        played, shared = result.per_game[game], summary.get("per_game", {}).get(game, summary)
        assert played.random.mean == shared["random_score"]["mean"]
        assert played.student.seeds == summary["protocol"]["seeds"]["report"]
        first = (summary.get("students") or [summary])[0]
        row = first.get("per_game", {}).get(game) or first
        assert played.student.mean == (row.get("student_score") or summary["best_report_score"])["mean"]
