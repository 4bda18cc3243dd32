"""The run directory's own guards: an existing run is never overwritten, a torn metrics line is
skipped, and a resume drops the intervals logged after its checkpoint."""

import json

import pytest

from cluster.rundir import RunDir, RunDirError


def test_an_existing_run_is_never_overwritten(tmp_path):
    run = RunDir.create(tmp_path / "run", '{"updates": 300}')
    run.log({"updates": 50, "loss": 1.0})
    with pytest.raises(RunDirError, match="already holds files; choose a new --out or --resume that run"):
        RunDir.create(tmp_path / "run", '{"updates": 999}')
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"updates": 300}
    assert run.metrics() == [{"updates": 50, "loss": 1.0}]


def test_a_torn_last_metrics_line_is_skipped(tmp_path):
    run = RunDir.create(tmp_path / "run", "{}")
    run.log({"updates": 50, "loss": 1.0})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write('{"updates": 100, "lo')  # the process died mid-line
    assert run.metrics() == [{"updates": 50, "loss": 1.0}]


def test_resume_trims_only_its_own_kind_past_the_checkpoint(tmp_path):
    run = RunDir.create(tmp_path / "run", "{}")
    for updates in (50, 100, 150):
        run.log({"kind": "dqn", "updates": updates})
        run.log({"kind": "student", "updates": updates})
    assert run.trim_metrics("dqn", 100, purge=True) == 1
    assert [(m["kind"], m["updates"]) for m in run.metrics()] == [
        ("dqn", 50), ("student", 50), ("dqn", 100), ("student", 100), ("student", 150)]
    assert run.purge_step == 101
    assert run.trim_metrics("dqn", 100) == 0
