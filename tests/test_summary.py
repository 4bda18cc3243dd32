"""summary.json is written and read by one class: the kind is explicit, a damaged file is one line."""

import json

import pytest

from pipelines.summary import Summary, SummaryError, kind_of_config


def test_a_summary_reads_back_as_written(tmp_path):
    written = Summary("online", True, {"frames": 1200, "score": float("nan")}, wall_s=3.5)
    written.write(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "kind": "online", "complete": True, "wall_s": 3.5, "frames": 1200, "score": None}
    read = Summary.read(tmp_path)
    assert (read.kind, read.complete, read.wall_s, read.results) == ("online", True, 3.5, {"frames": 1200, "score": None})
    stopped = Summary("teacher", False, {"updates": 7}, 1.0, "SIGINT")
    stopped.write(tmp_path)
    assert Summary.read(tmp_path) == stopped


def test_an_older_summary_takes_its_kind_from_the_config(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"complete": True, "frames": 10}))
    assert Summary.read(tmp_path, {"frames": 10, "distill_actors": 1}).kind == "online"
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
