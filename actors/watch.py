"""Two policies play the same episode start side by side: what `launch.py watch` turns into a video.

Both environments get the same seed (the same no-op start and the same emulator randomness) and each
policy its own epsilon stream from the same seed, so any difference on screen is the policies'.
A frame is what the networks see: the newest 84x84 grayscale frame of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actors.env import EnvConfig, make_vector_env
from actors.evaluate import policy_for


@dataclass
class Played:
    frames: list[np.ndarray] = field(default_factory=list)  # (84, 84) uint8, one per step until the episode ends
    scores: list[float] = field(default_factory=list)  # the running score shown with each frame
    ended: bool = False


def play_side_by_side(payloads: list[dict], game: str, *, env_config: EnvConfig, seed: int, epsilon: float,
                      max_steps: int) -> list[Played]:
    """One episode per policy (cut at `max_steps`), all from the same env seed."""
    policies = [policy_for(payload, game)[0] for payload in payloads]
    count = len(payloads)
    env = make_vector_env(game, count, env_config)
    num_actions = env.single_action_space.n
    rngs = [np.random.default_rng([seed, 0]) for _ in payloads]
    obs, _ = env.reset(seed=np.full(count, seed, np.int64))
    played = [Played() for _ in payloads]
    score = np.zeros(count)
    for _ in range(max_steps):
        actions = np.zeros(count, np.int64)
        for i, (policy, rng, record) in enumerate(zip(policies, rngs, played)):
            if record.ended:
                continue
            record.frames.append(obs[i, -1].copy())
            record.scores.append(float(score[i]))
            greedy = int(policy(obs[i:i + 1]).argmax(1)[0])
            actions[i] = rng.integers(0, num_actions) if rng.random() < epsilon else greedy
        obs, rewards, terminated, truncated, _ = env.step(actions)
        score += rewards
        for i in np.flatnonzero(terminated | truncated):
            if not played[i].ended:
                played[i].ended = True
                played[i].frames.append(played[i].frames[-1])
                played[i].scores.append(float(score[i]))
        if all(record.ended for record in played):
            break
    env.close()
    return played
