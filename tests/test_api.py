"""atari_distill from Python: one import name, the commands as functions whose keywords are the
flags, typed results that match the summary they were read from, and runs that leave the process
as they found it (a second run in the same process trains)."""

import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
import torch

import atari_distill as ad
from atari_distill import api
from atari_distill.cli import build_parser
from tests.conftest import ROOT
from tests.processes import ray_workers

TINY = dict(updates=20, log_every=10, checkpoint_every=10, min_replay=200, eval_episodes=1, select_episodes=1,
            eval_workers=1, holdout_steps=200, student="net3", device="cpu", echo=None)


def subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


@pytest.mark.parametrize("command", ["distill", "multitask", "teacher", "online", "record", "evaluate", "export",
                                     "watch", "report"])
def test_every_flag_has_its_keyword_and_every_keyword_its_flag(command):
    cli_only = {"help", "json"}  # --json: how the CLI shows a result, which the API returns
    flags = {a.dest for a in subcommands()[command]._actions} - cli_only
    keywords = set(inspect.signature(getattr(ad, command)).parameters) - set(api.API_ONLY)
    assert flags == keywords


def test_a_bad_setting_is_a_config_error_with_the_line_the_cli_prints():
    with pytest.raises(ad.ConfigError, match=r"^--updates must be at least 1, got 0$"):
        ad.distill(updates=0, echo=None)
    with pytest.raises(ad.ConfigError, match="has no setting 'update'; did you mean updates"):
        ad.distill(update=10, echo=None)
    assert issubclass(ad.ConfigError, ValueError)


def test_the_installed_package_adds_one_import_name():
    from importlib.metadata import distribution

    assert distribution("atari-distill").read_text("top_level.txt").split() == ["atari_distill"]


def test_a_built_wheel_holds_only_atari_distill(tmp_path):
    """What `pip install .` puts into site-packages: built from the tracked files, as a fresh clone has them."""
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("tests/", "bench/", "docs/")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp_path / "wheel").glob("*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"atari_distill", "atari_distill-0.1.0.dist-info"}
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "atari_distill/zoo/teachers/pong.json" in names
    modules = {f"atari_distill/{name}" if not name.startswith("atari_distill/") else name for name in files
               if name.endswith(".py") and (ROOT / name).is_file()
               and not name.startswith(("tests/", "bench/", "docs/", "examples/"))
               and name != "launch.py"}
    assert modules - names == set(), "every module of the package is in the wheel (pyproject's packages list)"


def test_it_works_beside_other_packages_named_models_and_ui(tmp_path):
    """Most ML projects have a `models` or a `ui` package: theirs and ours no longer share a name."""
    for name in ("models", "ui"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("OWNER = 'the user'\n")
    code = ("import numpy as np, models, ui, atari_distill as ad\n"
            "policy = ad.load_teacher('zoo:pong')\n"
            "print(models.OWNER, ui.OWNER, policy.act(np.zeros((2, 4, 84, 84), np.uint8)).shape)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0 and result.stdout.split() == ["the", "user", "the", "user", "(2,)"], result.stderr


def test_python_m_atari_distill_is_the_cli():
    result = subprocess.run([sys.executable, "-m", "atari_distill", "presets", "--actions", "4"], capture_output=True,
                            text=True, timeout=120, cwd="/")
    assert result.returncode == 0 and "net3" in result.stdout, result.stderr


def test_a_distill_from_python_returns_what_its_summary_says_and_its_student_loads(recorded, tmp_path):
    dataset, _ = recorded
    seen = []
    result = ad.distill(dataset=str(dataset), out=str(tmp_path / "run"), on_metrics=seen.append, **TINY)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert isinstance(result, ad.RunResult) and result.complete and result.kind == "distill" and result.version == 2
    assert result.run_dir == tmp_path / "run" and result.games == ["pong"]
    pong = result.per_game["pong"]
    assert pong.student.mean == summary["student_score"]["mean"] and pong.student.episodes == 1
    assert pong.teacher.mean == summary["teacher_score"]["mean"] and pong.random.mean == summary["random_score"]["mean"]
    assert pong.student.seeds == summary["protocol"]["seeds"]["report"]
    assert (pong.agreement, pong.majority_baseline) == (summary["action_agreement"], summary["majority_baseline"])
    assert result.students[0].updates == 20 and result.students[0].preset == "net3"
    assert ad.RunResult.load(tmp_path / "run") == result
    assert [r["updates"] for r in seen if r.get("kind", "distill") == "distill"] == [10, 20]

    policy = ad.load_student(result.run_dir)
    assert (policy.game, policy.games, policy.num_actions["pong"], policy.preset) == ("pong", ["pong"], 6, "net3")
    assert policy.preprocessing["frame_skip"] == 4 and policy.preprocessing["noop_max"] == 30
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "student-00000020.pt", weights_only=True)
    from atari_distill.models.networks import QNetwork

    net = QNetwork(checkpoint["preset"], checkpoint["heads"]).eval()
    net.load_state_dict(checkpoint["model"])
    frames = held_out_frames()
    with torch.inference_mode():
        expected = net(torch.from_numpy(frames), "pong").argmax(1).numpy()
    assert np.array_equal(policy.act(frames), expected)
    assert policy.q_values(frames).shape == (len(frames), 6) and len(policy.action_set()) == 6
    with pytest.raises(ad.ConfigError, match=r"uint8 of shape \(N, 4, 84, 84\)"):
        policy.act(frames.astype(np.float32))


def held_out_frames() -> np.ndarray:
    """Stacked frames a random policy sees in Pong from seeds no run plays."""
    from atari_distill.actors.env import make_vector_env

    env = make_vector_env("pong", 2)
    obs, _ = env.reset(seed=np.array([987_654, 987_655]))
    rng, frames = np.random.default_rng(0), []
    for _ in range(40):
        obs, *_ = env.step(rng.integers(0, 6, size=2))
        frames.append(np.asarray(obs))
    env.close()
    return np.concatenate(frames).astype(np.uint8)


def test_a_second_run_in_one_process_trains_after_an_interrupt_and_after_a_lost_replay(recorded, tmp_path,
                                                                                      monkeypatch):
    """Neither a stop asked for from outside (a notebook's interrupt button) nor one the run asked for
    itself (its replay lost) outlives its run; each ends with a final checkpoint and its summary."""
    import atari_distill.pipelines.distill as distill
    import atari_distill.pipelines.distill_games as distill_games

    dataset, _ = recorded
    settings = dict(TINY, dataset=str(dataset), updates=400, checkpoint_every=200)

    def interrupt(record):
        if record.get("updates") == 10:
            os.kill(os.getpid(), signal.SIGINT)  # Python's own handler: a KeyboardInterrupt in the main thread
    interrupted = ad.distill(out=str(tmp_path / "interrupted"), on_metrics=interrupt, **settings)
    assert (interrupted.complete, interrupted.stopped_by) == (False, "KeyboardInterrupt")
    assert 10 <= interrupted.summary["updates"] < 400
    assert (tmp_path / "interrupted" / "checkpoints" / f"student-{interrupted.summary['updates']:08d}.pt").is_file()

    monkeypatch.setattr(distill, "PLACEMENT_TIMEOUT_S", 3.0)  # how long a silent shard is waited for
    monkeypatch.setattr(distill_games, "SHARD_ANSWER_S", 1.0)  # and each interval's figures from it
    own = ad.StopToken()
    frozen = []

    def freeze_replay(record):  # the shard's process stops answering, as one on a lost node would
        if not frozen:
            frozen.extend(ray_workers("ReplayShard"))
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            threading.Thread(target=thaw_once_stopped, args=(own, frozen), daemon=True).start()
    lost = ad.distill(out=str(tmp_path / "lost"), stop=own, on_metrics=freeze_replay, **settings)
    assert frozen and not lost.complete and "replay shard pong/0" in lost.stopped_by

    again = ad.distill(out=str(tmp_path / "again"), **dict(settings, updates=20))
    assert again.complete and again.students[0].updates == 20


def test_runs_in_a_fresh_process_share_the_ray_runtime_the_first_one_started(tmp_path):
    """As in a new notebook, nothing has started Ray: the runtime the first call starts must outlive its run
    (Ray's GCS dies with the thread that started it, so every run goes on one long-lived thread)."""
    settings = {k: v for k, v in TINY.items() if k != "echo"}
    code = ("import atari_distill as ad\n"
            "ad.record(teacher='random', game='pong', steps=300, envs_per_actor=2, chunk_steps=32, out='data', "
            "echo=None)\n"  # the first run, on the runtime it started; the second on the same
            f"print(ad.distill(dataset='data', out='a', echo=None, **{settings!r}).complete)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.split() == ["True"], result.stderr[-2000:]


def thaw_once_stopped(token, pids) -> None:
    """The frozen shard answers again once the run has given up on it, so its wind-down is quick."""
    import time

    while token.requested() is None:
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_a_resumed_run_goes_on_from_where_its_record_left_off(tmp_path):
    """Stopped by its token mid-way, then resumed: no counter in metrics.jsonl starts over (elapsed seconds,
    labelled and sampled steps), every interval appears once, the first line after the resume says so,
    every curve point asked for before the stop was played or is marked abandoned (the one at the stop's
    own update too), and the summary's wall time counts both segments. A live teacher, so steps are
    labelled in both."""
    out, token = tmp_path / "run", ad.StopToken()

    def stop_at_30(record):
        if record.get("updates") == 30:
            token.request("a test's stop")
    settings = dict(TINY, updates=60, log_every=10, checkpoint_every=20, eval_every=10, runner="local")
    first = ad.distill(out=str(out), stop=token, on_metrics=stop_at_30, **settings)
    assert (first.complete, first.summary["updates"]) == (False, 30)
    second = ad.distill(resume=str(out), echo=None)
    assert second.complete and second.wall_s > first.wall_s
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line.get("kind", "distill") == "distill"]
    assert [line["updates"] for line in train] == [10, 20, 30, 40, 50, 60]
    for key in ("elapsed_s", "labelled_steps", "sampled_steps"):
        values = [line[key] for line in train]
        assert values == sorted(values), f"{key} went back at the resume: {values}"
    assert [line["updates"] for line in train if line.get("resumed")] == [40]
    curve = [(line["updates"], line["kind"]) for line in lines if line.get("kind") in ("eval", "abandoned")]
    assert [u for u, _ in curve] == [10, 20, 30, 40, 50], curve
    assert all(0 <= line["lag_s"] <= line["elapsed_s"] for line in lines if line.get("kind") == "eval")
    from atari_distill.ui.report import write_report

    drawn = write_report([str(out)], str(tmp_path / "report"))
    assert all("resumed (fresh replay)" in drawn["legends"][plot] for plot in ("loss", "throughput")), drawn["legends"]


def test_a_stopped_recording_resumes_with_new_actor_ids_and_whole_chunks(tmp_path):
    """Stopped once its first file holds chunks, then resumed: the budget is never exceeded, every
    (actor, chunk) stream is stored once, and the resumed actors took ids of their own."""
    from atari_distill.replay.chunk import decode
    from atari_distill.replay.dataset import Dataset

    out, token, steps = tmp_path / "data", ad.StopToken(), 2048  # seconds to fill: the stop lands well before

    def stop_once_written():
        while not any(f.stat().st_size > 0 for f in out.glob("chunks-*.bin")):
            time.sleep(0.05)
        token.request("a test's stop")
    watcher = threading.Thread(target=stop_once_written, daemon=True)
    watcher.start()
    flags = dict(actors=1, envs_per_actor=2, chunk_steps=32, file_mb=1, runner="local", echo=None)
    first = ad.record(out=str(out), steps=steps, stop=token, **flags)
    assert first.complete is False and first.summary["steps"] < steps
    ad.record(resume=str(out), echo=None)
    dataset = Dataset.open(out)
    assert dataset.index["complete"] and dataset.index["resumes"] == 1 and not dataset.damage
    assert steps - 64 < dataset.steps <= steps
    streams = [(chunk.actor_id, chunk.chunk_index) for chunk in (decode(m) for _, m in dataset.messages())]
    assert len(streams) == len(set(streams)) and {actor for actor, _ in streams} == {0, 1}
