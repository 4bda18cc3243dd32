"""The `export` command: a student or teacher as an ONNX (optionally int8) or torch.export file.

Parity comes before the write: the exported model and its PyTorch source play nothing yet, but
both label the same held-out frames (whole episodes the source plays on the protocol's held-out
seeds), and a file whose Q values or greedy actions stray past the tolerance is refused, so
nothing reaches disk that would play differently. int8 is calibrated on half of those frames and
checked on the other half; its cost in play is what `evaluate --checkpoint FILE.onnx` measures.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from atari_distill.actors.env import vector_env_kwargs
from atari_distill.actors.games import action_meanings
from atari_distill.evaluation.holdout import holdout_frames
from atari_distill.evaluation.protocol import EvalProtocol
from atari_distill.models.checkpoint import atomic_write, build_network, fingerprint
from atari_distill.models.export import (EXPORT_FORMAT, EXPORT_VERSION, INPUT_NAME, OnnxQ, Pt2Q, exported_q, onnx_bytes,
                           exported_params, output_name, parity, pt2_bytes, pt2_program, quantize_int8, torch_q,
                           with_metadata)
from atari_distill.pipelines.sections import need
from atari_distill.pipelines.sources import for_game, resolve_model

FLOAT_DQ_TOLERANCE = 1e-3  # of max(1, |Q|) per head: float32 kernels differ by ~1e-6, a wrong graph by far more
FLOAT_MIN_AGREEMENT = 0.99  # float32: only numerical ties may flip a greedy action
# int8's default gate refuses a broken quantisation, not a costly one: where action gaps are small (Ms. Pac-Man)
# a sound int8 model agrees on about 96% of frames, and what that costs in play is for `evaluate` to measure.
INT8_MIN_AGREEMENT = 0.9
SUFFIXES = {".onnx": "onnx", ".pt2": "pt2"}


def default_out(checkpoint: str, game: str | None = None, series: str | None = None, int8: bool = False) -> str:
    """In the run the model came from (RUN/exports/), named for the checkpoint it was read from, with its
    game under --game and -int8: an export never lands in whatever folder the command was typed in, and
    two series, heads or precisions never share a name."""
    path = Path(checkpoint)
    run = path if path.is_dir() else path.parent.parent if path.parent.name in ("checkpoints", "teachers") else None
    need(run is not None and (run / "config.json").is_file(),
         f"{checkpoint!r} is not a run directory or a checkpoint in one; give --out NAME.onnx")
    source = resolve_model(checkpoint, game, series).checkpoint
    name = Path(source or "student").stem + (f"-{game}" if game else "") + ("-int8" if int8 else "")
    return str(run / "exports" / f"{name}.onnx")


def run_export(checkpoint: str, out: str, game: str | None = None, series: str | None = None, int8: bool = False,
               parity_frames: int = 1024, min_agreement: float | None = None, seed: int = 0, force: bool = False,
               echo=print) -> dict:
    """Writes the export to `out` (default_out when empty) and returns its metadata (parity included)."""
    defaulted = not out
    out = out or default_out(checkpoint, game, series, int8)
    target = Path(out)
    form = SUFFIXES.get(target.suffix)
    need(form is not None, f"--out {out!r} must end in .onnx (onnxruntime) or .pt2 (torch.export)")
    need(not (int8 and form != "onnx"), "--int8 quantises an ONNX file; give --out NAME.onnx")
    need(defaulted or target.parent.is_dir(), f"--out {out!r}: folder {str(target.parent)!r} does not exist; create it "
                                              f"first")
    need(force or not target.exists(), f"--out {out!r} exists; choose another name or add --force to replace it")
    need(parity_frames >= 64, f"--parity-frames must be at least 64, got {parity_frames}")
    need(min_agreement is None or int8, "--min-agreement sets the int8 gate; add --int8 (float32 exports must agree "
                                        f"on {FLOAT_MIN_AGREEMENT:.0%} of frames)")
    need(min_agreement is None or 0 < min_agreement <= 1, f"--min-agreement must be in (0, 1], got {min_agreement}")
    model = resolve_model(checkpoint, game, series, seed)
    need(model.payload.get("format") != EXPORT_FORMAT, f"{checkpoint!r} is already exported; export its source "
                                                       f"checkpoint or run directory instead")
    payload, games = model.payload, model.games
    net = build_network(payload).eval()
    protocol = EvalProtocol(seed=seed, holdout_steps=parity_frames)
    echo(f"[export] {', '.join(games)}: {payload['preset']} from {model.source}; playing {parity_frames:,} held-out "
         f"frame(s) per game for the parity check" + (" and as many for int8's calibration" if int8 else ""))
    frames = {g: holdout_frames(g, for_game(payload, g), protocol)[0] for g in games}
    metadata = _metadata(model, net, games, protocol)
    program = pt2_program(net, games) if form == "pt2" else None
    data = onnx_bytes(net, games, metadata) if form == "onnx" else pt2_bytes(program, metadata)
    reference = torch_q(net, frames)
    measured = parity(reference, exported_q(OnnxQ(data) if form == "onnx" else Pt2Q(data), frames))
    for g, head in measured.items():
        tolerance = FLOAT_DQ_TOLERANCE * max(1.0, head.max_abs_q)
        need(head.max_abs_dq <= tolerance and head.agreement >= FLOAT_MIN_AGREEMENT,
             f"the exported model differs from its source on {head.frames:,} held-out {g} frames (max |dQ| "
             f"{head.max_abs_dq:.2g} against a tolerance of {tolerance:.2g}, greedy agreement {head.agreement:.4f} "
             f"against {FLOAT_MIN_AGREEMENT}); nothing was written: report it as a bug")
    metadata["parity"] = {"per_game": {g: head.as_dict() for g, head in measured.items()},
                          "max_dq_tolerance": f"{FLOAT_DQ_TOLERANCE} x max(1, the head's max |Q|)",
                          "min_agreement": FLOAT_MIN_AGREEMENT, "of": "the float32 export",
                          "against": "the PyTorch source model", "frames_from": "held-out seeds, played by the source"}
    if int8:
        calibration = {g: holdout_frames(g, for_game(payload, g), protocol, sticky_actions=True)[0] for g in games}
        data, metadata = _quantise(data, metadata, calibration, frames, reference,
                                   INT8_MIN_AGREEMENT if min_agreement is None else min_agreement)
    else:
        data = onnx_with(data, metadata) if form == "onnx" else pt2_bytes(program, metadata)
    target.parent.mkdir(exist_ok=True)  # RUN/exports/, once there is something to put in it
    atomic_write(target, data)
    metadata["file_bytes"] = len(data)
    return metadata


def onnx_with(data: bytes, metadata: dict) -> bytes:
    """The ONNX file with its final metadata (parity is known only once it exists)."""
    import onnx

    return with_metadata(onnx.load_from_string(data), metadata)


def _quantise(data: bytes, metadata: dict, calibration: dict, frames: dict, reference: dict,
              min_agreement: float) -> tuple[bytes, dict]:
    """int8 calibrated on held-out frames of other episodes (the protocol's sticky held-out seeds), checked per
    head on the parity frames against the PyTorch source."""
    calibrate = np.concatenate(list(calibration.values()))
    quantised = quantize_int8(onnx_with(data, metadata), calibrate)
    measured = parity(reference, exported_q(OnnxQ(quantised), frames))
    worst = min(measured, key=lambda g: measured[g].agreement)
    need(measured[worst].agreement >= min_agreement,
         f"int8 agrees with the source on {measured[worst].agreement:.1%} of {measured[worst].frames:,} held-out "
         f"{worst} frames, below --min-agreement {min_agreement}; nothing was written: export without --int8, or "
         f"accept it with --min-agreement {max(0.5, np.floor(measured[worst].agreement * 100) / 100):.2f}")
    metadata = {**metadata, "precision": "int8", "int8": {
        "per_game": {g: head.as_dict() for g, head in measured.items()}, "min_agreement": min_agreement,
        "method": "onnxruntime quantize_static: QDQ, int8 weights per channel, uint8 activations, MinMax "
                  "calibration; each head's output layer float32", "calibration_frames": int(len(calibrate)),
        "calibration_from": "held-out episodes of other seeds (sticky actions), not the checked frames",
        "against": "the PyTorch float32 source model, on the parity frames"}}
    return onnx_with(quantised, metadata), metadata


def _metadata(model, net, games: list[str], protocol: EvalProtocol) -> dict:
    import onnxruntime
    import torch

    envs = {g: (protocol.as_dict(for_game(model.payload, g))["env_mode"],
                vector_env_kwargs(protocol.env_config(for_game(model.payload, g)))) for g in games}
    return {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "precision": "float32",
        "heads": {g: net.head_sizes[g] for g in games}, "outputs": list(games),
        "output_names": {g: output_name(g) for g in games},
        "action_meanings": {g: list(action_meanings(g)) for g in games},
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": ["batch", 4, 84, 84],
                  "layout": "the last 4 preprocessed frames, oldest first; [0,0,0,frame] at an episode start",
                  "scaling": "none: the graph divides by 255"},
        "preprocessing": {"env": "ale_py.vector_env.AtariVectorEnv", "kwargs": {g: envs[g][1] for g in games},
                          "description": "per game: 84x84 grayscale, max of the last 2 frames, frame skip 4, 4-frame "
                                         "stack, uint8; FIRE on reset only where use_fire_reset says so"},
        "env_modes": {g: envs[g][0] for g in games},
        "preset": net.preset_name, "params": exported_params(net, games), "role": model.payload.get("role"),
        "updates": model.payload.get("updates"), "source": model.source, "source_checkpoint": model.checkpoint,
        "source_fingerprint": fingerprint(model.payload),
        "source_scores": {g: _score(s) for g, s in model.scores.items() if g in games and s},
        "protocol": model.protocol, "exported_with": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                                                      "commit": _commit()},
    }


def _score(result: dict) -> dict:
    return {k: result.get(k) for k in ("mean", "ci95", "episodes")}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def export_lines(metadata: dict, out: str) -> list[str]:
    """The results block `export` ends with."""
    lines = [f"{', '.join(metadata['outputs'])}: {metadata['preset']} ({metadata['params']:,} params) from "
             f"{metadata['source']} -> {out} ({metadata['file_bytes'] / 1e6:.2f} MB, {metadata['precision']})"]
    for game, p in metadata["parity"]["per_game"].items():
        lines.append(f"{game}: float32 export against PyTorch on {p['frames']:,} held-out frames: max |dQ| "
                     f"{p['max_abs_dq']:.1e} (|Q| up to {p['max_abs_q']:.3g}), greedy agreement {p['agreement']:.2%}")
    for game, q in (metadata.get("int8") or {}).get("per_game", {}).items():
        lines.append(f"{game}: int8 against PyTorch on the same frames: greedy agreement {q['agreement']:.2%}, max "
                     f"|dQ| {q['max_abs_dq']:.3g}; its score in play: python launch.py evaluate --checkpoint {out}"
                     + (f" --game {game}" if len(metadata["outputs"]) > 1 else ""))
    for game, score in metadata["source_scores"].items():
        lines.append(f"{game}: the source model scored {score['mean']:.1f} +/- {score['ci95'] or 0:.1f} "
                     f"({score['episodes']} report episodes)")
    return lines
