"""Held-out frames for agreement: a uniform sample over whole teacher episodes, not their openings.

The first few hundred steps of every episode look alike (the same maze, the same serve), so
agreement measured there rewards a student that memorised openings. Each environment plays
complete episodes from the protocol's held-out seeds; one reservoir sample (Vitter's algorithm
R) over every step any environment saw keeps the budget, and an environment stops only at an
episode's end once it has seen `STRIDE` times its share of the budget: every step played is as
likely to be kept as any other, an episode's end as its start.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from atari_distill.actors.env import make_vector_env
from atari_distill.evaluation.protocol import HOLDOUT, STICKY_HOLDOUT, EvalProtocol
from atari_distill.models.checkpoint import build_network
from atari_distill.runners import handles
from atari_distill.runners.errors import ActorLost

STRIDE = 4  # steps seen per frame kept, at least: consecutive frames are near-duplicates
NUM_ENVS = 8


def holdout_frames(game: str, teacher: dict, protocol: EvalProtocol, sticky_actions: bool = False,
                   num_envs: int = NUM_ENVS) -> tuple[np.ndarray, np.ndarray, dict]:
    """(observations (N, 4, 84, 84) uint8, the teacher's Q (N, A) float32, what was played). The
    teacher acts with the protocol's holdout epsilon, as it does while labelling."""
    torch.set_num_threads(1)
    net = build_network(teacher).eval()
    num_actions = teacher["heads"][net.head_name(game)]
    share = math.ceil(protocol.holdout_steps / num_envs)
    seeds = protocol.env_seeds(HOLDOUT, num_envs) + (STICKY_HOLDOUT if sticky_actions else 0)
    env = make_vector_env(game, num_envs, protocol.env_config(teacher, sticky_actions))
    rng = np.random.default_rng([int(seeds[0]), num_envs])
    obs, _ = env.reset(seed=seeds)
    kept: list[tuple] = []  # one reservoir over every step any env saw: each equally likely to be kept
    seen = np.zeros(num_envs, np.int64)
    episodes = np.zeros(num_envs, np.int64)
    collecting = np.ones(num_envs, bool)
    position, resetting = np.zeros(num_envs, np.int64), np.zeros(num_envs, bool)  # steps since the episode began
    while collecting.any() and not handles.cancelled():
        with torch.inference_mode():
            q = net(torch.from_numpy(obs), game).float().numpy()
        for i in np.flatnonzero(collecting & ~resetting):  # an ended episode's last frame takes no action
            seen[i] += 1
            row = (obs[i].copy(), q[i].copy(), int(position[i]))
            if len(kept) < protocol.holdout_steps:
                kept.append(row)
            else:
                j = rng.integers(0, seen.sum())
                if j < protocol.holdout_steps:
                    kept[j] = row
        actions = q.argmax(axis=1)
        explore = rng.random(num_envs) < protocol.holdout_epsilon
        actions[explore] = rng.integers(0, num_actions, int(explore.sum()))
        obs, _, terminated, truncated, _ = env.step(actions.astype(np.int64))
        position = np.where(resetting, 0, position + 1)
        resetting = terminated | truncated
        ended = resetting & collecting
        episodes += ended
        collecting &= ~(ended & (seen >= STRIDE * share))
    env.close()
    if handles.cancelled():
        raise ActorLost("the run ended before its held-out frames were played")
    observations = np.stack([row[0] for row in kept])
    q_values = np.stack([row[1] for row in kept]).astype(np.float32)
    positions = np.array([row[2] for row in kept])
    return observations, q_values, {"frames": int(len(kept)), "episodes": int(episodes.sum()),
                                    "steps_played": int(seen.sum()), "sticky_actions": sticky_actions,
                                    "median_step_in_episode": float(np.median(positions)),
                                    "max_step_in_episode": int(positions.max())}
