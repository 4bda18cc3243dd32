import io
import os
import pickle

import pytest
import torch

from atari_distill.models.checkpoint import (MAX_CHECKPOINT_BYTES, CheckpointError, WriteError, build_network, check_plays,
                               load_checkpoint, make_payload, save_checkpoint)
from atari_distill.models.networks import QNetwork


def test_round_trip_rebuilds_the_same_network(tmp_path):
    net = QNetwork("net2", {"pong": 6})
    save_checkpoint(tmp_path / "a.pt", make_payload(net, "student", updates=12))
    payload = load_checkpoint(tmp_path / "a.pt")
    rebuilt = build_network(payload)
    x = torch.randint(0, 255, (3, 4, 84, 84), dtype=torch.uint8)
    assert payload["updates"] == 12
    assert torch.equal(rebuilt(x), net(x))


def test_wrong_game_or_action_count_is_refused(tmp_path):
    payload = make_payload(QNetwork("nature", {"pong": 6}), "teacher")
    with pytest.raises(CheckpointError, match="not breakout"):
        check_plays(payload, "breakout", 4)
    payload["heads"] = {"pong": 5}
    with pytest.raises(CheckpointError, match="5 actions"):
        check_plays(payload, "pong", 6)


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    save_checkpoint(path, make_payload(QNetwork("net3", {"pong": 6}), "student"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="is a damaged PyTorch file"):
        load_checkpoint(path)
    path.write_text("not weights\n")
    with pytest.raises(CheckpointError, match=r"is not a PyTorch file \(it begins b'not weights"):
        load_checkpoint(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    buffer = io.BytesIO()
    torch.save({"format": "atari-distill-checkpoint", "x": _Exploit()}, buffer, pickle_module=pickle)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(path)


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, make_payload(QNetwork("net3", {"pong": 6}), "student", updates=1))
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(WriteError, match="No space left on device.*the previous version is intact"):
        save_checkpoint(path, make_payload(QNetwork("net3", {"pong": 6}), "student", updates=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.pt"
    with open(path, "wb") as handle:  # sparse: takes no disk
        handle.truncate(MAX_CHECKPOINT_BYTES + 1)
    with pytest.raises(CheckpointError, match="over the 2 GiB any preset needs"):
        load_checkpoint(path)
