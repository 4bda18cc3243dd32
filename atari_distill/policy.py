"""A trained network to use from Python: `load_student(run_dir)` and `load_teacher("zoo:pong")`.

Both return a `Policy`: a uint8 (N, 4, 84, 84) batch of stacked frames in, Q values or greedy
actions out, through the torch network (`module`) or an onnxruntime session for an exported
.onnx, with the game, its action set and the preprocessing the network expects as attributes.
It takes every form `evaluate` takes, because it resolves its source the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from atari_distill.actors.env import FRAME_SKIP, resolve_env_mode
from atari_distill.evaluation.episodes import policy_for
from atari_distill.actors.games import action_meanings, game_spec
from atari_distill.evaluation.protocol import EvalProtocol
from atari_distill.cluster.errors import ConfigError
from atari_distill.models.export import EXPORT_FORMAT
from atari_distill.pipelines.sources import resolve_model

FRAME_SHAPE = (4, 84, 84)  # four stacked 84x84 grayscale frames, max-pooled over two, as the DQN saw them


@dataclass
class Policy:
    game: str  # the head played when no game is named
    games: list[str]  # every head it has (a multi-task student has several)
    num_actions: dict[str, int]  # each head's minimal action set size
    preset: str | None  # the network preset
    preprocessing: dict  # frame skip, no-op starts, env mode, sticky actions: how its frames were made
    source: str  # what it was loaded from
    checkpoint: str | None  # the file its weights came from, where there is one
    module: object = field(default=None, repr=False)  # the torch.nn.Module, or None for an exported .onnx
    payload: dict = field(default_factory=dict, repr=False)
    _heads: dict = field(default_factory=dict, repr=False)

    def q_values(self, frames: np.ndarray, game: str | None = None) -> np.ndarray:
        """(N, A) float32 Q values of `game`'s head (the policy's own game by default)."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.shape[1:] != FRAME_SHAPE:
            raise ConfigError(f"frames must be uint8 of shape (N, 4, 84, 84), got {frames.dtype} {frames.shape}; "
                              f"stack four preprocessed frames as the environment does (actors/env.py)")
        game = game_spec(game).name if game else self.game
        if game not in self._heads:
            if game not in self.games:
                raise ConfigError(f"this policy has no head for {game!r}; it has {', '.join(self.games)}")
            self._heads[game] = policy_for(self.payload, game)[0]
        return self._heads[game](frames)

    def act(self, frames: np.ndarray, game: str | None = None) -> np.ndarray:
        """(N,) greedy actions, indices into the game's minimal action set (`action_set`)."""
        return self.q_values(frames, game).argmax(axis=1)

    __call__ = q_values

    def action_set(self, game: str | None = None) -> list[str]:
        """The names of the head's actions, in the order of its outputs (ALE's minimal action set: NOOP, FIRE, ...)."""
        return list(action_meanings(game_spec(game or self.game).name))


def _policy(source: str, game: str | None, series: str | None, seed: int) -> Policy:
    game = game_spec(game).name if game else None
    model = resolve_model(str(source), game, series, seed)
    payload = model.payload
    played = model.games[0]
    protocol = EvalProtocol(seed=seed)
    env = dataclasses.asdict(protocol.env_config(payload))
    preprocessing = {"frame_skip": FRAME_SKIP, "frame_stack": 4, "frame_size": (84, 84), "grayscale": True,
                     "env_mode": resolve_env_mode("auto", payload), **env}
    module = None
    if payload.get("format") != EXPORT_FORMAT:
        from atari_distill.models.checkpoint import build_network

        module = build_network(payload).eval()
    preset = payload.get("preset") or payload.get("metadata", {}).get("preset")
    policy = Policy(played, list(model.games), {g: int(n) for g, n in payload["heads"].items()}, preset,
                    preprocessing, str(source), model.checkpoint, module, payload)
    if module is not None:
        import torch

        def q(frames, net=module, head=None):
            with torch.inference_mode():
                return net(torch.from_numpy(np.ascontiguousarray(frames)), head).float().numpy()
        policy._heads = {g: (lambda frames, g=g: q(frames, head=g)) for g in policy.games}
    return policy


def load_student(path, game: str | None = None, series: str | None = None) -> Policy:
    """A trained student: a run directory (its newest checkpoint; `series` picks one of a sweep), a
    checkpoint .pt or an exported .onnx."""
    return _policy(path, game, series, 0)


def load_teacher(spec: str, game: str | None = None, seed: int = 0) -> Policy:
    """A teacher: zoo:GAME, a teacher run directory (its best checkpoint), a checkpoint, a CleanRL or
    SB3 file (with `game`), an exported .onnx, or "random" (with `game`; `seed` builds its weights)."""
    return _policy(spec, game, None, seed)
