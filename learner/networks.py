"""Network presets: the Nature DQN teacher and the students of Rusu et al. (2015).

Every network is a convolutional trunk (same kernels and strides as the Nature DQN) plus
one linear head per game, so single-game and multi-task students share one class and one
checkpoint format. Inputs are the uint8 stacks the environment emits; scaling to [0, 1]
happens here, so every producer and consumer ships bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

KERNELS = ((8, 4), (4, 2), (3, 1))  # (kernel, stride) per conv layer
CONV_OUT = 7 * 7  # spatial size after the three convs on 84x84


@dataclass(frozen=True)
class Preset:
    convs: tuple[int, int, int]
    hidden: tuple[int, ...]
    description: str


PRESETS = {
    "nature": Preset((32, 64, 64), (512,), "Nature DQN: teacher, and same-size student"),
    "paper-25": Preset((16, 32, 32), (256,), "compressed student, about 25% of the teacher"),
    "paper-7": Preset((16, 32, 32), (64,), "compressed student, about 7% of the teacher"),
    "paper-4": Preset((16, 32, 32), (32,), "compressed student, about 4% of the teacher"),
    "multitask": Preset((64, 128, 128), (1024, 512), "multi-task student: wider trunk, extra fc layer"),
}


class UnknownPresetError(ValueError):
    pass


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownPresetError(f"unknown network preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


class QNetwork(nn.Module):
    def __init__(self, preset_name: str, heads: dict[str, int]):
        super().__init__()
        if not heads:
            raise ValueError("a network needs at least one head (game -> action count)")
        spec = preset(preset_name)
        self.preset_name = preset_name
        self.head_sizes = dict(heads)
        layers, channels = [], 4
        for width, (kernel, stride) in zip(spec.convs, KERNELS):
            layers += [nn.Conv2d(channels, width, kernel, stride), nn.ReLU()]
            channels = width
        layers.append(nn.Flatten())
        features = channels * CONV_OUT
        for width in spec.hidden:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({game: nn.Linear(features, n) for game, n in heads.items()})
        self._initialise()

    def _initialise(self) -> None:
        """Orthogonal init, gain sqrt(2), zero biases, near-zero heads (as SB3 and CleanRL's PPO do).

        PyTorch's default init leaves this conv stack nearly insensitive to its input: in our
        runs a student then learned only the teacher's action marginal for thousands of updates.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight, gain=2**0.5)
                nn.init.zeros_(module.bias)
        for head in self.heads.values():
            nn.init.orthogonal_(head.weight, gain=0.01)

    def head_name(self, game: str | None) -> str:
        if game is None:
            if len(self.heads) != 1:
                raise ValueError(f"this network has heads {list(self.heads)}; name the game")
            return next(iter(self.heads))
        if game not in self.heads:
            raise ValueError(f"this network has no head for {game!r}; it has {list(self.heads)}")
        return game

    def forward(self, obs: torch.Tensor, game: str | None = None) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs
        return self.heads[self.head_name(game)](self.trunk(x))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def preset_table(num_actions: int = 6) -> list[dict]:
    """Exact parameter counts with one head of `num_actions` (Pong's 6 by default)."""
    teacher = parameter_count(QNetwork("nature", {"g": num_actions}))
    rows = []
    for name, spec in PRESETS.items():
        count = parameter_count(QNetwork(name, {"g": num_actions}))
        rows.append({"preset": name, "params": count, "pct_of_nature": 100.0 * count / teacher,
                     "description": spec.description})
    return rows
