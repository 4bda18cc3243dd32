"""Our one checkpoint format, for teachers and students alike.

A checkpoint is a dict of plain types and tensors saved with torch.save and read with
torch.load(weights_only=True), so loading never runs code. It names its architecture
(preset and heads: game -> action count) so it can be rebuilt and checked against the
game it is asked to play. Writes go to a temp file in the same folder, then rename, so a
crash or a full disk leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch

from atari_distill.models.networks import QNetwork, UnknownPresetError, canonical_preset, parameter_count

FORMAT = "atari-distill-checkpoint"
VERSION = 1
ROLES = ("teacher", "student")
CHECKSUM = "checksum"


class CheckpointError(ValueError):
    pass


MAX_CHECKPOINT_BYTES = 2 << 30  # the multi-task preset with RMSprop state is about 0.1 GiB


class WriteError(ValueError):
    """A file could not be written (disk full, quota, permissions); the previous version is intact."""


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the folder: a reader sees the old file or the new one, never
    a mix, whatever stops the writer (a full disk, a second Ctrl-C, a crash)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as error:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        kept = "the previous version is intact" if path.exists() else "nothing was written"
        raise WriteError(f"could not write {str(path)!r} ({error.strerror or error}); {kept}; free disk space "
                         f"(or fix permissions) and --resume the run") from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def make_payload(net: QNetwork, role: str, updates: int = 0, version: int = 0,
                 optimizer: dict | None = None, extra: dict | None = None) -> dict:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return {
        "format": FORMAT, "version": VERSION, "role": role,
        "preset": net.preset_name, "heads": dict(net.head_sizes),
        "updates": int(updates), "teacher_version": int(version),
        "model": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "optimizer": optimizer, "extra": dict(extra or {}),
    }


def content_digest(payload: dict) -> str:
    """sha256 of everything a checkpoint holds: each tensor's bytes and every other value with its place.

    torch's zip format does not check its entries' CRCs on load, so a flipped bit in the
    weights would load as a silently different network; this digest, written with the
    checkpoint and checked on load, turns that into a one-line refusal."""
    digest = hashlib.sha256()

    def walk(place: str, value) -> None:
        if isinstance(value, torch.Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{place}|{value.dtype}|{tuple(value.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        elif isinstance(value, dict):
            for key in sorted(value, key=repr):
                walk(f"{place}/{key!r}", value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"{place}|{type(value).__name__}{len(value)}".encode())
            for i, item in enumerate(value):
                walk(f"{place}/{i}", item)
        else:
            digest.update(f"{place}={value!r}".encode())

    walk("", {k: v for k, v in payload.items() if k != CHECKSUM})
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save({**payload, CHECKSUM: content_digest(payload)}, buffer)
    atomic_write(path, buffer.getvalue())


def why_unloadable(source: str | os.PathLike | io.BytesIO, error: Exception) -> str:
    """What torch.load's refusal means for the user: not a PyTorch file, a damaged one, or one that could run code."""
    if isinstance(source, io.BytesIO):
        head = source.getvalue()[:16]
    else:
        with open(source, "rb") as file:
            head = file.read(16)
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):  # torch's zip format, or a legacy pickle
        return f"is not a PyTorch file (it begins {head!r})"
    if "Weights only load failed" in str(error):
        return "holds objects other than tensors and plain types, so it cannot be read safely (it could run code)"
    first_line = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
    return f"is a damaged PyTorch file ({first_line})"


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; give the path of a .pt file")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:  # before torch reads it into memory
        raise CheckpointError(f"checkpoint {str(path)!r} is {size / 2**30:.1f} GiB, over the {MAX_CHECKPOINT_BYTES >> 30} "
                              f"GiB any preset needs with its optimizer state; it is not one of ours")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"checkpoint {str(path)!r} {why_unloadable(path, error)}; "
                              f"use an intact checkpoint of this project") from None
    validate_payload(payload, f"checkpoint {str(path)}")
    return payload


def validate_payload(payload, source: str = "checkpoint") -> None:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a {FORMAT} file; give a checkpoint written by this project")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{source} has format version {payload.get('version')!r}; this build reads {VERSION}")
    try:
        canonical_preset(payload.get("preset"))
    except UnknownPresetError as error:
        raise CheckpointError(f"{source}: {error}") from None
    heads = payload.get("heads")
    if not isinstance(heads, dict) or not heads or not all(
        isinstance(g, str) and isinstance(n, int) and 0 < n <= 256 for g, n in heads.items()
    ):
        raise CheckpointError(f"{source} has a malformed 'heads' entry: {heads!r}")
    if not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"{source} has no model weights")
    written = payload.pop(CHECKSUM, None)  # checkpoints from before checksums (and the zoo's, checked by card) have none
    if written is not None and written != content_digest(payload):
        raise CheckpointError(f"{source} is damaged: its contents do not match the checksum written with it; use "
                              f"an intact checkpoint (a resume falls back to the one before)")


def build_network(payload: dict) -> QNetwork:
    net = QNetwork(payload["preset"], payload["heads"])
    try:
        net.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint weights do not match preset {payload['preset']!r}: "
                              f"{str(error).splitlines()[0]}") from None
    return net


def check_plays(payload: dict, game: str, num_actions: int, source: str = "checkpoint") -> None:
    heads = payload["heads"]
    if game not in heads:
        raise CheckpointError(f"{source} was trained for {', '.join(heads)}, not {game}; pick a checkpoint for {game}")
    if heads[game] != num_actions:
        raise CheckpointError(
            f"{source} has {heads[game]} actions for {game}, but {game}'s minimal action set has {num_actions}"
        )


def payload_params(payload: dict) -> int:
    return parameter_count(QNetwork(payload["preset"], payload["heads"]))


def fingerprint(payload: dict) -> str:
    """A digest of the architecture and weights: names a teacher independent of its file."""
    digest = hashlib.sha256(f"{payload['preset']}|{sorted(payload['heads'].items())}".encode())
    for name in sorted(payload["model"]):
        digest.update(name.encode())
        digest.update(payload["model"][name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
