"""The run configs as a tree of sections: flags generated from it, one name per flag, config.json
in its shape and read back (older flat files too), and the learners handed the sections themselves."""

import argparse
import dataclasses
import json

import pytest

from atari_distill.pipelines.config import (ConfigError, DistillConfig, MultitaskConfig, OnlineConfig, RecordConfig, RunConfig,
                              TeacherConfig, resume_changes)
from atari_distill.pipelines.config_tree import TreeConfig, section, setting, walk
from atari_distill.pipelines.sections import ReplaySettings, StudentSettings

KINDS = (DistillConfig, MultitaskConfig, TeacherConfig, OnlineConfig, RecordConfig)


def test_each_flag_names_one_place_in_the_tree():
    for kind in KINDS:
        flags = walk(kind)
        assert len({f.name for f in flags}) == len(flags)
        assert len({f.path for f in flags}) == len(flags)
        for f in flags:  # the path reaches a field of the default config
            value = kind()
            for part in f.path:
                value = getattr(value, part)
            assert value == f.default, (kind.__name__, f.name)


def test_online_names_the_student_and_its_replay_apart_from_the_dqn():
    paths = {f.name: f.path for f in walk(OnlineConfig)}
    assert paths["lr"] == ("dqn", "lr") and paths["student_lr"] == ("student", "lr")
    assert paths["batch_size"] == ("dqn", "batch_size") and paths["student_batch_size"] == ("student", "batch_size")
    assert paths["min_replay"] == ("replay", "min_replay")
    assert paths["distill_min_replay"] == ("distill_replay", "min_replay")
    assert "teacher" not in paths and "epsilon" not in paths and "eval_workers" not in paths
    with pytest.raises(ConfigError, match="^--student-lr must be positive, got -1"):
        OnlineConfig.from_flags(student_lr=-1.0).validate()
    with pytest.raises(ConfigError, match="^--distill-min-replay must be in"):
        OnlineConfig.from_flags(distill_min_replay=0).validate()
    with pytest.raises(ConfigError, match="^--lr must be positive, got -1"):
        DistillConfig.from_flags(lr=-1.0).validate()


def test_a_run_kind_states_only_the_defaults_it_changes():
    distill, teacher = DistillConfig(), TeacherConfig()
    assert distill.replay.capacity_hours == ReplaySettings().capacity_hours
    assert (teacher.replay.capacity_hours, teacher.replay.replay_ratio, teacher.replay.min_replay) == (2.0, 8.0, 20_000)
    assert teacher.replay.prefetch == distill.replay.prefetch == ReplaySettings().prefetch
    assert MultitaskConfig().student.preset == "auto" and DistillConfig().student.preset == StudentSettings().preset
    assert OnlineConfig().distill_replay.capacity_hours == 1.0


@pytest.mark.parametrize("kind,flags", [
    (DistillConfig, {"student": "net1,net3", "tau": 0.1, "min_replay": 500, "eval_episodes": 3, "updates": 7}),
    (MultitaskConfig, {"games": "pong,breakout", "weights": "2,1", "lr": 5e-4}),
    (TeacherConfig, {"game": "breakout", "lr": 2e-4, "double": False, "frames": 400_000}),
    (OnlineConfig, {"student_lr": 0.01, "distill_min_replay": 500, "lr": 3e-4, "holdout_steps": 64}),
    (RecordConfig, {"steps": 512, "file_mb": 8, "seed": 3}),
])
def test_config_json_keeps_the_tree_and_reads_back(kind, flags):
    cfg = kind.from_flags(**flags).validate()
    stored = json.loads(cfg.to_json())
    assert all(isinstance(stored[f.path[0]], dict) for f in walk(kind) if len(f.path) == 2)
    assert kind.from_dict(stored).validate() == cfg
    assert kind.from_dict(cfg.flag_values()).validate() == cfg  # the flat form runs begun before the tree wrote
    assert {name: cfg.flag_values()[name] for name in flags} == flags


def test_a_stored_tree_with_a_wrong_key_or_type_is_refused():
    stored = json.loads(DistillConfig().validate().to_json())
    with pytest.raises(ConfigError, match=r"unknown keys \['replay_size'\]"):
        DistillConfig.from_dict({**stored, "replay": {**stored["replay"], "replay_size": 3}})
    with pytest.raises(ConfigError, match="gives min_replay = \"many\", not of type int"):
        DistillConfig.from_dict({**stored, "replay": {**stored["replay"], "min_replay": "many"}})


def test_resume_compares_flags_whatever_section_holds_them():
    import argparse

    stored = OnlineConfig().validate().flag_values()
    args = argparse.Namespace(student_lr=0.5, frames=20_000_000)
    with pytest.raises(ConfigError, match="--student-lr 0.5 differs from the run's config"):
        resume_changes(OnlineConfig, stored, args, "frames")
    assert resume_changes(OnlineConfig, stored, args, "frames,student_lr") == {"frames": 20_000_000, "student_lr": 0.5}


def test_a_new_setting_is_one_field_and_becomes_a_flag_of_every_run_composing_its_section():
    Wider = dataclasses.make_dataclass("Wider", [("spill_gb", float, setting(0.0, "spill to disk past this"))],
                                       bases=(ReplaySettings,))

    @dataclasses.dataclass
    class Run(TreeConfig):
        replay: Wider = section(Wider, min_replay=64)
        other: Wider = section(Wider, prefix="other_", skip=("prefetch",))

    names = {f.name: f.path for f in walk(Run)}
    assert names["spill_gb"] == ("replay", "spill_gb") and names["other_spill_gb"] == ("other", "spill_gb")
    assert "other_prefetch" not in names
    cfg = Run.from_flags(spill_gb=2.0, other_min_replay=9)
    assert (cfg.replay.spill_gb, cfg.replay.min_replay, cfg.other.min_replay) == (2.0, 64, 9)


def test_the_learners_get_the_runs_sections_themselves():
    from atari_distill.pipelines.distill import learner_config
    from atari_distill.pipelines.teacher import dqn_config

    distill = DistillConfig.from_flags(student="net1,net3", loss="kl,mse", tau=0.2, lr=5e-4).validate()
    config = learner_config(distill, "net3", "mse", min_replay=10)
    assert isinstance(config.student, StudentSettings)
    assert (config.student.preset, config.student.loss, config.student.tau, config.student.lr) == ("net3", "mse", 0.2, 5e-4)
    assert distill.student.preset == "net1,net3"  # the run's own section is not changed by one learner's pick
    teacher = TeacherConfig.from_flags(lr=3e-4).validate()
    assert dqn_config(teacher).dqn is teacher.dqn


def test_a_run_kind_is_named_once_by_its_config_and_has_one_row():
    from atari_distill.pipelines.commands import RUN_KINDS
    from atari_distill.rundir.summary import Summary, SummaryError

    assert sorted(RunConfig.kinds()) == sorted(RUN_KINDS) == sorted(kind.KIND for kind in KINDS)
    assert all(row.config.KIND == name for name, row in RUN_KINDS.items())
    with pytest.raises(SummaryError, match="unknown run kind 'sweep'"):
        Summary("sweep", complete=True)


def test_a_resume_accepts_the_runs_recordings_by_any_path_and_refuses_others(tmp_path, monkeypatch):
    for game in ("freeway", "pong", "breakout"):
        (tmp_path / "rec" / game).mkdir(parents=True)
        (tmp_path / "rec" / game / "index.json").write_text("{}")
    stored = {"datasets": f"{tmp_path / 'rec' / 'freeway'},{tmp_path / 'rec' / 'pong'}"}
    monkeypatch.chdir(tmp_path)
    for given in ("rec/freeway,rec/pong", "rec/pong,rec/freeway", "rec", stored["datasets"]):
        assert resume_changes(MultitaskConfig, stored, argparse.Namespace(datasets=given), None) == {}, given
    for other in ("rec/breakout,rec/pong", "rec/freeway,rec/pong,rec/breakout"):
        with pytest.raises(ConfigError, match=f"--datasets {other} differs"):
            resume_changes(MultitaskConfig, stored, argparse.Namespace(datasets=other), None)
    with pytest.raises(ConfigError, match="--datasets rec differs"):  # a live run has no recordings to match
        resume_changes(MultitaskConfig, {"datasets": ""}, argparse.Namespace(datasets="rec"), None)
