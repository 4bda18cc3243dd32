"""Bad input at the command line is one line naming the problem and the fix, exit code 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def launch(*args):
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


NOT_A_RUN = "already holds files; choose a new --out (it is not a run directory"  # so no --resume is offered


@pytest.mark.parametrize("args, words", [
    (["distill", "--game", "pongg"], "did you mean: pong"),
    (["distill", "--student", "huge"], "choose one of"),
    (["distill", "--loss", "l1"], "unknown loss"),
    (["distill", "--updates", "0"], "--updates must be at least 1"),
    (["distill", "--updates", "ten"], "invalid int value"),
    (["distill", "--tau", "-1"], "--tau must be positive"),
    (["distill", "--capacity-hours", "0.001"], "raise --capacity-hours"),
    (["distill", "--teacher", "/nonexistent.pt"], "neither 'random', zoo:GAME nor an existing checkpoint"),
    (["distill", "--resume", "/nonexistent-run"], "not a run directory"),
    (["evaluate", "--checkpoint", "random", "--game", "nope"], "unknown game"),
    (["distill", "--no-such-flag"], "unrecognized arguments"),
    (["distill", "--replay-shards", "3"], "raise --actors or lower --replay-shards"),
    (["distill", "--replay-ratio", "-1"], "--replay-ratio must be in"),
    (["distill", "--dataset", "/nonexistent-dataset"], "record one with `launch.py record`"),
    (["record", "--steps", "0"], "--steps 0 is less than one chunk (256 = --envs-per-actor 4 x --chunk-steps 64)"),
    (["distill", "--actor-gpus", "2"], "--actor-gpus must be in [0, 1]"),
    (["distill", "--env-mode", "gym"], "--env-mode must be auto or one of"),
    (["record", "--game", "pongg"], "did you mean: pong"),
    (["distill", "--learner-gpus", "0"], "--learner-gpus must be in [1, 64]"),
    (["distill", "--student", "net3,net3"], "lists a value twice"),
    (["distill", "--student", "net3,huge"], "unknown network preset 'huge'"),
    (["distill", "--learner-resource", "CPU"], "--learner-resource must name a custom resource"),
    (["distill", "--override", "updates"], "--override only applies with --resume"),
    (["multitask", "--games", "pong"], "needs at least two games"),
    (["teacher", "--frames", "0"], "--frames"),
    (["distill", "--out", str(ROOT / "README.md")], "is a file, not a directory"),
    (["multitask", "--games", "pong,breakout", "--out", str(ROOT / "docs")], NOT_A_RUN),
    (["teacher", "--out", str(ROOT / "docs")], NOT_A_RUN),
    (["online", "--out", str(ROOT / "README.md")], "is a file, not a directory"),
    (["record", "--out", str(ROOT / "README.md")], "is a file, not a directory"),
    (["distil"], "did you mean: distill"),
    (["export", "--checkpoint", "zoo:pong"], "'zoo:pong' is not a run directory or a checkpoint in one; give --out"),
    (["evaluate", "--checkpoint", str(ROOT / "bench/results/outgrow-2026-12-05/learning.png")],
     "is not a PyTorch file (it begins b'\\x89PNG"),  # not "add --game", which would not help
    (["evaluate", "--checkpoint", "random", "--game", "pong", "--episodes", "0"], "--episodes must be at least 1, got 0"),
    (["distill", "--teacher", str(ROOT / "README.md")], "is not a PyTorch file (it begins b'# atari-distill"),
    (["distill", "--teacher", "zoo:space_invaders", "--game", "pong"], "trained for space_invaders, not pong"),
    (["record", "--teacher", "zoo:space_invaders", "--game", "pong"], "trained for space_invaders, not pong"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, words, capsys):
    """In this process (each case fails before Ray starts); the subprocess tests below cover the script."""
    from atari_distill import cli

    try:
        code = cli.main(args)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and "Stella" not in line and "A.L.E" not in line]
    assert len(lines) == 1 and words in lines[0], stderr


def test_wrong_game_checkpoint_is_refused(tmp_path):
    from atari_distill.models.checkpoint import make_payload, save_checkpoint
    from atari_distill.models.networks import QNetwork

    save_checkpoint(tmp_path / "b.pt", make_payload(QNetwork("nature", {"breakout": 4}), "teacher"))
    result = launch("evaluate", "--checkpoint", str(tmp_path / "b.pt"), "--game", "pong", "--episodes", "1")
    assert result.returncode == 2 and "trained for breakout, not pong" in result.stderr


def test_evaluate_prints_mean_ci_min_max(tmp_path):
    result = launch("evaluate", "--checkpoint", "random", "--game", "pong", "--episodes", "2", "--runner", "local",
                    "--json")
    assert result.returncode == 0, result.stderr
    assert "95% CI" in result.stdout and "min" in result.stdout and "max" in result.stdout
    one = launch("evaluate", "--checkpoint", "random", "--game", "pong", "--episodes", "1", "--workers", "1", "--json")
    assert one.returncode == 0 and "no 95% CI from one episode" in one.stdout, one.stderr
    assert not {"nan", "None", "NaN"} & set(re.findall(r"[A-Za-z]+", one.stdout)), one.stdout
    assert json.loads(one.stdout.splitlines()[-1])["ci95"] is None


def in_process(capsys, *args) -> subprocess.CompletedProcess:
    """The command in this process, on the session's Ray runtime: a refusal of a plan is the subject, and
    a fresh process would spend its seconds starting Ray. The subprocess tests here cover the script."""
    from atari_distill import cli

    code = cli.main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def test_impossible_memory_plan_is_refused_before_anything_is_written(tmp_path, ray_runtime, capsys):
    result = in_process(capsys, "distill", "--capacity-hours", "100000", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "GiB free; lower --capacity-hours (at most" in error[0], result.stderr
    assert "memory plan" in result.stdout and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_actor_gpu_share_without_a_gpu_is_refused_before_anything_is_written(tmp_path, ray_runtime, capsys):
    result = in_process(capsys, "distill", "--actor-gpus", "0.25", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "needs a GPU, but Ray sees none; drop --actor-gpus" in result.stderr
    assert not (tmp_path / "run").exists()


def _memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")) / 2**20


@pytest.mark.skipif(_memory_gib() > 40, reason="this machine could hold ten games of ten hours")
def test_ten_games_of_ten_hours_are_refused_on_one_small_machine(tmp_path, ray_runtime, capsys):
    games = "breakout,enduro,ms_pacman,pong,qbert,riverraid,seaquest,space_invaders,beam_rider,freeway"
    result = in_process(capsys, "multitask", "--games", games, "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert "replay needs 36.26 GiB" in result.stderr and "lower --capacity-hours" in result.stderr
    assert "10 game(s) x 1 shard(s), 540,000 steps per game" in result.stdout
    assert not (tmp_path / "run").exists()


@pytest.fixture
def finished_config(tmp_path):
    """A run directory as a distill run leaves it (its config; no run is needed to test refusals)."""
    from atari_distill.pipelines.config import DistillConfig
    from atari_distill.rundir.directory import RunDir

    run = RunDir.create(tmp_path / "run", DistillConfig.from_flags(out=str(tmp_path / "run")).validate().to_json())
    return run.path


@pytest.mark.parametrize("flags, words", [
    (["--updates", "600"], "--updates 600 differs from the run's config (300); to change it add --override updates"),
    (["--updates", "600", "--override", "updatez"], "--override: unknown config key(s) ['updatez']"),
    (["--student", "net3", "--override", "student"], "--student net3 differs from the run's 'net1' and "
                                                        "cannot change on resume"),
])
def test_resume_refuses_a_changed_config_unless_overridden(finished_config, flags, words):
    result = launch("distill", "--resume", str(finished_config), *flags)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr


def test_damaged_files_are_one_line_errors(tmp_path, finished_config):
    garbage = tmp_path / "teacher.pt"
    garbage.write_bytes(b"PK\x03\x04 not a checkpoint")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "index.json").write_text('{"game": "pong", "chunks": [')
    (finished_config / "config.json").write_text("{")
    for args, words in ((["distill", "--teacher", str(garbage)], "teacher.pt"),
                        (["distill", "--dataset", str(dataset)], "index.json"),
                        (["distill", "--resume", str(finished_config)], "config.json' cannot be read")):
        result = launch(*args)
        lines = [line for line in result.stderr.splitlines() if line.strip() and "Stella" not in line
                 and "A.L.E" not in line]
        assert result.returncode == 2 and len(lines) == 1 and words in lines[0], (args, result.stderr)
    for stored, words in (("[]", "holds a JSON list"), ('{"updates": "many"}', 'updates = "many", not of type int'),
                          ("{}", "holds no flags")):  # parses, but is not a run's config
        (finished_config / "config.json").write_text(stored)
        result = launch("distill", "--resume", str(finished_config))
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(errors) == 1 and words in errors[0], result.stderr
        assert (finished_config / "config.json").read_text() == stored


def test_debug_shows_the_traceback():
    result = launch("--debug", "distill", "--updates", "0")
    assert result.returncode != 0 and "Traceback" in result.stderr and "--updates must be at least 1" in result.stderr


def test_an_impossible_resource_plan_is_refused_before_anything_is_written(tmp_path, ray_runtime, capsys):
    result = in_process(capsys, "distill", "--learner-resource", "gpu_box", "--out", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "gpu_box: needs gpu_box 1 but the cluster has gpu_box 0" in error[0], result.stderr
    assert "placement plan" in result.stdout and not (tmp_path / "run").exists()


def test_a_bug_is_one_line_naming_where_its_traceback_went(monkeypatch, capsys, tmp_path):
    from atari_distill import cli

    def broken(args):
        raise KeyError("an internal slip")

    monkeypatch.setattr(cli, "cmd_presets", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert cli.main(["presets"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error, a bug: KeyError" in lines[0] and "Traceback" not in err, err
    saved = list(tmp_path.glob("crash-*.txt"))
    assert len(saved) == 1 and saved[0].name in lines[0] and "an internal slip" in saved[0].read_text()
    with pytest.raises(KeyError):  # --debug shows it as it is
        cli.main(["--debug", "presets"])


def test_report_skips_a_metrics_line_that_is_not_utf8_naming_the_file(finished_config, tmp_path, capsys):
    """One damaged line (a disk error, a copy gone wrong) costs the report that point, not the whole
    report, and the user learns which file holds it."""
    from atari_distill import cli
    from atari_distill.rundir.directory import RunDir

    good = [json.dumps({"kind": "distill", "updates": u, "loss": 1.0 / u}).encode() for u in (10, 20, 30)]
    metrics = finished_config / "metrics.jsonl"
    lines = [good[0], b'{"updates": 15, "loss": \xff\xfe}', good[1], b'{"upda', good[2]]
    metrics.write_bytes(b"\n".join(lines) + b"\n")
    assert cli.main(["report", str(finished_config), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipping line 2 of {str(metrics)!r}: not UTF-8" in err, err
    assert f"warning: skipping line 4 of {str(metrics)!r}: not a JSON record" in err, err
    assert "error" not in err and (tmp_path / "report" / "report.md").exists()
    assert [r["updates"] for r in RunDir.open(finished_config).metrics()] == [10, 20, 30]


@pytest.mark.parametrize("command", ["distill", "multitask", "teacher", "online", "record", "evaluate", "export",
                                     "watch", "report", "zoo", "presets"])
def test_every_commands_help_prints_without_none_defaults(command, capsys):
    from atari_distill import cli

    with pytest.raises(SystemExit) as exit:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and "usage:" in out
    assert "(default: None)" not in out and "(default: )" not in out


FOREIGN = {  # flag text that belongs to another command
    "online": ["--dataset", "(record:", "e.g. updates", "sweeps every pair", "comma-separated to sweep",
               "(not for a DQN)", "(a DQN's 8"],
    "teacher": ["--dataset", "(record:", "distillation loss", "multi-3", "(not for a DQN)"],
    "record": ["--updates", "sweeps every pair"],
}


@pytest.mark.parametrize("command", sorted(FOREIGN))
def test_a_commands_help_carries_no_other_commands_text(command, capsys):
    from atari_distill import cli

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert [text for text in FOREIGN[command] if text in out] == []


def test_evaluate_takes_a_run_directory_or_its_checkpoint_without_naming_the_game(finished_config, capsys):
    """The game comes from the network's one head; a run directory plays its newest student."""
    from atari_distill import cli
    from atari_distill.models.checkpoint import make_payload
    from atari_distill.models.networks import QNetwork
    from atari_distill.rundir.directory import RunDir

    run = RunDir.open(finished_config)
    for updates in (10, 20):
        run.save_checkpoint(make_payload(QNetwork("net3", {"breakout": 4}), "student", updates=updates))
    run.close()
    newest = finished_config / "checkpoints" / "student-00000020.pt"
    for source in (str(finished_config), str(newest)):
        assert cli.main(["evaluate", "--checkpoint", source, "--episodes", "1", "--workers", "1"]) == 0
        assert "Breakout: mean" in capsys.readouterr().out
    assert cli.main(["evaluate", "--checkpoint", str(finished_config), "--series", "dqn"]) == 2
    assert "has no checkpoint series 'dqn'; it has: student" in capsys.readouterr().err


def test_the_console_script_is_launch_py():
    script = Path(sys.executable).parent / "atari-distill"
    result = subprocess.run([str(script), "presets", "--actions", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "net3" in result.stdout, result.stderr
    assert subprocess.run([str(script), "distil"], capture_output=True, text=True,
                          timeout=120).stderr.startswith("error: atari-distill: argument command: invalid choice")
