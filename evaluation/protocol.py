"""The evaluation protocol: how every score and every agreement figure of a run is played.

One object per run, built from its config, taken by every evaluator, the registry's scorer,
the zoo and `evaluate`, and written into summary.json and every card, so a reader finds in one
place how a number was played. Its rule (Machado et al. 2018; the winner's curse): whatever
chooses, chooses on *selection* seeds; every number a summary or card states is played on
*report* seeds nothing chose with; agreement is read on frames from *held-out* seeds. The three
ranges are disjoint from each other and from every actor's seeds (`tests/test_protocol.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from atari_distill.actors.env import EnvConfig, env_config_for, resolve_env_mode

ACTOR_RANGE = 2**28  # every actor's env seeds lie below base + 2**28 (actors/env.py's MAX_ACTOR_ID)
RANGE_WIDTH = 2**26  # each evaluation range: far more envs than any evaluation resets
HOLDOUT, SELECTION, REPORT = "holdout", "selection", "report"
OFFSETS = {HOLDOUT: ACTOR_RANGE, SELECTION: ACTOR_RANGE + RANGE_WIDTH, REPORT: ACTOR_RANGE + 2 * RANGE_WIDTH}
# Below this, no two runs' evaluation ranges meet either (seed s's selection seeds are never seed t's
# report seeds), so a card scored with seed 0 plays no episode any teacher run chose with.
MAX_SEED = 2**24
STICKY_HOLDOUT = RANGE_WIDTH // 2  # the sticky-action held-out frames come from envs of their own
MIN_CLAIM_EPISODES = 10  # below this a summary states scores with their CIs and withholds "% of teacher"
RANDOM_EPSILON = 1.0  # the random policy: every action uniform, on the same seeds


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class EvalProtocol:
    episodes: int = 30  # every report: the final scores, the teacher's and the random policy's
    selection_episodes: int = 8  # every choice: the registry's best checkpoint, --eval-every curves
    epsilon: float = 0.05
    noop_max: int = 30
    sticky_actions: bool = False
    env_mode: str = "auto"
    seed: int = 0
    holdout_steps: int = 2000
    holdout_epsilon: float = 0.05  # the teacher plays the held-out episodes as it plays while labelling

    def __post_init__(self):
        if not 0 <= self.seed < MAX_SEED:
            raise ProtocolError(f"--seed must be in [0, {MAX_SEED:,}) so no two runs' seed ranges meet, got {self.seed}")

    def seed_base(self, purpose: str, block: int = 0) -> int:
        """The first env seed of `purpose`'s range; `block` k > 0 gives episodes disjoint from block 0's
        (`zoo --verify` plays block 1 of the seeds the card was scored on, half a range up, where no
        run seed's block 0 reaches)."""
        if block not in (0, 1):
            raise ProtocolError(f"seed block must be 0 or 1, got {block}")
        return self.seed + OFFSETS[purpose] + block * RANGE_WIDTH // 2

    def env_seeds(self, purpose: str, count: int, block: int = 0) -> np.ndarray:
        base = self.seed_base(purpose, block)
        return np.arange(base, base + count, dtype=np.int64)

    def env_config(self, teacher: dict | None = None, sticky_actions: bool | None = None) -> EnvConfig:
        sticky = self.sticky_actions if sticky_actions is None else sticky_actions
        return env_config_for(self.env_mode, teacher or {}, self.noop_max, sticky)

    def play(self, purpose: str, teacher: dict | None = None, block: int = 0, random_policy: bool = False) -> dict:
        """Keyword arguments for evaluation/episodes.py's evaluators: the env, epsilon and seeds of `purpose`."""
        return dict(env_config=self.env_config(teacher), epsilon=RANDOM_EPSILON if random_policy else self.epsilon,
                    seed=self.seed_base(purpose, block))

    def as_dict(self, teacher: dict | None = None) -> dict:
        """What summary.json and cards record: the settings, the resolved env mode and each seed range."""
        record = asdict(self)
        if teacher is not None:
            record["env_mode"] = resolve_env_mode(self.env_mode, teacher)
        record["seeds"] = {purpose: self.seed_base(purpose) for purpose in (SELECTION, REPORT, HOLDOUT)}
        record["text"] = self.text(record["env_mode"])
        return record

    def text(self, env_mode: str | None = None) -> str:
        """One line a reader can compare across runs."""
        mode = env_mode or self.env_mode
        return (f"no-op starts (max {self.noop_max}), epsilon {self.epsilon}, {self.episodes} episodes on report "
                f"seeds from {self.seed_base(REPORT):,} (choices: {self.selection_episodes} on selection seeds from "
                f"{self.seed_base(SELECTION):,}), sticky "
                f"actions {'on' if self.sticky_actions else 'off'}, env mode {mode}; agreement on "
                f"{self.holdout_steps:,} frames across whole episodes from held-out seeds, teacher epsilon "
                f"{self.holdout_epsilon}")
