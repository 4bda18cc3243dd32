"""Evaluation: a policy plays fresh environments with no-op starts and epsilon-greedy actions.

Each environment ("slot") plays a fixed quota of episodes, so the result is not biased
towards short episodes (taking the first N episodes to finish across parallel
environments is). Slots carry their own seeds, so the episodes are the same whether one
process plays them or several evaluator actors share them.
Scores are raw game scores. Protocol: up to `noop_max` no-op starts, epsilon = 0.05 by
default, 108,000-frame episode cap, no sticky actions unless the env config says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from atari_distill.actors.env import EnvConfig, make_vector_env
from atari_distill.models.checkpoint import build_network
from atari_distill.models.export import EXPORT_FORMAT, OnnxQ
from atari_distill.runners import handles

# A worker process plays at most this many evaluations, then Ray starts a fresh one: in process the
# play loop holds its memory flat, but a Ray evaluator worker steps up a few MiB at each evaluation
# (bench/soak.py), and a long run makes hundreds.
EVALUATOR_TASK = {"num_cpus": 1, "max_calls": 10}

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile: exact table to 10 degrees of freedom, Cornish-Fisher above."""
    if df in _T975:
        return _T975[df]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def ci95_half_width(values: np.ndarray) -> float | None:
    """The half-width of the t interval of the mean of `values`; None from one value (no interval)."""
    n = len(values)
    return float(t_quantile_975(n - 1) * values.std(ddof=1) / math.sqrt(n)) if n > 1 else None


@dataclass(frozen=True)
class EvalResult:
    episodes: int
    mean: float
    ci95: float | None  # None for one episode: no interval, rather than a nan that reaches JSON and consoles
    median: float
    min: float
    max: float
    mean_length: float
    epsilon: float
    noop_max: int
    scores: list[float]

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 2) -> str:
        return score_text(self.mean, self.ci95, self.episodes, digits)


def score_text(mean: float, ci95: float | None, episodes: int | None = None, digits: int = 2) -> str:
    """'1008.00 +/- 146.39 (30 episodes)'; a single episode says it has no interval."""
    interval = f" +/- {ci95:.{digits}f}" if ci95 is not None else ""
    if episodes is None:
        return f"{mean:.{digits}f}{interval}"
    return f"{mean:.{digits}f}{interval} ({episodes} episode{'s' if episodes != 1 else ''}" + (
        ", no interval)" if ci95 is None else ")")


def summarize(scores: list[float], lengths: list[int], epsilon: float, noop_max: int) -> EvalResult:
    values = np.asarray(scores, dtype=np.float64)
    return EvalResult(
        episodes=len(values), mean=float(values.mean()), ci95=ci95_half_width(values), median=float(np.median(values)),
        min=float(values.min()), max=float(values.max()), mean_length=float(np.mean(lengths)),
        epsilon=epsilon, noop_max=noop_max, scores=[float(v) for v in values],
    )


MAX_SLOTS = 32


def episode_slots(episodes: int) -> np.ndarray:
    """Episodes per slot. A slot is one environment with its own seed and its own epsilon stream,
    so its episodes do not depend on which process plays it or beside which other slots."""
    slots = min(episodes, MAX_SLOTS)
    quota = np.full(slots, episodes // slots)
    quota[: episodes % slots] += 1
    return quota


def play_slots(payload: dict, game: str, slots: list[int], quotas: list[int], *, env_config: EnvConfig,
               epsilon: float, seed: int, device: str = "cpu") -> list[tuple[int, float, int]]:
    """(slot, score, length) for every episode the given slots play, each slot its full quota."""
    q_values, game = policy_for(payload, game, device)
    num_actions = payload["heads"][game]
    num_envs = len(slots)
    quota = np.array(quotas)
    env = make_vector_env(game, num_envs, env_config)
    rngs = [np.random.default_rng([seed, slot]) for slot in slots]
    obs, _ = env.reset(seed=np.array([seed + slot for slot in slots], np.int64))
    returns, lengths = np.zeros(num_envs), np.zeros(num_envs, np.int64)
    played = []
    while quota.any() and not handles.cancelled():
        if epsilon < 1.0:  # the random policy (epsilon 1) never needs the network
            actions = q_values(obs).argmax(1)
        else:
            actions = np.zeros(num_envs, np.int64)
        for i, rng in enumerate(rngs):
            if rng.random() < epsilon:
                actions[i] = rng.integers(0, num_actions)
        obs, rewards, terminated, truncated, _ = env.step(actions.astype(np.int64))
        returns += rewards
        lengths += 1
        for i in np.flatnonzero(terminated | truncated):
            if quota[i] > 0:
                played.append((slots[i], float(returns[i]), int(lengths[i])))
                quota[i] -= 1
            # the next step is the reset step: its reward is 0 and it is not an agent step
            returns[i], lengths[i] = 0.0, -1
    env.close()
    return played


def policy_for(payload: dict, game: str | None, device: str = "cpu"):
    """(uint8 stacks -> Q values as numpy, the head's game): a checkpoint plays through its torch network, an
    exported file (models/export.py) through onnxruntime, so both play the same episodes on the same seeds."""
    if payload.get("format") == EXPORT_FORMAT:
        if game is None and len(payload["heads"]) == 1:
            game = next(iter(payload["heads"]))
        if game not in payload["heads"]:
            raise ValueError(f"this exported model has heads {list(payload['heads'])}; name one of them")
        session = OnnxQ(payload["data"])
        return (lambda obs: session(obs)[game]), game
    net = build_network(payload).to(device).eval()
    game = net.head_name(game)

    def q_values(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(obs).to(device), game).float().cpu().numpy()
    return q_values, game


def result_of(played: list[tuple[int, float, int]], epsilon: float, noop_max: int) -> EvalResult:
    played = sorted(played, key=lambda row: row[0])  # stable: a slot's episodes stay in play order
    return summarize([p[1] for p in played], [p[2] for p in played], epsilon, noop_max)


def evaluate_policy(payload: dict, game: str, episodes: int, *, env_config: EnvConfig = EnvConfig(),
                    epsilon: float = 0.05, seed: int = 1_000_003, device: str = "cpu") -> EvalResult:
    """All slots in this process."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    quota = episode_slots(episodes)
    played = play_slots(payload, game, list(range(len(quota))), list(quota), env_config=env_config,
                        epsilon=epsilon, seed=seed, device=device)
    return result_of(played, epsilon, env_config.noop_max)


def submit_evaluation(payload, game: str, episodes: int, workers: int, *, env_config: EnvConfig = EnvConfig(),
                      epsilon: float = 0.05, seed: int = 1_000_003) -> list:
    """Starts the slots on `workers` Ray tasks (one CPU each); `collect_evaluation` gathers them.

    `payload` may be a ref (runners/handles.py::put), so the weights travel once."""
    if episodes < 1 or workers < 1:
        raise ValueError(f"episodes and workers must be at least 1, got {episodes} and {workers}")
    quota = episode_slots(episodes)
    groups = [list(range(w, len(quota), workers)) for w in range(min(workers, len(quota)))]
    task = handles.remote(_play_slots_task, **EVALUATOR_TASK)
    return [task.remote(payload, game, g, [int(quota[s]) for s in g], env_config=env_config,
                        epsilon=epsilon, seed=seed) for g in groups]


def collect_rows(pending: list) -> list[tuple[int, float, int]]:
    """Every episode's (slot, score, length) row of a `submit_evaluation`."""
    return [row for part in handles.get(pending) for row in part]


def collect_evaluation(pending: list, epsilon: float, noop_max: int) -> EvalResult:
    return result_of(collect_rows(pending), epsilon, noop_max)


def evaluate_parallel(payload, game: str, episodes: int, workers: int, *, env_config: EnvConfig = EnvConfig(),
                      epsilon: float = 0.05, seed: int = 1_000_003) -> EvalResult:
    """The same episodes as `evaluate_policy`, spread over evaluator tasks."""
    pending = submit_evaluation(payload, game, episodes, workers, env_config=env_config, epsilon=epsilon, seed=seed)
    return collect_evaluation(pending, epsilon, env_config.noop_max)


def greedy_agreement(net: torch.nn.Module, obs: np.ndarray, q_teacher: np.ndarray, game: str | None,
                     device="cpu", batch: int = 512) -> float:
    """Fraction of frames where the network's greedy action equals the teacher's."""
    matches = 0
    with torch.inference_mode():
        for start in range(0, len(obs), batch):
            frames = torch.from_numpy(np.array(obs[start:start + batch]))  # a copy: Ray's arrays are read-only
            q = net(frames.to(device), game).float().cpu().numpy()
            matches += int((q.argmax(1) == q_teacher[start:start + batch].argmax(1)).sum())
    return matches / len(obs)


def submit_agreement(payload, holdout, game: str):
    """Agreement of `payload` on held-out frames, as an evaluator task that waits for the frames
    (`holdout`: a reference to evaluation/holdout.py's result), so a curve's point never lacks it."""
    return handles.remote(_agreement_task, **EVALUATOR_TASK).remote(payload, holdout, game)


def _agreement_task(payload: dict, holdout: tuple, game: str) -> float:
    torch.set_num_threads(1)
    obs, q_teacher, _ = holdout
    return greedy_agreement(build_network(payload).eval(), obs, q_teacher, game)


def _play_slots_task(*args, **kwargs):
    torch.set_num_threads(1)  # one CPU per evaluator
    return play_slots(*args, **kwargs)
