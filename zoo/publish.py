"""Publishing a teacher run into the zoo: score it beside the random policy, keep its weights
in half precision where no greedy action changes, and write its card (zoo/catalog.py reads it)."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

from atari_distill.zoo.catalog import (CARD_EPISODES, CARD_FORMAT, CARD_NOOP_MAX, HALF_CHECK_STEPS, ZOO_DIR, ZooError, as_float32,
                         card, file_digest, overlaps, teacher_path)


def half_precision_keeps_actions(payload: dict, frames) -> tuple[bool, int]:
    """Whether fp16-rounded weights pick the same greedy action as the fp32 ones on every frame."""
    import torch

    from atari_distill.models.checkpoint import build_network

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


def run_teacher(run_path: str, version: int | None) -> tuple[dict, dict, dict]:
    """The run's config, the registry entry to publish (the best, or `version`) and its weights as a
    bare teacher payload that keeps only the env mode it was trained in."""
    from atari_distill.cluster.registry import CheckpointRegistry
    from atari_distill.models.checkpoint import load_checkpoint
    from atari_distill.models.networks import canonical_preset
    from atari_distill.rundir.directory import RunDir

    run = RunDir.open(run_path)
    registry = CheckpointRegistry(run.path / "registry.json")
    entry = registry.entries.get(version) if version is not None else registry.best()
    if entry is None:
        raise ZooError(f"{run_path!r} has no scored teacher checkpoint" + (f" version {version}" if version else "")
                       + "; give a teacher run's --out")
    payload = load_checkpoint(entry["checkpoint"])
    mode = payload["extra"].get("env_mode", "native")  # a teacher trained with FIRE on reset is played so
    payload = {**payload, "preset": canonical_preset(payload["preset"]), "optimizer": None, "role": "teacher",
               "extra": {"env_mode": mode}}
    return run.read_config(), entry, payload


def card_protocol(mode: str, episodes: int = CARD_EPISODES) -> "EvalProtocol":
    """Every card's protocol: seed 0's report seeds, which no registry, curve or early stop plays."""
    from atari_distill.evaluation.protocol import EvalProtocol

    return EvalProtocol(episodes=episodes, epsilon=0.05, noop_max=CARD_NOOP_MAX, sticky_actions=False, env_mode=mode,
                        seed=0, holdout_steps=HALF_CHECK_STEPS)


def shrink(payload: dict, game: str, protocol) -> tuple[dict, bool, str]:
    """Float16 weights where no greedy action changes on held-out frames; the payload and the check's line."""
    import torch

    from atari_distill.evaluation.holdout import holdout_frames

    frames, _, _ = holdout_frames(game, payload, protocol)
    half, same = half_precision_keeps_actions(payload, torch.from_numpy(frames))
    if half:
        payload["model"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    return payload, half, f"{same}/{len(frames)} held-out frames keep their greedy action in float16"


def score_card(payload: dict, game: str, protocol, workers: int) -> tuple[dict, dict]:
    """The teacher's and the random policy's scores on the card protocol's report seeds."""
    from atari_distill.evaluation.episodes import evaluate_parallel
    from atari_distill.evaluation.protocol import REPORT

    teacher_eval = evaluate_parallel(as_float32(payload), game, protocol.episodes, workers,
                                     **protocol.play(REPORT, payload))
    random_eval = evaluate_parallel(payload, game, protocol.episodes, workers,
                                    **protocol.play(REPORT, payload, random_policy=True))
    return _brief(teacher_eval), _brief(random_eval)


def protocol_fields(protocol, payload: dict) -> dict:
    record = protocol.as_dict(payload)
    return {"protocol": record["text"] + "; random policy: epsilon 1 on the same seeds; 108,000-frame cap",
            "eval_protocol": record}


def publish(run_path: str, episodes: int = 30, workers: int = 2, version: int | None = None,
            zoo_dir: Path | None = None, commit: str | None = None, echo=print) -> dict:
    """Adds a teacher run's best checkpoint (or `version`) to the zoo, scored beside the random policy
    on report seeds (the registry chose it on selection seeds, so its registry score is biased high)."""
    from atari_distill.actors.games import game_spec
    from atari_distill.models.checkpoint import fingerprint, payload_params, save_checkpoint
    from atari_distill.rundir.summary import Summary

    zoo_dir = zoo_dir or ZOO_DIR
    if episodes < CARD_EPISODES:
        raise ZooError(f"a zoo card needs at least {CARD_EPISODES} episodes per evaluation, got --episodes {episodes}")
    config, entry, payload = run_teacher(run_path, version)
    spec, mode = game_spec(config["game"]), payload["extra"]["env_mode"]
    protocol = card_protocol(mode, episodes)
    payload, half, half_check = shrink(payload, spec.name, protocol)
    echo(f"[zoo] {spec.title}: evaluating checkpoint {entry['version']} and the random policy, {episodes} episodes each")
    score, random_score = score_card(payload, spec.name, protocol, workers)
    summary = (Summary.read(run_path, config) or Summary("teacher", complete=False)).as_dict()
    previous = card(spec.name, zoo_dir) if (zoo_dir / f"{spec.name}.json").is_file() else None
    new_card = {
        "format": CARD_FORMAT, "game": spec.name, "title": spec.title, "preset": payload["preset"],
        "params": payload_params(payload), "num_actions": spec.num_actions,
        "dtype": "float16" if half else "float32",
        "half_precision_check": half_check, "fingerprint": fingerprint(payload),
        "score": score, "random_score": random_score, **protocol_fields(protocol, payload),
        "trained": {"frames": entry["frames"], "checkpoint_version": entry["version"],
                    "registry_score": entry["score"], "registry_episodes": entry["episodes"],
                    "run_frames": summary.get("frames"), "wall_s": summary.get("wall_s"),
                    "device": summary.get("learner_device", config.get("device")), "flags": config,
                    "commit": commit or _commit(), "curve": learning_curve(run_path)},
        "published": datetime.date.today().isoformat(),
        "history": _history(previous, "a new teacher run was published"),
    }
    zoo_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(zoo_dir / f"{spec.name}.pt", payload)
    new_card["sha256"] = file_digest(zoo_dir / f"{spec.name}.pt")
    (zoo_dir / f"{spec.name}.json").write_text(json.dumps(new_card, indent=2) + "\n")
    return new_card


HISTORY_KEYS = ("score", "random_score", "protocol", "fingerprint", "sha256", "dtype", "published", "rescored")


def _history(previous: dict | None, why: str) -> list[dict]:
    """The card's earlier figures, newest first: what a reader needs to see what changed and why."""
    if previous is None:
        return []
    entry = {k: previous[k] for k in HISTORY_KEYS if k in previous}
    entry["trained"] = {k: previous["trained"].get(k) for k in ("frames", "checkpoint_version", "registry_score",
                                                                "registry_episodes")}
    return [{**entry, "replaced_because": why}] + previous.get("history", [])


RESCORE_WHY = ("re-scored on report seeds: the old score was played on seeds from 536,870,912, where the registry had "
               "scored every checkpoint and chosen this one by its maximum (the winner's curse)")


def rescore(game: str, episodes: int, workers: int, zoo_dir: Path | None = None, why: str = RESCORE_WHY) -> dict:
    """GAME's card scored again, weights untouched, on the card protocol's report seeds; the old
    figure goes into the card's history with `why`."""
    from atari_distill.actors.games import canonical_name, game_spec
    from atari_distill.evaluation.protocol import REPORT
    from atari_distill.actors.teachers import load_teacher

    zoo_dir = zoo_dir or ZOO_DIR
    if episodes < CARD_EPISODES:
        raise ZooError(f"a zoo card needs at least {CARD_EPISODES} episodes per evaluation, got --episodes {episodes}")
    game = canonical_name(game)
    old = card(game, zoo_dir)
    teacher_path(f"zoo:{game}", zoo_dir)  # the weights are the card's
    payload = load_teacher(f"zoo:{game}", game_spec(game))
    protocol = card_protocol(payload["extra"].get("env_mode", "native"), episodes)
    if old.get("eval_protocol", {}).get("seeds", {}).get("report") == protocol.seed_base(REPORT) and why == RESCORE_WHY:
        why = "scored again on the same report seeds"
    score, random_score = score_card(payload, game, protocol, workers)
    new_card = {**old, "score": score, "random_score": random_score, **protocol_fields(protocol, payload),
                "rescored": datetime.date.today().isoformat(), "history": _history(old, why)}
    (zoo_dir / f"{game}.json").write_text(json.dumps(new_card, indent=2) + "\n")
    return new_card


def verify(game: str, episodes: int, workers: int) -> tuple[dict, object, bool]:
    """GAME's zoo teacher played on episodes its card was not scored on (the next block of report
    seeds): the card, the new result, and whether their 95% intervals overlap (a real teacher fails
    that by chance in well under 1% of checks)."""
    from atari_distill.evaluation.episodes import evaluate_parallel
    from atari_distill.actors.games import canonical_name, game_spec
    from atari_distill.evaluation.protocol import REPORT
    from atari_distill.actors.teachers import load_teacher
    from atari_distill.cluster.runtime import connect

    game = canonical_name(game)
    known = card(game)
    teacher_path(f"zoo:{game}")  # the weights are the card's, before Ray starts
    connect(None, cpus_needed=workers)
    teacher = load_teacher(f"zoo:{game}", game_spec(game))
    protocol = card_protocol(teacher["extra"].get("env_mode", "native"), episodes)
    result = evaluate_parallel(teacher, game, episodes, workers, **protocol.play(REPORT, teacher, block=1))
    return known, result, overlaps(result.as_dict(), known["score"])


def learning_curve(run_path: str | Path) -> list[dict]:
    """Every scored checkpoint of a teacher run, with the wall time at which training had made
    its frames: what bench/time_to_score.py reads, so time-to-score needs no run directory."""
    from atari_distill.cluster.registry import CheckpointRegistry
    from atari_distill.rundir.directory import RunDir

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

