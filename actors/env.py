"""The DQN environment: ale-py's AtariVectorEnv with the Nature preprocessing, done in C++.

Observations are uint8 stacks (N, 4, 84, 84). At an episode start the stack is
[0, 0, 0, frame]; afterwards it shifts by one frame per step. With NEXT_STEP autoreset the
step after a terminal or truncated one returns a fresh episode's first stack and ignores
the action. The replay rebuilds stacks from single frames relying on exactly this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_SHAPE = (84, 84)
STACK = 4
STICKY_ACTION_PROBABILITY = 0.25  # Machado et al. (2018)


@dataclass(frozen=True)
class EnvConfig:
    noop_max: int = 30
    sticky_actions: bool = False
    max_episode_frames: int = 108_000  # 30 minutes of play at 60 Hz
    fire_reset: bool = False
    # a DQN's training data marks a lost life terminal (no bootstrap across it), as the Nature DQN
    # did; the game plays on unchanged, so frames, scores and evaluation are untouched
    life_loss_terminal: bool = False

    def validate(self) -> None:
        if not 0 <= self.noop_max <= 1000:
            raise ValueError(f"noop_max must be in [0, 1000], got {self.noop_max}")
        if self.max_episode_frames < 100:
            raise ValueError(f"max_episode_frames must be at least 100, got {self.max_episode_frames}")


# How each teacher source saw Atari while it trained, where our environment can match it.
# SB3's AtariWrapper (which CleanRL's dqn_atari also uses) presses FIRE after every reset;
# a teacher that never learned to launch the ball itself needs the same (Breakout).
ENV_MODES = {
    "native": "our DQN preprocessing: no FIRE on reset",
    "sb3": "Stable-Baselines3 AtariWrapper: FIRE on reset",
    "cleanrl": "CleanRL dqn_atari (SB3's wrappers): FIRE on reset",
}


def resolve_env_mode(mode: str, teacher: dict | None) -> str:
    """`auto` follows the teacher: an imported teacher names the mode it was trained in."""
    if mode == "auto":
        return (teacher or {}).get("extra", {}).get("env_mode", "native")
    if mode not in ENV_MODES:
        raise ValueError(f"--env-mode must be auto or one of {', '.join(ENV_MODES)}, got {mode!r}")
    return mode


def env_config_for(mode: str, teacher: dict | None, noop_max: int, sticky_actions: bool) -> EnvConfig:
    resolved = resolve_env_mode(mode, teacher)
    return EnvConfig(noop_max=noop_max, sticky_actions=sticky_actions, fire_reset=resolved in ("sb3", "cleanrl"))


def vector_env_kwargs(config: EnvConfig = EnvConfig()) -> dict:
    """Every AtariVectorEnv setting besides the game, env count and threads: what an exported model's
    metadata states, so a user outside this project reproduces our observations bit for bit."""
    config.validate()
    return dict(
        max_num_frames_per_episode=config.max_episode_frames,
        repeat_action_probability=STICKY_ACTION_PROBABILITY if config.sticky_actions else 0.0,
        img_height=FRAME_SHAPE[0],
        img_width=FRAME_SHAPE[1],
        grayscale=True,
        stack_num=STACK,
        frameskip=FRAME_SKIP,
        maxpool=True,
        noop_max=config.noop_max,
        episodic_life=False,
        reward_clipping=False,  # scores are reported raw; losses never see rewards
        use_fire_reset=config.fire_reset,
    )


def make_vector_env(game: str, num_envs: int, config: EnvConfig = EnvConfig(), num_threads: int = 0):
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(game, num_envs, num_threads=num_threads or min(num_envs, 4), **vector_env_kwargs(config))


# Actor i seeds its envs from base + i * 4096 (at most 1,024 envs each); the held-out, selection
# and report ranges lie above every actor's (evaluation/protocol.py). Ids stop below MAX_ACTOR_ID, so
# even the highest actor of one run seed stays below another run seed's held-out range.
ACTOR_SEED_STRIDE = 4096
MAX_ENVS_PER_ACTOR = 1024  # so an actor's stride holds its first incarnation's seeds and three more blocks
MAX_ACTOR_ID = 61_440
FRAME_SKIP = 4  # emulator frames per agent step: budgets in frames are 4x budgets in steps


def actor_seed(base_seed: int, actor_id: int) -> int:
    if not 0 <= actor_id < MAX_ACTOR_ID:
        raise ValueError(f"actor id {actor_id} is outside [0, {MAX_ACTOR_ID:,}): its envs' seeds would meet the "
                         f"evaluation ranges; start the run afresh instead of resuming it again")
    return base_seed + actor_id * ACTOR_SEED_STRIDE


def restarted_actor_seed(first_seed: int, restart_key: int) -> int:
    """The seed of an actor Ray restarted: new episodes, not a replay of its first incarnation's, yet inside
    the actor's own stride (`restart_key`, e.g. the new process id, picks one of the stride's three spare
    blocks), so its environments never reach another actor's seeds or an evaluation range."""
    spare = ACTOR_SEED_STRIDE // MAX_ENVS_PER_ACTOR - 1
    return first_seed + MAX_ENVS_PER_ACTOR * (1 + restart_key % spare)


def env_seeds(base_seed: int, num_envs: int) -> np.ndarray:
    return np.arange(base_seed, base_seed + num_envs, dtype=np.int64)
