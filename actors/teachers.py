"""Where a teacher comes from: `random` (fixed seeded weights), `zoo:GAME` (a teacher that ships with
the project, zoo/) or a file on disk (ours, CleanRL, SB3).

Every source ends as a checkpoint payload with role "teacher", so actors, evaluation and
summaries handle one thing. The random teacher exists so the whole pipeline can be shown
to learn without any trained model: a Nature DQN with seeded weights whose output layer
is standardised per action on real frames of the game, so that its greedy policy spreads
over the actions instead of collapsing onto the one with the largest bias.
"""

from __future__ import annotations

import numpy as np
import torch

from atari_distill.actors.env import EnvConfig, make_vector_env
from atari_distill.actors.games import GameSpec
from atari_distill.actors.teacher_formats import read_teacher_file
from atari_distill.models.checkpoint import check_plays, make_payload
from atari_distill.models.networks import QNetwork
from atari_distill.zoo.catalog import as_float32, teacher_path

RANDOM = "random"
CALIBRATION_ENVS, CALIBRATION_STEPS = 8, 96


def calibration_frames(game: str, seed: int) -> torch.Tensor:
    """Stacks from uniformly random play, the same on every machine for a given seed."""
    env = make_vector_env(game, CALIBRATION_ENVS, EnvConfig())
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    stacks = []
    for _ in range(CALIBRATION_STEPS):
        stacks.append(obs.copy())
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, CALIBRATION_ENVS))
    env.close()
    return torch.from_numpy(np.concatenate(stacks))


def random_teacher(game: GameSpec, seed: int = 0) -> dict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = QNetwork("nature", {game.name: game.num_actions})
        for module in net.modules():  # PyTorch's default init: it gave the most learnable policy
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.reset_parameters()
    head = net.heads[game.name]
    with torch.no_grad():
        q = net(calibration_frames(game.name, seed))
        mean, std = q.mean(dim=0), q.std(dim=0).clamp_min(1e-6)
        head.weight.div_(std[:, None])
        head.bias.sub_(mean).div_(std)
    return make_payload(net, "teacher", extra={"source": f"random:{seed}"})


def load_teacher(source: str, game: GameSpec, seed: int = 0) -> dict:
    if source == RANDOM:
        return random_teacher(game, seed)
    payload = as_float32(read_teacher_file(teacher_path(source), game.name))
    check_plays(payload, game.name, game.num_actions, source=f"teacher {source!r}")
    payload["extra"] = {**payload.get("extra", {}), "source": source}
    return payload
