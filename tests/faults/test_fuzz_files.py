"""Every file we read, damaged on purpose: seeded truncations and bit flips, in-process.

Each damaged copy must be refused with one line naming the problem (a ValueError of ours, as
launch.py prints it), or, where a checksum allows, skipped cleanly; never a crash, a hang
or a silently wrong value. Binary formats carry checksums (checkpoints, dataset chunks, an
SB3 zip's CRCs), so a damaged one never loads as different data. JSON files carry none: a
flipped digit can still parse as another valid value; those are counted, and each must at
least pass the reader's type checks.
"""

import contextlib
import json
import random
import signal
import zipfile

import numpy as np
import pytest
import torch

from atari_distill.actors.teacher_formats import CLEANRL_NAMES, SB3_NAMES, read_teacher_file
from atari_distill.cluster.registry import CheckpointRegistry
from atari_distill.models.checkpoint import content_digest, load_checkpoint, make_payload, save_checkpoint
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.config import DistillConfig
from atari_distill.rundir.directory import RunDir
from atari_distill.rundir.summary import Summary
from atari_distill.replay.chunk import Chunk, encode
from atari_distill.replay.dataset import Dataset, DatasetWriter

pytestmark = pytest.mark.xdist_group("test_fuzz_files")  # its module-scoped fixture is built once

CASES = 40


def damaged(data: bytes, seed: int, cases: int = CASES):
    """Half truncations at a random length, half one flipped bit (a third of them in the first 256 bytes,
    where the structure is)."""
    rng = random.Random(seed)
    for case in range(cases):
        if case % 2:
            yield f"truncated to {(n := rng.randrange(len(data)))} bytes", data[:n]
        else:
            position = rng.randrange(min(256, len(data))) if case % 3 == 0 else rng.randrange(len(data))
            flipped = bytearray(data)
            flipped[position] ^= 1 << rng.randrange(8)
            yield f"bit flipped at byte {position}", bytes(flipped)


@contextlib.contextmanager
def deadline(seconds: float):
    def hung(*_):
        raise AssertionError(f"the reader hung for more than {seconds}s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcomes(original: bytes, path, read, same, seed: int) -> dict[str, int]:
    """Feeds every damaged copy to `read`; each must be refused in one line or read back; counts
    how each ended: refused, same (equal to the intact file's reading) or changed."""
    expected = None
    path.write_bytes(original)
    with deadline(30):
        expected = read(path)
    counts = {"refused": 0, "same": 0, "changed": 0}
    for what, data in damaged(original, seed):
        path.write_bytes(data)
        try:
            with deadline(30):
                got = read(path)
        except ValueError as error:
            assert "\n" not in str(error).strip(), f"{what}: a multi-line error: {error}"
            assert "Traceback" not in str(error)
            counts["refused"] += 1
            continue
        counts["same" if same(got, expected) else "changed"] += 1
    return counts


def equal_payloads(a: dict, b: dict) -> bool:
    return content_digest(a) == content_digest(b)


def test_a_damaged_checkpoint_is_refused_never_loaded_different(tmp_path):
    net = QNetwork("net3", {"pong": 6})
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8), "pong").sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "intact.pt", make_payload(net, "student", updates=300, optimizer=optimizer.state_dict(),
                                                         extra={"game": "pong"}))
    counts = outcomes((tmp_path / "intact.pt").read_bytes(), tmp_path / "ckpt.pt", load_checkpoint, equal_payloads, 1)
    assert counts["changed"] == 0 and counts["refused"] >= CASES // 2, counts


def test_a_damaged_teacher_file_of_ours_is_refused_as_a_teacher_too(tmp_path):
    save_checkpoint(tmp_path / "intact.pt", make_payload(QNetwork("net3", {"pong": 6}), "teacher"))
    counts = outcomes((tmp_path / "intact.pt").read_bytes(), tmp_path / "teacher.pt",
                      lambda p: read_teacher_file(p, "pong"), equal_payloads, 2)
    assert counts["changed"] == 0, counts


def nature_state(names: dict[str, str], head: str) -> dict:
    ours = QNetwork("nature", {"pong": 6}).state_dict()
    state = {}
    for theirs, mine in [*names.items(), (head, "heads.pong")]:
        for kind in ("weight", "bias"):
            state[f"{theirs}.{kind}"] = ours[f"{mine}.{kind}"]
    return state


def test_a_damaged_cleanrl_file_is_refused_or_reads_as_a_nature_dqn(tmp_path):
    """CleanRL's format has no checksum of ours: a flip inside a weight reads as another weight."""
    torch.save(nature_state(CLEANRL_NAMES, "network.9"), tmp_path / "intact.cleanrl_model")
    counts = outcomes((tmp_path / "intact.cleanrl_model").read_bytes(), tmp_path / "dqn.cleanrl_model",
                      lambda p: read_teacher_file(p, "pong"), equal_payloads, 3)
    assert counts["refused"] >= CASES // 2, counts


def test_a_damaged_sb3_zip_is_refused_never_loaded_different(tmp_path):
    """An SB3 zip's members carry CRC-32s, which a read checks."""
    import io

    policy = io.BytesIO()
    torch.save(nature_state(SB3_NAMES, "q_net.q_net.0"), policy)
    with zipfile.ZipFile(tmp_path / "intact.zip", "w") as archive:
        archive.writestr("data", json.dumps({"policy_class": {":type:": "<class 'CnnPolicy'>"}}))
        archive.writestr("policy.pth", policy.getvalue())
        archive.writestr("_stable_baselines3_version", "2.3.0")
    counts = outcomes((tmp_path / "intact.zip").read_bytes(), tmp_path / "dqn.zip",
                      lambda p: read_teacher_file(p, "pong"), equal_payloads, 4)
    assert counts["changed"] == 0, counts


def json_cases(tmp_path, name: str, record, read, seed: int) -> dict[str, int]:
    text = json.dumps(record, indent=2).encode()
    return outcomes(text, tmp_path / name, read, lambda a, b: a == b, seed)


def test_damaged_run_files_are_refused_in_one_line(tmp_path):
    run = RunDir.create(tmp_path / "run", DistillConfig.from_flags().validate().to_json())
    config = json.loads((run.path / "config.json").read_text())
    totals = {}
    totals["config"] = json_cases(run.path, "config.json", config,
                                  lambda p: DistillConfig.from_dict(RunDir(p.parent).read_config()).validate(), 5)
    summary = Summary("distill", True, {"updates": 300, "student_score": {"mean": 1.5}}, 12.5).as_dict()
    totals["summary"] = json_cases(tmp_path, "summary.json", summary, lambda p: Summary.read(p.parent), 6)
    registry = CheckpointRegistry(tmp_path / "registry.json")
    for version, score in ((1, 3.0), (2, 5.0)):
        registry.register(version, f"teachers/teacher-{version:06d}.pt", version * 250_000)
        registry.report(version, score, 0.5, 8)
    state = json.loads((tmp_path / "registry.json").read_text())

    def read_registry(path):
        loaded = CheckpointRegistry(path)
        return loaded.best(), loaded.history()
    totals["registry"] = json_cases(tmp_path, "registry.json", state, read_registry, 7)
    print(totals)
    assert all(sum(c.values()) == CASES for c in totals.values())


def chunk(actor: int, index: int, seed: int) -> Chunk:
    rng = np.random.default_rng(seed)
    return Chunk(game="pong", actor_id=actor, chunk_index=index, teacher_version=0,
                 frames=rng.integers(0, 255, (8, 2, 84, 84), np.uint8), q=rng.standard_normal((8, 2, 6), np.float32),
                 actions=rng.integers(0, 6, (8, 2)).astype(np.uint8), rewards=np.zeros((8, 2), np.float32),
                 first=np.zeros((8, 2), bool), terminated=np.zeros((8, 2), bool), truncated=np.zeros((8, 2), bool))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ds"
    writer = DatasetWriter(path, {"game": "pong", "num_actions": 6, "teacher": {"source": "random", "seed": 0}},
                           max_steps=10_000)
    messages = [encode(chunk(actor, index, 10 * actor + index)) for actor in range(2) for index in range(4)]
    for message in messages:
        writer.insert(message)
    writer.close()
    return path, messages


def test_a_damaged_dataset_index_is_refused_in_one_line(dataset, tmp_path):
    import shutil

    path, _ = dataset
    copy = tmp_path / "ds"
    shutil.copytree(path, copy)
    counts = outcomes((path / "index.json").read_bytes(), copy / "index.json",
                      lambda p: Dataset.open(p.parent).steps, lambda a, b: a == b, 8)
    assert sum(counts.values()) == CASES


def test_a_damaged_chunk_file_is_refused_or_skipped_cleanly(dataset, tmp_path):
    """With --skip-damaged every chunk left is one that was written, whole; without it, one line."""
    import shutil

    path, messages = dataset
    data_file = next(p for p in path.iterdir() if p.name != "index.json")
    copy = tmp_path / "ds"
    shutil.copytree(path, copy)
    for what, data in damaged(data_file.read_bytes(), 9):
        (copy / data_file.name).write_bytes(data)
        with deadline(30):
            try:
                Dataset.open(copy)
                strict_ok = True
            except ValueError as error:
                assert "\n" not in str(error).strip(), what
                strict_ok = False
            try:
                skipping = Dataset.open(copy, skip_damaged=True)
                kept, damage = [message for _, message in skipping.messages()], skipping.damage
            except ValueError as error:  # nothing readable is left
                assert "no readable chunks" in str(error), what
                kept, damage = [], ["all"]
        assert set(kept) <= set(messages), f"{what}: a damaged chunk was read as data"
        assert strict_ok == (len(kept) == len(messages) and not damage), what


SWAPS = (None, [], {}, "x", -1, 1.5, True, [1], {"a": 1})


def shapes(record: dict):
    """The record with each field (and each field of its first nested record) swapped for other types."""
    yield "a list", []
    yield "a string", "x"
    for key, value in record.items():
        for swap in SWAPS:
            yield f"{key} = {swap!r}", {**record, key: swap}
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for inner in value[0]:
                for swap in SWAPS:
                    yield f"{key}[0].{inner} = {swap!r}", {**record, key: [{**value[0], inner: swap}, *value[1:]]}


def test_wrong_shapes_are_refused_in_one_line(tmp_path, dataset):
    """Valid JSON of the wrong shape (a field of another type, a list for a record): a bug in
    another tool, or a hand edit gone wrong. Every reader refuses it in one line or reads it."""
    import shutil

    run = RunDir.create(tmp_path / "run", DistillConfig.from_flags().validate().to_json())
    registry = CheckpointRegistry(tmp_path / "registry.json")
    registry.register(1, "teachers/teacher-000001.pt", 250_000)
    registry.report(1, 3.0, 0.5, 8)
    copy = tmp_path / "ds"
    shutil.copytree(dataset[0], copy)

    def read_registry(path):
        loaded = CheckpointRegistry(path)
        return loaded.best(), loaded.history()
    files = {
        run.path / "config.json": lambda p: DistillConfig.from_dict(RunDir(p.parent).read_config()).validate(),
        tmp_path / "summary.json": lambda p: Summary.read(p.parent),
        tmp_path / "registry.json": read_registry,
        copy / "index.json": lambda p: Dataset.open(p.parent).steps,
    }
    Summary("teacher", True, {"frames": 10}, 1.0).write(tmp_path)
    tried = 0
    for path, read in files.items():
        record = json.loads(path.read_text())
        for what, shape in shapes(record):
            path.write_text(json.dumps(shape))
            try:
                with deadline(30):
                    read(path)
            except ValueError as error:
                assert "\n" not in str(error).strip(), f"{path.name} with {what}: {error}"
            tried += 1
    assert tried > 300
