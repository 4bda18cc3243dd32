"""Exported networks: files a user takes away and runs without this project.

An export maps the uint8 stacks the environment emits, (N, 4, 84, 84), to one Q vector per
head, output `q_GAME`; scaling to [0, 1] is inside the graph, as it is inside QNetwork, so a
caller ships bytes. Two forms: ONNX (run by onnxruntime, optionally int8) and torch.export's
.pt2 (torch 2.13's maintained path; TorchScript is deprecated there). Both carry one JSON
record under METADATA_KEY: the games with their action counts and meanings, the preprocessing
the network expects (the exact AtariVectorEnv settings), preset, parameters, the source's
fingerprint and protocol score, and the parity measured before the file was written. Readers
refuse a file without it, or with another shape, in one line.

No Ray, no pipelines: `evaluation/episodes.py` plays what `load_exported` returns as it plays a checkpoint.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from atari_distill.models.networks import QNetwork

EXPORT_FORMAT = "atari-distill-export"
EXPORT_VERSION = 1
METADATA_KEY = "atari_distill"
INPUT_NAME = "obs"
INPUT_SHAPE = (4, 84, 84)
OPSET = 20
FORMATS = ("onnx", "pt2")


class ExportError(ValueError):
    pass


def output_name(game: str) -> str:
    return f"q_{game}"


class AllHeads(nn.Module):
    """The network as an exported graph sees it: one uint8 input, one Q output per head, in head order."""

    def __init__(self, net: QNetwork, games: list[str] | None = None):
        super().__init__()
        self.net = net.eval()
        self.games = list(games or net.head_sizes)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.net.trunk(obs.float() / 255.0)
        return tuple(self.net.heads[game](features) for game in self.games)


def _example() -> torch.Tensor:
    return torch.zeros((2, *INPUT_SHAPE), dtype=torch.uint8)


def onnx_bytes(net: QNetwork, games: list[str], metadata: dict) -> bytes:
    """The network's `games` heads as one self-contained ONNX file (weights inside), batch dimension dynamic."""
    import logging
    import warnings

    import onnx

    module = AllHeads(net, games)
    batch = torch.export.Dim("batch")
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = registry.level
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry.setLevel(logging.ERROR)
        path = Path(folder) / "model.onnx"
        torch.onnx.export(module, (_example(),), str(path), dynamo=True, external_data=False, verbose=False,
                          input_names=[INPUT_NAME], output_names=[output_name(g) for g in module.games],
                          dynamic_shapes={"obs": {0: batch}}, opset_version=OPSET)
        model = onnx.load(str(path))
        registry.setLevel(level)
    return with_metadata(model, metadata)


def with_metadata(model, metadata: dict) -> bytes:
    """`model` (an onnx.ModelProto) serialised with our record as its only METADATA_KEY entry."""
    for prop in [p for p in model.metadata_props if p.key == METADATA_KEY]:
        model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata, sort_keys=True))
    model.producer_name = "atari-distill"
    return model.SerializeToString()


def pt2_program(net: QNetwork, games: list[str]):
    """The network's `games` heads as a torch.export program, batch dimension dynamic."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(AllHeads(net, games), (_example(),),
                                   dynamic_shapes={"obs": {0: torch.export.Dim("batch")}})


def pt2_bytes(program, metadata: dict) -> bytes:
    """`program` saved with our record as the extra file METADATA_KEY.json."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={f"{METADATA_KEY}.json": json.dumps(metadata, sort_keys=True)})
    return buffer.getvalue()


def exported_params(net: QNetwork, games: list[str]) -> int:
    """Parameters of the trunk and the exported heads only (a multi-task student exported with one --game)."""
    return sum(p.numel() for p in net.trunk.parameters()) + sum(
        p.numel() for g in games for p in net.heads[g].parameters())


class Pt2Q:
    """A torch.export program as a Q function, called as OnnxQ is.

    torch.export.load unpickles a weight stored as a pickle, and retries a failed artifact, with
    `weights_only=False`: a .pt2 could run code as it loads. Every torch.load under it is forced to
    read tensors only (torch's own TORCH_FORCE_WEIGHTS_ONLY_LOAD), so such a file is refused instead."""

    def __init__(self, data: bytes):
        import os
        import pickle

        extra = {f"{METADATA_KEY}.json": ""}
        before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
        try:
            program = torch.export.load(io.BytesIO(data), extra_files=extra)
        except pickle.UnpicklingError:
            raise ExportError("this .pt2 holds pickled Python objects, which could run code as they load, and is "
                              "refused; export the checkpoint again with `python launch.py export CHECKPOINT "
                              "--out NAME.pt2`") from None
        finally:
            if before is None:
                os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
            else:
                os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = before
        self.games = json.loads(extra[f"{METADATA_KEY}.json"])["outputs"]
        self.module = program.module()

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            values = self.module(torch.from_numpy(np.ascontiguousarray(obs, dtype=np.uint8)))
        return {game: q.numpy() for game, q in zip(self.games, values)}


class OnnxQ:
    """An onnxruntime session as a Q function: uint8 (N, 4, 84, 84) -> {game: (N, A) float32}."""

    def __init__(self, data: bytes, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(obs, dtype=np.uint8)})
        return {name[len("q_"):]: q for name, q in zip(self.outputs, values)}


def quantize_int8(data: bytes, calibration: np.ndarray, batch: int = 32) -> bytes:
    """Static post-training quantisation (QDQ, int8 weights per channel, uint8 activations), calibrated
    on `calibration` frames: onnxruntime's recommended form for CNNs on CPU. Each head's output layer
    stays float32: it is a sliver of the arithmetic, and quantising the Q values themselves (a 1/256 step
    of their range) flips greedy actions wherever a teacher's action gaps are small (Ms. Pac-Man: 89%
    agreement with it, 96% without). The metadata rides along."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        source, prepared, target = (Path(folder) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(data)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        outputs = {o.name for o in graph.output}
        heads = [node.name for node in graph.node if outputs & set(node.output)]
        quantize_static(str(prepared), str(target), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=heads)
        model = onnx.load(str(target))
    return with_metadata(model, read_onnx_metadata(data, "the float model"))


@dataclass(frozen=True)
class Parity:
    """How far an exported model's Q values and greedy actions are from its source's, on the same frames."""
    frames: int
    max_abs_dq: float
    max_abs_q: float
    agreement: float

    def as_dict(self) -> dict:
        return {"frames": self.frames, "max_abs_dq": self.max_abs_dq, "max_abs_q": self.max_abs_q,
                "agreement": self.agreement}


def parity(reference: dict[str, np.ndarray], exported: dict[str, np.ndarray]) -> dict[str, Parity]:
    """Per head: the largest |dQ|, the largest |Q| (the scale it is read against), greedy agreement. Per head,
    so one broken head of ten is not averaged away."""
    return {g: Parity(len(reference[g]), float(np.abs(reference[g] - exported[g]).max()),
                      float(np.abs(reference[g]).max()),
                      float((reference[g].argmax(1) == exported[g].argmax(1)).mean())) for g in reference}


def torch_q(net: QNetwork, frames: dict[str, np.ndarray], batch: int = 256) -> dict[str, np.ndarray]:
    """The source network's Q values on each game's frames (float32, like the export)."""
    out = {}
    with torch.inference_mode():
        for game, obs in frames.items():
            out[game] = np.concatenate([net(torch.from_numpy(np.ascontiguousarray(obs[i:i + batch])), game).numpy()
                                        for i in range(0, len(obs), batch)])
    return out


def exported_q(q_fn, frames: dict[str, np.ndarray], batch: int = 256) -> dict[str, np.ndarray]:
    return {game: np.concatenate([q_fn(obs[i:i + batch])[game] for i in range(0, len(obs), batch)])
            for game, obs in frames.items()}


def read_onnx_metadata(data: bytes, source: str) -> dict:
    """Our record from an ONNX file's bytes, or a one-line refusal of a file that is not one of ours."""
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception:
        raise ExportError(f"{source} is not a readable ONNX file (damaged or truncated); export it again with "
                          f"python launch.py export") from None
    records = [p.value for p in model.metadata_props if p.key == METADATA_KEY]
    if not records:
        raise ExportError(f"{source} has no {METADATA_KEY} metadata, so its game and preprocessing are unknown; "
                          f"export the model with python launch.py export")
    metadata = json.loads(records[0])
    if metadata.get("format") != EXPORT_FORMAT or metadata.get("version") != EXPORT_VERSION:
        raise ExportError(f"{source} is format {metadata.get('format')!r} version {metadata.get('version')!r}; this "
                          f"build reads {EXPORT_FORMAT} version {EXPORT_VERSION}: export it again")
    _check_graph(model, metadata, source)
    return metadata


def _check_graph(model, metadata: dict, source: str) -> None:
    """The graph takes uint8 (N, 4, 84, 84) and gives one (N, A) output per game its metadata names."""
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    shape = lambda value: [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]  # noqa: E731
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != 2 or shape(inputs[0])[1:] != list(INPUT_SHAPE):
        found = ", ".join(f"{i.name} {shape(i)}" for i in inputs)
        raise ExportError(f"{source} takes {found}, not one uint8 input of shape (N, 4, 84, 84) (the stacks "
                          f"the environment emits); export the model with python launch.py export")
    outputs = {o.name: shape(o) for o in model.graph.output}
    for game, actions in metadata["heads"].items():
        if outputs.get(output_name(game), [None, None])[1:] != [actions]:
            raise ExportError(f"{source}: its metadata names {game} with {actions} actions, but the graph's outputs "
                              f"are {outputs}; the file was altered: export it again")


def load_exported(path: str | Path) -> dict:
    """An exported ONNX file as a payload evaluation plays like a checkpoint's: `heads`, and `extra` with the
    env mode the network was trained in; `format` EXPORT_FORMAT tells evaluation/episodes.py to run onnxruntime."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"exported model {str(path)!r} does not exist; write one with python launch.py export")
    data = path.read_bytes()
    metadata = read_onnx_metadata(data, f"exported model {str(path)!r}")
    try:
        OnnxQ(data)
    except Exception as error:
        raise ExportError(f"exported model {str(path)!r} does not load in onnxruntime "
                          f"({str(error).strip().splitlines()[0][:120]}); export it again") from None
    modes = dict(metadata["env_modes"])
    extra = {"env_modes": modes, "source": str(path)}
    if len(modes) == 1:  # the one game's mode, as a single-game checkpoint states it
        extra["env_mode"] = next(iter(modes.values()))
    return {"format": EXPORT_FORMAT, "data": data, "metadata": metadata, "heads": dict(metadata["heads"]),
            "extra": extra}


def is_exported(source: str) -> bool:
    return str(source).endswith(".onnx")
