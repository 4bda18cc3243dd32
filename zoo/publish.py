"""Publishing a teacher run into the zoo: score it beside the random policy, keep its weights
in half precision where no greedy action changes, and write its card (zoo/catalog.py reads it)."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

from zoo.catalog import (CARD_EPISODES, CARD_FORMAT, CARD_NOOP_MAX, HALF_CHECK_STEPS, ZOO_DIR, ZooError, as_float32,
                         card, file_digest)


def half_precision_keeps_actions(payload: dict, frames) -> tuple[bool, int]:
    """Whether fp16-rounded weights pick the same greedy action as the fp32 ones on every frame."""
    import torch

    from models.checkpoint import build_network

    full = build_network(payload).eval()
    rounded = build_network({**payload, "model": {k: v.half().float() if v.is_floating_point() else v
                                                  for k, v in payload["model"].items()}}).eval()
    with torch.inference_mode():
        same = (full(frames).argmax(1) == rounded(frames).argmax(1)).sum().item()
    return same == len(frames), int(same)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def publish(run_path: str, episodes: int = 30, workers: int = 2, version: int | None = None,
            zoo_dir: Path | None = None, commit: str | None = None, echo=print) -> dict:
    """Adds a teacher run's best checkpoint (or `version`) to the zoo, scored beside the random policy."""
    import torch

    from actors.env import EVAL_SEED_OFFSET, HOLDOUT_SEED_OFFSET, env_config_for
    from actors.evaluate import evaluate_parallel
    from actors.games import game_spec
    from actors.rollout import TeacherRollout
    from actors.teachers import load_teacher
    from cluster.registry import CheckpointRegistry
    from models.checkpoint import fingerprint, load_checkpoint, payload_params, save_checkpoint
    from models.networks import canonical_preset
    from pipelines.rundir import RunDir

    zoo_dir = zoo_dir or ZOO_DIR
    if episodes < CARD_EPISODES:
        raise ZooError(f"a zoo card needs at least {CARD_EPISODES} episodes per evaluation, got --episodes {episodes}")
    run = RunDir.open(run_path)
    config = run.read_config()
    registry = CheckpointRegistry(run.path / "registry.json")
    entry = registry.entries.get(version) if version is not None else registry.best()
    if entry is None:
        raise ZooError(f"{run_path!r} has no scored teacher checkpoint" + (f" version {version}" if version else "")
                       + "; give a teacher run's --out")
    spec = game_spec(config["game"])
    payload = load_checkpoint(entry["checkpoint"])
    mode = payload["extra"].get("env_mode", "native")  # a teacher trained with FIRE on reset is played so
    payload = {**payload, "preset": canonical_preset(payload["preset"]), "optimizer": None, "role": "teacher",
               "extra": {"env_mode": mode}}
    env_config = env_config_for(mode, payload, CARD_NOOP_MAX, False)
    rollout = TeacherRollout(spec.name, payload, num_envs=8, env_config=env_config, epsilon=0.05,
                             seed=config.get("seed", 0) + HOLDOUT_SEED_OFFSET, actor_id=0)
    frames, _ = rollout.labelled_stacks(HALF_CHECK_STEPS)
    half, same = half_precision_keeps_actions(payload, torch.from_numpy(frames))
    if half:
        payload["model"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    seed = EVAL_SEED_OFFSET
    echo(f"[zoo] {spec.title}: evaluating checkpoint {entry['version']} and the random policy, {episodes} episodes each")
    teacher_eval = evaluate_parallel(as_float32(payload), spec.name, episodes, workers, env_config=env_config,
                                     seed=seed)
    random_eval = evaluate_parallel(load_teacher("random", spec, 0), spec.name, episodes, workers,
                                    env_config=env_config, epsilon=1.0, seed=seed)
    summary = json.loads((run.path / "summary.json").read_text()) if (run.path / "summary.json").is_file() else {}
    previous = card(spec.name, zoo_dir) if (zoo_dir / f"{spec.name}.json").is_file() else None
    new_card = {
        "format": CARD_FORMAT, "game": spec.name, "title": spec.title, "preset": payload["preset"],
        "params": payload_params(payload), "num_actions": spec.num_actions,
        "dtype": "float16" if half else "float32",
        "half_precision_check": f"{same}/{len(frames)} held-out frames keep their greedy action in float16",
        "fingerprint": fingerprint(payload),
        "score": _brief(teacher_eval), "random_score": _brief(random_eval),
        "protocol": f"up to {CARD_NOOP_MAX} no-op starts, epsilon 0.05 (random policy: epsilon 1), sticky actions off, "
                    f"env mode {mode}, 108,000-frame cap, {episodes} episodes on seeds from {seed}",
        "trained": {"frames": entry["frames"], "checkpoint_version": entry["version"],
                    "registry_score": entry["score"], "registry_episodes": entry["episodes"],
                    "run_frames": summary.get("frames"), "wall_s": summary.get("wall_s"),
                    "device": summary.get("learner_device", config.get("device")), "flags": config,
                    "commit": commit or _commit(), "curve": learning_curve(run_path)},
        "published": datetime.date.today().isoformat(),
        "history": ([{k: v for k, v in previous.items() if k != "history"}] + previous.get("history", []))
                   if previous else [],
    }
    zoo_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(zoo_dir / f"{spec.name}.pt", payload)
    new_card["sha256"] = file_digest(zoo_dir / f"{spec.name}.pt")
    (zoo_dir / f"{spec.name}.json").write_text(json.dumps(new_card, indent=2) + "\n")
    return new_card


def learning_curve(run_path: str | Path) -> list[dict]:
    """Every scored checkpoint of a teacher run, with the wall time at which training had made
    its frames: what bench/time_to_score.py reads, so time-to-score needs no run directory."""
    from cluster.registry import CheckpointRegistry
    from pipelines.rundir import RunDir

    run = RunDir.open(str(run_path))
    elapsed = [(m["frames"], m["elapsed_s"]) for m in run.metrics() if m.get("kind") == "dqn" and m.get("elapsed_s")]
    curve = []
    for entry in CheckpointRegistry(run.path / "registry.json").history():
        if entry["score"] is None:
            continue
        reached = next((seconds for frames, seconds in elapsed if frames >= entry["frames"]), None)
        curve.append({"frames": entry["frames"], "score": entry["score"], "ci95": entry["ci95"],
                      "episodes": entry["episodes"], "elapsed_s": reached})
    return sorted(curve, key=lambda point: point["frames"])


def _brief(result) -> dict:
    return {"mean": result.mean, "ci95": result.ci95, "episodes": result.episodes, "median": result.median,
            "min": result.min, "max": result.max, "mean_length": result.mean_length}

