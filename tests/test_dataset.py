"""Record a teacher to disk, read it back bit-exact, survive damage, and distill from it."""

import json
import shutil

import numpy as np
import pytest
import torch

from atari_distill import cli as launch
from atari_distill.actors.env import EnvConfig
from atari_distill.models.checkpoint import build_network
from atari_distill.pipelines.config import ConfigError, DistillConfig
from atari_distill.pipelines.distill import run_distill
from atari_distill.replay.chunk import ChunkError, decode, encode
from atari_distill.replay.dataset import RECORD_HEADER, Dataset, DatasetError, DatasetWriter
from atari_distill.replay.frame_ring import FrameRing
from tests.test_chunk import make_chunk
from tests.test_frame_ring import Recorder

IDENTITY = {"game": "pong", "num_actions": 6, "teacher": {"source": "random", "seed": 0, "fingerprint": "x"}}


def test_record_writes_whole_chunks_and_a_self_describing_index(recorded):
    out, index = recorded
    on_disk = json.loads((out / "index.json").read_text())
    assert on_disk == index and index["complete"] and index["game"] == "pong" and index["num_actions"] == 6
    assert index["steps"] == 256  # whole chunks of 64 steps, never more than --steps 300
    assert index["teacher"]["source"] == "random" and len(index["teacher"]["fingerprint"]) == 16
    assert index["env"]["noop_max"] == 30 and index["epsilon"] == 0.05
    assert sum(f["bytes"] for f in index["files"]) == sum((out / f["name"]).stat().st_size for f in index["files"])


def test_recorded_observations_and_q_read_back_exactly(recorded, pong_teacher):
    out, index = recorded
    dataset = Dataset.open(out)
    ring = FrameRing(10_000, 6)
    recorder = Recorder(envs=2, seed=0, env_config=EnvConfig())  # actor 0 seeds its envs with seed 0
    net = build_network(pong_teacher).eval()
    truth_obs, truth_q = [], []
    for expected_index, (record, message) in enumerate(dataset.messages()):
        chunk = decode(message)
        assert (chunk.actor_id, chunk.chunk_index) == (0, expected_index)
        stacks = recorder.follow(chunk)  # the environment replayed with the recorded actions
        with torch.inference_mode():
            for t in range(chunk.steps):  # the recorded labels are the teacher's output on the true stacks
                np.testing.assert_allclose(chunk.q[t], net(torch.from_numpy(stacks[t])).numpy(), rtol=1e-5, atol=1e-4)
        ring.insert(chunk)
        truth_obs.extend(stacks[:, env] for env in range(chunk.envs))
        truth_q.extend(chunk.q[:, env] for env in range(chunk.envs))
    obs, complete = ring.stacks(np.arange(ring.size))
    assert complete.all() and ring.size == index["steps"]
    assert np.array_equal(obs, np.concatenate(truth_obs))  # read back bit-exact
    assert np.array_equal(ring.q[: ring.size], np.concatenate(truth_q))


def write_dataset(path, chunks=6, file_bytes=3 * 20_000):
    writer = DatasetWriter(path, IDENTITY, max_steps=10**9, file_bytes=file_bytes)
    for index in range(chunks):
        chunk = make_chunk(steps=3, envs=1, seed=index)  # about 21 KB each: two or three per file
        writer.insert(encode(chunk.__class__(**{**chunk.__dict__, "actor_id": 0, "chunk_index": index})))
    return writer.close()


def test_corrupted_chunk_is_named_by_file_and_offset_and_the_rest_stays_usable(tmp_path):
    index = write_dataset(tmp_path / "d")
    assert len(index["files"]) >= 2
    first = Dataset.open(tmp_path / "d")
    victim = first.records[1]
    path = tmp_path / "d" / victim.file
    data = bytearray(path.read_bytes())
    data[victim.offset + RECORD_HEADER.size + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"{victim.file}: damaged chunk at byte offset {victim.offset} "
                                           r"\(checksum mismatch\); pass --skip-damaged"):
        Dataset.open(tmp_path / "d")
    rest = Dataset.open(tmp_path / "d", skip_damaged=True)
    assert len(rest.records) == len(first.records) - 1 and len(rest.damage) == 1
    assert [r.offset for r in rest.records if r.file == victim.file] == \
           [r.offset for r in first.records if r.file == victim.file and r != victim]


def test_truncated_file_is_named_and_earlier_chunks_survive(tmp_path):
    index = write_dataset(tmp_path / "d")
    last = tmp_path / "d" / index["files"][-1]["name"]
    whole = Dataset.open(tmp_path / "d")
    tail = [r for r in whole.records if r.file == last.name][-1]
    last.write_bytes(last.read_bytes()[: tail.offset + 50])
    with pytest.raises(DatasetError, match=rf"{last.name}: chunk at byte offset {tail.offset} is truncated"):
        Dataset.open(tmp_path / "d")
    rest = Dataset.open(tmp_path / "d", skip_damaged=True)
    assert len(rest.records) == len(whole.records) - 1
    for record, message in rest.messages():
        decode(message)


def test_writer_refuses_foreign_chunks_and_existing_directories(tmp_path):
    writer = DatasetWriter(tmp_path / "d", IDENTITY, max_steps=100)
    with pytest.raises(ChunkError, match="does not belong"):
        writer.insert(encode(make_chunk(actions=4)))
    with pytest.raises(DatasetError, match="already holds a dataset; choose a new --out or --resume it"):
        DatasetWriter(tmp_path / "d", IDENTITY, max_steps=100)


def test_a_resumed_writer_keeps_whole_chunks_cuts_a_torn_one_and_goes_on(tmp_path):
    import dataclasses

    def chunk(actor, index):
        return encode(dataclasses.replace(make_chunk(seed=index), actor_id=actor, chunk_index=index))

    writer = DatasetWriter(tmp_path / "d", IDENTITY, max_steps=10_000)
    for index in range(3):
        writer.insert(chunk(0, index))
    writer._flush()
    first = next((tmp_path / "d").glob("chunks-*.bin"))
    with open(first, "ab") as torn:  # the process died inside a write
        torn.write(b"ATDC" + b"\x00" * 9)
    with pytest.raises(DatasetError, match="recorded with another epsilon"):
        DatasetWriter(tmp_path / "d", {**IDENTITY, "epsilon": 0.5}, max_steps=10_000, resume=True)
    resumed = DatasetWriter(tmp_path / "d", IDENTITY, max_steps=10_000, resume=True)
    assert resumed.times_resumed() == 1 and resumed.stored_steps() == 3 * make_chunk().steps * make_chunk().envs
    resumed.insert(chunk(1, 0))
    index = resumed.close()
    assert index["resumes"] == 1 and [f["chunks"] for f in index["files"]] == [3, 1]
    dataset = Dataset.open(tmp_path / "d")
    assert not dataset.damage and dataset.steps == index["steps"] and dataset.actors == [0, 1]


def test_dataset_of_another_format_version_is_refused(tmp_path):
    write_dataset(tmp_path / "d", chunks=1)
    index = json.loads((tmp_path / "d" / "index.json").read_text())
    (tmp_path / "d" / "index.json").write_text(json.dumps({**index, "version": 99}))
    with pytest.raises(DatasetError, match="record it again"):
        Dataset.open(tmp_path / "d")


def test_distilling_a_pong_dataset_into_a_breakout_student_is_refused(recorded):
    out, _ = recorded
    with pytest.raises(ConfigError, match="holds pong, not breakout"):
        DistillConfig.from_flags(dataset=str(out), game="breakout").validate()
    cfg = DistillConfig.from_flags(dataset=str(out), min_replay=200).validate()
    assert (cfg.acting.game, cfg.acting.teacher) == ("pong", "random")
    with pytest.raises(ConfigError, match="holds 256 steps, fewer than --min-replay 1,000"):
        DistillConfig.from_flags(dataset=str(out)).validate()


def test_distill_from_a_dataset_with_no_teacher_actors(recorded, tmp_path, capsys):
    out, index = recorded
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    code = launch.main(["distill", "--dataset", str(copy), "--updates", "30", "--log-every", "15",
                        "--checkpoint-every", "30", "--min-replay", "200", "--eval-episodes", "1", "--select-episodes", "1",
                        "--holdout-steps", "200", "--student", "net3", "--out", str(tmp_path / "run")])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["updates"] == 30 and summary["dataset"]["passes"] == 1
    assert summary["steps_labelled"] == index["steps"] == summary["replay"]["replay_size"]
    assert summary["teacher_fingerprint"] == index["teacher"]["fingerprint"]
    assert "memory plan" in capsys.readouterr().out


def test_a_dataset_larger_than_the_replay_streams_through_it(recorded, tmp_path):
    out, index = recorded  # 320 steps in chunks of 64; the replay holds 216
    cfg = DistillConfig.from_flags(dataset=str(out), capacity_hours=0.004, updates=60, log_every=30, checkpoint_every=60,
                        min_replay=100, eval_episodes=1, select_episodes=1, holdout_steps=100, student="net3",
                        out=str(tmp_path / "run")).validate()
    summary = run_distill(cfg, echo=lambda *_: None)
    assert summary["replay"]["replay_size"] <= 216 and summary["replay"]["replay_ratio"] == cfg.replay.replay_ratio
    assert summary["dataset"]["steps"] > summary["replay"]["replay_size"]  # fed more than the ring holds
    assert summary["updates"] == 60
    fed, replay = summary["dataset"], summary["replay"]
    assert fed["passes"] >= 1 and fed["steps"] > fed["dataset_steps"]  # it went round again, and
    assert replay["labelled_steps"] == fed["dataset_steps"] and replay["replayed_steps"] > 0  # counted it once,
    assert replay["stream_restarts"] == 0  # with no actor restarted


def distilled_weights(dataset, out, seed: int, runner: str = "local") -> dict[str, bytes]:
    code = launch.main(["distill", "--runner", runner, "--dataset", str(dataset), "--student", "net3", "--updates", "40",
                        "--seed", str(seed),
                        "--log-every", "40", "--checkpoint-every", "40", "--eval-every", "0", "--min-replay", "200",
                        "--eval-episodes", "1", "--select-episodes", "1", "--eval-workers", "1",
                        "--holdout-steps", "200", "--device", "cpu", "--out", str(out)])
    assert code == 0
    state = torch.load(out / "checkpoints" / "student-00000040.pt", weights_only=True)["model"]
    return {name: tensor.numpy().tobytes() for name, tensor in state.items()}


def test_a_dataset_distilled_on_either_runner_with_one_seed_gives_the_same_student_byte_for_byte(
        recorded, tmp_path, monkeypatch):
    """Ray's actors in their processes and the local runner's threads in one (runners/local.py) train the
    same student; and the second run reads the teacher's and the random policy's report episodes the first
    one played from the score cache: the same scores, not played again."""
    monkeypatch.setenv("ATARI_DISTILL_SCORE_CACHE", str(tmp_path / "cache"))
    out, _ = recorded  # fits the replay, so it is all there before the first batch is drawn
    first, again = (distilled_weights(out, tmp_path / name, seed=1, runner=runner)
                    for name, runner in (("a", "ray"), ("b", "local")))
    assert [name for name in first if first[name] != again[name]] == []  # fails with the shards' shared generator
    played, kept = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("a", "b"))
    assert (played["scores_kept"], kept["scores_kept"]) == ([], ["teacher", "random"])
    assert [(s["teacher_score"], s["random_score"]) for s in (played, kept)] == [
        (played["teacher_score"], played["random_score"])] * 2
    assert len(list((tmp_path / "cache").glob("pong-*.json"))) == 2


FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the kernel's EFBIG stands in for ENOSPC
from atari_distill.models.checkpoint import WriteError
from tests.test_dataset import write_dataset
try:
    write_dataset(sys.argv[1], chunks=20, file_bytes=10**9)
except WriteError as error:
    print(error)
"""


def test_a_full_disk_while_recording_keeps_whole_chunks_and_says_so_in_one_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "d")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "could not write to" in lines[0] and "whole chunks before it" in lines[0], done.stdout
    dataset = Dataset.open(tmp_path / "d")  # no --skip-damaged needed: nothing torn is left
    assert not dataset.damage and 1 <= len(dataset.records) < 20
    size = (tmp_path / "d" / "chunks-00000.bin").stat().st_size
    assert size == sum(RECORD_HEADER.size + r.length for r in dataset.records)
    assert f"{dataset.steps:,} steps" in lines[0]
