"""Exported students: onnxruntime gives the PyTorch Q values on real frames, plays the same episodes,
and a file that is damaged, for another game or of another shape is refused in one line."""

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import atari_distill as ad
from atari_distill import cli as launch
from atari_distill.evaluation.episodes import evaluate_policy
from atari_distill.actors.games import game_spec
from atari_distill.evaluation.protocol import REPORT, EvalProtocol
from atari_distill.actors.teachers import calibration_frames, load_teacher
from atari_distill.models.checkpoint import make_payload
from atari_distill.models.export import METADATA_KEY, ExportError, OnnxQ, Pt2Q, load_exported, torch_q
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.export import run_export
from atari_distill.rundir.directory import RunDir
from atari_distill.pipelines.sources import resolve_model
from tests.test_teacher_import import CleanRLQNetwork

pytestmark = pytest.mark.xdist_group("test_export")  # its module-scoped fixture is built once

ROOT = Path(__file__).resolve().parent.parent
QUIET = dict(parity_frames=64, echo=lambda *_: None)


@pytest.fixture(scope="module")
def breakout_onnx(tmp_path_factory):
    """The zoo's Breakout teacher (a trained net1) exported: short episodes, FIRE on reset (cleanrl mode)."""
    path = tmp_path_factory.mktemp("export") / "breakout.onnx"
    metadata = run_export("zoo:breakout", str(path), **QUIET)
    return path, metadata


def frames_of(game: str) -> np.ndarray:
    """Real frames of `game` from uniformly random play (the export itself was checked on held-out ones)."""
    return calibration_frames(game, 11).numpy()[:96]


def assert_same_q(path: Path, payload: dict, games: list[str], reader=OnnxQ) -> None:
    net = QNetwork(payload["preset"], payload["heads"])
    net.load_state_dict(payload["model"])
    net.eval()
    exported = reader(path.read_bytes())
    for game in games:
        obs = frames_of(game)
        expected = torch_q(net, {game: obs})[game]
        np.testing.assert_allclose(exported(obs)[game], expected, rtol=1e-4, atol=1e-4)
        assert (exported(obs)[game].argmax(1) == expected.argmax(1)).mean() >= 0.99


def test_exported_zoo_teacher_gives_its_q_values_and_states_what_it_expects(breakout_onnx):
    path, metadata = breakout_onnx
    assert_same_q(path, load_teacher("zoo:breakout", game_spec("breakout")), ["breakout"])
    stored = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[METADATA_KEY])
    assert stored["heads"] == {"breakout": 4} and stored["action_meanings"]["breakout"][:2] == ["NOOP", "FIRE"]
    assert stored["preprocessing"]["kwargs"]["breakout"]["use_fire_reset"] is True
    assert stored["env_modes"] == {"breakout": "cleanrl"}
    assert stored["preset"] == "net1" and stored["params"] == 424_276
    assert stored["source_scores"]["breakout"]["episodes"] == 30
    assert stored["parity"]["per_game"]["breakout"]["frames"] == 64


def test_a_multitask_student_exports_every_head_and_a_run_directory_its_newest_student(tmp_path):
    torch.manual_seed(0)
    heads = {"breakout": 4, "qbert": 6}  # games whose random episodes are short: the parity check plays whole ones
    run = RunDir.create(tmp_path / "run", json.dumps({"games": "breakout,qbert"}))
    for updates in (10, 20):
        run.save_checkpoint(make_payload(QNetwork("multi-3", heads), "student", updates=updates))
    (tmp_path / "run" / "summary.json").write_text(json.dumps({
        "kind": "multitask", "complete": True, "updates": 20, "eval_protocol": "protocol text",
        "per_game": {"qbert": {"student_score": {"mean": 150.0, "ci95": 20.5, "episodes": 30},
                               "env_mode": "cleanrl"}}}))  # a checkpoint from before env_modes: the summary says
    run.close()
    exported = ad.export(checkpoint=str(tmp_path / "run"), parity_frames=QUIET["parity_frames"], echo=None)
    assert exported.path == tmp_path / "run" / "exports" / "student-00000020.onnx"  # in the run, not where typed
    metadata = exported.metadata
    assert metadata["outputs"] == ["breakout", "qbert"] and metadata["updates"] == 20
    assert metadata["source_scores"] == {"qbert": {"mean": 150.0, "ci95": 20.5, "episodes": 30}}
    assert sorted(metadata["parity"]["per_game"]) == ["breakout", "qbert"]
    older = tmp_path / "run" / "checkpoints" / "student-00000010.pt"  # the summary scored update 20, not this one
    assert resolve_model(str(older)).scores == {} and resolve_model(str(tmp_path / "run")).scores
    assert metadata["env_modes"] == {"breakout": "native", "qbert": "cleanrl"}
    assert [metadata["preprocessing"]["kwargs"][g]["use_fire_reset"] for g in ("breakout", "qbert")] == [False, True]
    one = resolve_model(str(exported.path), "qbert")  # one head of the file, played as it was taught
    assert one.payload["extra"]["env_mode"] == "cleanrl"
    newest = torch.load(tmp_path / "run" / "checkpoints" / "student-00000020.pt", weights_only=True)
    assert_same_q(exported.path, newest, ["breakout", "qbert"])


def test_an_imported_cleanrl_teacher_exports_to_onnx_and_torch_export(tmp_path):
    torch.manual_seed(1)
    torch.save(CleanRLQNetwork(4).state_dict(), tmp_path / "dqn.cleanrl_model")
    source = str(tmp_path / "dqn.cleanrl_model")
    with pytest.raises(ValueError, match="add --game"):
        run_export(source, str(tmp_path / "x.onnx"), **QUIET)
    run_export(source, str(tmp_path / "breakout.onnx"), game="breakout", **QUIET)
    run_export(source, str(tmp_path / "breakout.pt2"), game="breakout", **QUIET)
    payload = load_teacher(source, game_spec("breakout"))
    assert_same_q(tmp_path / "breakout.onnx", payload, ["breakout"])
    assert_same_q(tmp_path / "breakout.pt2", payload, ["breakout"], reader=Pt2Q)


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_pt2_whose_weight_is_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    """torch.export.load would unpickle such a weight with weights_only=False; Pt2Q refuses it in one line."""
    import zipfile

    torch.manual_seed(1)
    torch.save(CleanRLQNetwork(4).state_dict(), tmp_path / "dqn.cleanrl_model")
    run_export(str(tmp_path / "dqn.cleanrl_model"), str(tmp_path / "good.pt2"), game="breakout", **QUIET)
    with zipfile.ZipFile(tmp_path / "good.pt2") as good:
        entries = {item.filename: good.read(item) for item in good.infolist()}
    name = next(n for n in entries if n.endswith("model_weights_config.json"))
    config = json.loads(entries[name])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    entries[name] = json.dumps(config).encode()
    marker, evil = tmp_path / "ran", io.BytesIO()
    torch.save(_RunsCode(str(marker)), evil)
    entries[name.rsplit("/", 1)[0] + "/" + first["path_name"]] = evil.getvalue()
    with zipfile.ZipFile(tmp_path / "doctored.pt2", "w") as doctored:
        for entry, data in entries.items():
            doctored.writestr(entry, data)
    with pytest.raises(ExportError, match="pickled Python objects, which could run code"):
        Pt2Q((tmp_path / "doctored.pt2").read_bytes())
    assert not marker.exists()
    Pt2Q((tmp_path / "good.pt2").read_bytes())  # the check refuses code, not our own files


def test_an_exported_model_plays_the_same_episodes_as_its_checkpoint(breakout_onnx):
    path, _ = breakout_onnx
    protocol = EvalProtocol()
    checkpoint = load_teacher("zoo:breakout", game_spec("breakout"))
    exported = load_exported(path)
    played = [evaluate_policy(p, "breakout", 2, **protocol.play(REPORT, p)) for p in (checkpoint, exported)]
    assert played[0].scores == played[1].scores and played[0].mean_length == played[1].mean_length


def test_int8_states_its_agreement_with_the_float_model_and_plays(tmp_path, capsys):
    out = tmp_path / "breakout-int8.onnx"
    assert launch.main(["export", "--checkpoint", "zoo:breakout", "--out", str(out), "--int8",
                        "--parity-frames", "128"]) == 0
    printed = capsys.readouterr().out
    assert "breakout: int8 against PyTorch on the same frames: greedy agreement" in printed
    stored = load_exported(out)["metadata"]
    assert stored["precision"] == "int8" and stored["int8"]["per_game"]["breakout"]["frames"] == 128
    assert out.stat().st_size < 0.5 * 1_720_000  # int8 weights: about a quarter of float32's
    assert launch.main(["evaluate", "--checkpoint", str(out), "--episodes", "1", "--workers", "1"]) == 0
    assert "Breakout: mean" in capsys.readouterr().out


def test_int8_below_its_agreement_gate_writes_nothing(tmp_path, capsys):
    """The gate is per head and refuses in one line naming a value that passes; --min-agreement is int8's only."""
    out = tmp_path / "strict.onnx"
    line = refusal(["export", "--checkpoint", "zoo:ms_pacman", "--out", str(out), "--int8", "--min-agreement", "1",
                    "--parity-frames", "128"], capsys)
    assert "of 128 held-out ms_pacman frames, below --min-agreement 1.0; nothing was written" in line
    assert not out.exists()
    assert "sets the int8 gate; add --int8" in refusal(
        ["export", "--checkpoint", "zoo:ms_pacman", "--out", str(out), "--min-agreement", "0.5"], capsys)


def refusal(argv, capsys) -> str:
    assert launch.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_damaged_foreign_and_misshapen_files_are_refused_in_one_line(breakout_onnx, tmp_path, capsys):
    path, _ = breakout_onnx
    data = path.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(data[: len(data) // 2])
    assert "damaged or truncated" in refusal(["evaluate", "--checkpoint", str(tmp_path / "truncated.onnx")], capsys)
    assert "trained for breakout, not pong" in refusal(
        ["evaluate", "--checkpoint", str(path), "--game", "pong"], capsys)

    model = onnx.load(str(path))  # the same metadata on a graph that takes RGB frames
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 84 * 84, 4)).eval()
    torch.onnx.export(wrong, (torch.zeros(1, 3, 84, 84),), str(tmp_path / "rgb.onnx"), dynamo=True,
                      input_names=["obs"], output_names=["q_breakout"], external_data=False, verbose=False)
    rgb = onnx.load(str(tmp_path / "rgb.onnx"))
    rgb.metadata_props.extend(model.metadata_props)
    onnx.save(rgb, str(tmp_path / "rgb.onnx"))
    capsys.readouterr()  # the exporter's own warnings
    assert "not one uint8 input of shape (N, 4, 84, 84)" in refusal(
        ["evaluate", "--checkpoint", str(tmp_path / "rgb.onnx")], capsys)
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    assert "no atari_distill metadata" in refusal(["evaluate", "--checkpoint", str(tmp_path / "bare.onnx")], capsys)
    assert "exists; choose another name or add --force" in refusal(
        ["export", "--checkpoint", "zoo:breakout", "--out", str(path)], capsys)
    assert path.read_bytes() == data  # nothing already written was touched


def test_the_standalone_example_plays_an_episode_without_this_project(breakout_onnx, tmp_path):
    example = ROOT / "examples" / "play_onnx.py"
    imports = {alias.name.split(".")[0] for node in ast.walk(ast.parse(example.read_text()))
               if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])}
    assert imports <= {"argparse", "json", "numpy", "onnxruntime", "ale_py", "gymnasium"}, imports
    result = subprocess.run([sys.executable, str(example), str(breakout_onnx[0])], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("breakout: score ") and " steps (net1, float32" in result.stdout
