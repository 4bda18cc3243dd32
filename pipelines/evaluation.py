"""How close a student is to its teacher, the measures every run kind reports alike: % of the
teacher's score (Rusu et al.), their geometric mean over games, and agreement on held-out
frames the teacher labelled, beside the majority-action baseline it must beat."""

from __future__ import annotations

import numpy as np

from actors.env import HOLDOUT_SEED_OFFSET, EnvConfig
from actors.rollout import TeacherRollout


def eval_protocol(cfg, env_mode: str | None = None) -> str:
    """How every score in a summary was played, in one line a reader can compare across runs."""
    acting, evaluation = cfg.acting, cfg.evaluation
    protocol = (f"no-op starts (max {acting.noop_max}), epsilon {evaluation.epsilon}, {evaluation.episodes} episodes, "
                f"sticky actions {'on' if acting.sticky_actions else 'off'}")
    return protocol + (f", env mode {env_mode}" if env_mode else "")


def pct_of_teacher(student: float, teacher: float) -> float | None:
    """Rusu et al.'s ratio; undefined (None) when the teacher's mean score is not positive."""
    return 100.0 * student / teacher if teacher > 0 else None


def geometric_mean(values: list[float]) -> float | None:
    """Of percentages: one game at 0% makes it 0; undefined for no games or a negative value."""
    if not values or any(v < 0 for v in values):
        return None
    return 0.0 if min(values) == 0 else float(np.exp(np.mean(np.log(values))))


def holdout_frames(game: str, teacher: dict, steps: int, env_config: EnvConfig, epsilon: float, seed: int):
    """(observations, teacher Q) from environments seeded apart from every actor's."""
    rollout = TeacherRollout(game, teacher, num_envs=8, env_config=env_config, epsilon=epsilon,
                             seed=seed + HOLDOUT_SEED_OFFSET, actor_id=0)
    return rollout.labelled_stacks(steps)


def majority_baseline(q_teacher: np.ndarray) -> float:
    """The agreement of always playing the teacher's most frequent action."""
    counts = np.bincount(q_teacher.argmax(axis=1), minlength=q_teacher.shape[1])
    return float(counts.max() / counts.sum())
