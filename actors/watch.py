"""Two policies play the same episode start side by side: what `launch.py watch` turns into a video.

Each policy plays in its own environment, built in the env mode it was taught in (a student of a
CleanRL teacher presses FIRE on reset, a native one does not), both reset with the same seed (the
same no-op start and emulator randomness) and each with its own epsilon stream from that seed, so any
difference on screen is the policies'. A frame is what the networks see: the newest 84x84 grayscale
frame of the stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atari_distill.actors.env import EnvConfig, make_vector_env
from atari_distill.evaluation.episodes import policy_for


@dataclass
class Played:
    frames: list[np.ndarray] = field(default_factory=list)  # (84, 84) uint8: the first, then one after each step
    scores: list[float] = field(default_factory=list)  # the score so far, with each frame
    ended: bool = False  # the episode ended (else it was cut at max_steps)


def play_side_by_side(players: list[tuple[dict, EnvConfig]], game: str, *, seed: int, epsilon: float,
                      max_steps: int) -> list[Played]:
    """One episode per (payload, env config), cut at `max_steps`, every environment reset with `seed`."""
    played = []
    for payload, env_config in players:
        policy = policy_for(payload, game)[0]
        env = make_vector_env(game, 1, env_config)
        rng = np.random.default_rng([seed, 0])
        obs, _ = env.reset(seed=np.array([seed], np.int64))
        record, score = Played(frames=[obs[0, -1].copy()], scores=[0.0]), 0.0
        for _ in range(max_steps):
            greedy = int(policy(obs).argmax(1)[0])
            action = int(rng.integers(0, env.single_action_space.n)) if rng.random() < epsilon else greedy
            obs, reward, terminated, truncated, _ = env.step(np.array([action], np.int64))
            score += float(reward[0])
            record.frames.append(obs[0, -1].copy())  # at an episode's end: its terminal frame
            record.scores.append(score)
            if terminated[0] or truncated[0]:
                record.ended = True
                break
        env.close()
        played.append(record)
    return played
