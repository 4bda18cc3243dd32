"""Teachers trained elsewhere: CleanRL's `.cleanrl_model` and Stable-Baselines3's DQN `.zip`.

Both hold a Nature DQN (conv 32-64-64, fc 512, inputs scaled by 1/255), so each converts
to our `nature` preset by renaming its tensors; nothing is re-implemented and no code in
the file is ever run: CleanRL's state dict and SB3's `policy.pth` load with
`weights_only=True`, and an SB3 zip is read member by member with sizes checked first.

The source is detected from the file: a zip with SB3's members at its top is SB3; a torch file holding our checkpoint
dict is ours; a bare state dict with CleanRL's `network.N` names is CleanRL.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import torch

from atari_distill.models.checkpoint import FORMAT, CheckpointError, make_payload, validate_payload, why_unloadable
from atari_distill.models.networks import QNetwork

SB3_MEMBERS = {"data", "policy.pth", "pytorch_variables.pth", "policy.optimizer.pth",
               "_stable_baselines3_version", "system_info.txt"}
MAX_MEMBER_BYTES = 256 * 1024 * 1024
# Our nature trunk: Sequential(conv, relu, conv, relu, conv, relu, flatten, linear, relu)
CLEANRL_NAMES = {"network.0": "trunk.0", "network.2": "trunk.2", "network.4": "trunk.4", "network.7": "trunk.7"}
SB3_NAMES = {"q_net.features_extractor.cnn.0": "trunk.0", "q_net.features_extractor.cnn.2": "trunk.2",
             "q_net.features_extractor.cnn.4": "trunk.4", "q_net.features_extractor.linear.0": "trunk.7"}


def _load_torch(data, source: str):
    try:
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{source} {why_unloadable(data, error)}; "
                              f"give our checkpoint, a CleanRL .cleanrl_model or an SB3 DQN .zip") from None


def _rename(state: dict, names: dict[str, str], head: str, game: str, source: str) -> tuple[dict, int]:
    """Our nature state dict from another's; refuses any tensor it does not expect."""
    model, expected = {}, set()
    for theirs, ours in [*names.items(), (head, f"heads.{game}")]:
        for kind in ("weight", "bias"):
            key = f"{theirs}.{kind}"
            expected.add(key)
            if key not in state:
                raise CheckpointError(f"{source} lacks {key!r}; only Nature-DQN teachers can be imported")
            model[f"{ours}.{kind}"] = state[key]
    num_actions = int(model[f"heads.{game}.weight"].shape[0])
    reference = QNetwork("nature", {game: num_actions}).state_dict()
    for key, tensor in model.items():
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(reference[key].shape):
            raise CheckpointError(f"{source}: {key} has shape {tuple(getattr(tensor, 'shape', ()))}, a Nature DQN "
                                  f"has {tuple(reference[key].shape)}")
        model[key] = tensor.detach().float().clone()
    return model, num_actions


def _from_cleanrl(state: dict, game: str, source: str) -> dict:
    model, actions = _rename(state, CLEANRL_NAMES, "network.9", game, source)
    extra = {"source": source, "imported_from": "cleanrl", "env_mode": "cleanrl"}
    return _payload(model, game, actions, extra)


def _from_sb3(path: Path, game: str, source: str) -> dict:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{source} is not a readable zip ({error})") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        unexpected = set(members) - SB3_MEMBERS
        if unexpected or "policy.pth" not in members:
            raise CheckpointError(f"{source} is not a Stable-Baselines3 model zip (unexpected members "
                                  f"{sorted(unexpected)[:5]}, policy.pth {'present' if 'policy.pth' in members else 'missing'})")
        for name in ("policy.pth", "data"):
            if name in members and members[name].file_size > MAX_MEMBER_BYTES:
                raise CheckpointError(f"{source}: {name} declares {members[name].file_size} bytes, over the "
                                      f"{MAX_MEMBER_BYTES} limit for a DQN")
        data = {}
        if "data" in members:
            try:
                data = json.loads(_member(archive, "data", source))
            except ValueError:
                raise CheckpointError(f"{source}: its 'data' member is not JSON") from None
            if not isinstance(data, dict):
                raise CheckpointError(f"{source}: its 'data' member is not a JSON object")
        policy = str(data.get("policy_class", {}).get(":type:", "") if isinstance(data.get("policy_class"), dict)
                     else data.get("policy_class", ""))
        kwargs = data.get("policy_kwargs", {}) if isinstance(data.get("policy_kwargs"), dict) else {}
        if kwargs.get("normalize_images") is False:
            raise CheckpointError(f"{source} was trained without image normalisation; only CnnPolicy defaults are supported")
        state = _load_torch(io.BytesIO(_member(archive, "policy.pth", source)), source)
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: policy.pth is not a state dict")
    model, actions = _rename(state, SB3_NAMES, "q_net.q_net.0", game, source)
    extra = {"source": source, "imported_from": "stable-baselines3", "env_mode": "sb3", "sb3_policy": policy}
    return _payload(model, game, actions, extra)


def _member(archive: zipfile.ZipFile, name: str, source: str) -> bytes:
    """A member's bytes, its CRC-32 checked by the read: a damaged zip is refused, never read as other weights."""
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        raise CheckpointError(f"{source} is a damaged zip ({name}: {str(error).splitlines()[0][:100]})") from None


def _payload(model: dict, game: str, num_actions: int, extra: dict) -> dict:
    net = QNetwork("nature", {game: num_actions})
    net.load_state_dict(model)
    return make_payload(net, "teacher", extra=extra)


def _looks_like_sb3(path: Path) -> bool:
    """torch.save also writes zips, but keeps everything under one folder; SB3 puts its members at the top."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(SB3_MEMBERS & set(archive.namelist()))
    except (zipfile.BadZipFile, OSError):
        return False


def read_teacher_file(path: str | Path, game: str) -> dict:
    """Any supported teacher file as our payload; an imported one gets a head named for `game`."""
    path = Path(path)
    source = f"teacher {str(path)!r}"
    if not path.is_file():
        raise CheckpointError(f"{source} does not exist; give a checkpoint path or 'random'")
    if _looks_like_sb3(path):
        return _from_sb3(path, game, source)
    loaded = _load_torch(path, source)
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        validate_payload(loaded, source)
        return loaded
    if isinstance(loaded, dict) and any(str(k).startswith("network.") for k in loaded):
        return _from_cleanrl(loaded, game, source)
    raise CheckpointError(f"{source} is neither our checkpoint, a CleanRL .cleanrl_model state dict nor an SB3 "
                          f"DQN .zip")
