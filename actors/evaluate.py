"""Evaluation: a policy plays fresh environments with no-op starts and epsilon-greedy actions.

Each environment plays a fixed quota of episodes, so the result is not biased towards
short episodes (taking the first N episodes to finish across parallel environments is).
Scores are raw game scores. Protocol: up to `noop_max` no-op starts, epsilon = 0.05 by
default, 108,000-frame episode cap, no sticky actions unless the env config says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from actors.env import EnvConfig, env_seeds, make_vector_env
from learner.checkpoint import build_network

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t_quantile_975(df: int) -> float:
    """Student's t 97.5% quantile: exact table to 10 degrees of freedom, Cornish-Fisher above."""
    if df in _T975:
        return _T975[df]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class EvalResult:
    episodes: int
    mean: float
    ci95: float
    median: float
    min: float
    max: float
    mean_length: float
    epsilon: float
    noop_max: int
    scores: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(scores: list[float], lengths: list[int], epsilon: float, noop_max: int) -> EvalResult:
    values = np.asarray(scores, dtype=np.float64)
    n = len(values)
    ci = t_quantile_975(n - 1) * values.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    return EvalResult(
        episodes=n, mean=float(values.mean()), ci95=float(ci), median=float(np.median(values)),
        min=float(values.min()), max=float(values.max()), mean_length=float(np.mean(lengths)),
        epsilon=epsilon, noop_max=noop_max, scores=[float(v) for v in values],
    )


def evaluate_policy(payload: dict, game: str, episodes: int, *, env_config: EnvConfig = EnvConfig(),
                    epsilon: float = 0.05, seed: int = 1_000_003, max_envs: int = 8,
                    device: str = "cpu") -> EvalResult:
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    net = build_network(payload).to(device).eval()
    num_actions = payload["heads"][net.head_name(game)]
    num_envs = min(episodes, max_envs)
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    env = make_vector_env(game, num_envs, env_config)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=env_seeds(seed, num_envs))
    returns, lengths = np.zeros(num_envs), np.zeros(num_envs, np.int64)
    scores, episode_lengths = [], []
    while quota.any():
        with torch.inference_mode():
            q = net(torch.from_numpy(obs).to(device), game).float().cpu().numpy()
        actions = q.argmax(axis=1)
        explore = rng.random(num_envs) < epsilon
        actions[explore] = rng.integers(0, num_actions, int(explore.sum()))
        obs, rewards, terminated, truncated, _ = env.step(actions.astype(np.int64))
        returns += rewards
        lengths += 1
        for i in np.flatnonzero(terminated | truncated):
            if quota[i] > 0:
                scores.append(float(returns[i]))
                episode_lengths.append(int(lengths[i]))
                quota[i] -= 1
            # the next step is the reset step: its reward is 0 and it is not an agent step
            returns[i], lengths[i] = 0.0, -1
    env.close()
    return summarize(scores, episode_lengths, epsilon, env_config.noop_max)
