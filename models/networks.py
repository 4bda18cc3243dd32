"""Network presets: the Nature DQN teacher and the students of Rusu et al. (2015), exactly.

Every network is a convolutional trunk (same kernels and strides as the Nature DQN) plus
one head per game, so single-game and multi-task students share one class and one
checkpoint format. A head is the game's output layer, preceded in the paper's multi-task
students by a per-game hidden layer. Inputs are the uint8 stacks the environment emits;
scaling to [0, 1] happens here, so every producer and consumer ships bytes.

Parameter counts with 18 outputs, as the paper counts them (tests/test_presets.py checks each):
nature 1,693,362; net1 427,874 (25%); net2 113,346 (7%); net3 61,954 (4%).
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
    head_hidden: int = 0  # a per-game fully connected layer before each game's outputs (multi-task)


PRESETS = {
    "nature": Preset((32, 64, 64), (512,), "Nature DQN: the teacher, and a teacher-sized student"),
    "net1": Preset((16, 32, 32), (256,), "Dist-KL-net1: 25% of the teacher"),
    "net2": Preset((16, 16, 16), (128,), "Dist-KL-net2: 7% of the teacher"),
    "net3": Preset((16, 16, 16), (64,), "Dist-KL-net3: 4% of the teacher"),
    "multi-3": Preset((32, 64, 64), (512,), "the paper's 3-game multi-task student: Nature trunk, per game fc 128",
                      head_hidden=128),
    "multi-10": Preset((64, 64, 64), (1500,), "the paper's 10-game multi-task student: shared fc 1500, per game "
                                              "fc 128", head_hidden=128),
}

# names a checkpoint may carry from an earlier version: same architecture under a new name
ALIASES = {"paper-25": "net1"}
# earlier presets that were not the paper's networks; their checkpoints are refused with this reason
RETIRED = {
    "paper-7": "conv 16-32-32 with fc 64, not the paper's Dist-KL-net2 (conv 16-16-16, fc 128)",
    "paper-4": "conv 16-32-32 with fc 32, not the paper's Dist-KL-net3 (conv 16-16-16, fc 64)",
    "multitask": "conv 64-128-128 with fc 1024-512 and no per-game layer, not the paper's multi-task student",
}


class UnknownPresetError(ValueError):
    pass


def canonical_preset(name: str) -> str:
    """The current name of a preset, or a one-line refusal that says what to use instead."""
    name = ALIASES.get(name, name)
    if name in PRESETS:
        return name
    if name in RETIRED:
        raise UnknownPresetError(f"preset {name!r} was retired: {RETIRED[name]}; train a new student with one of: "
                                 f"{', '.join(PRESETS)}")
    raise UnknownPresetError(f"unknown network preset {name!r}; choose one of: {', '.join(PRESETS)}")


def preset(name: str) -> Preset:
    return PRESETS[canonical_preset(name)]


class QNetwork(nn.Module):
    def __init__(self, preset_name: str, heads: dict[str, int], seed: int | None = None):
        """`seed`: the initial weights' own random numbers (not torch's global generator, which every
        thread of a process shares: the local runner's learner would otherwise start from weights that
        depend on what other threads drew meanwhile)."""
        super().__init__()
        if not heads:
            raise ValueError("a network needs at least one head (game -> action count)")
        spec = preset(preset_name)
        self.preset_name = canonical_preset(preset_name)
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
        self.heads = nn.ModuleDict({game: head(features, spec.head_hidden, n) for game, n in heads.items()})
        self._initialise(None if seed is None else torch.Generator().manual_seed(seed))

    def _initialise(self, generator: torch.Generator | None) -> None:
        """Orthogonal init, gain sqrt(2), zero biases, near-zero heads (as SB3 and CleanRL's PPO do).

        PyTorch's default init leaves this conv stack nearly insensitive to its input: in our
        runs a student then learned only the teacher's action marginal for thousands of updates.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight, gain=2**0.5, generator=generator)
                nn.init.zeros_(module.bias)
        for head in self.heads.values():
            nn.init.orthogonal_(output_layer(head).weight, gain=0.01, generator=generator)

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


def head(features: int, hidden: int, actions: int) -> nn.Module:
    """A plain output layer (the checkpoint keys of single-game presets), or hidden layer, ReLU, outputs."""
    if not hidden:
        return nn.Linear(features, actions)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, actions))


def output_layer(head: nn.Module) -> nn.Linear:
    return head[-1] if isinstance(head, nn.Sequential) else head


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def preset_table(num_actions: int = 18, multi_heads: dict[str, dict[str, int]] | None = None) -> list[dict]:
    """Exact parameter counts with one head of `num_actions` (18, as the paper counts, by default); a
    multi-task preset is counted with the heads `multi_heads` gives it (its games' action sets), and
    the row says which."""
    teacher = parameter_count(QNetwork("nature", {"g": num_actions}))
    rows = []
    for name, spec in PRESETS.items():
        heads = (multi_heads or {}).get(name, {"g": num_actions})
        count = parameter_count(QNetwork(name, heads))
        rows.append({"preset": name, "params": count, "pct_of_nature": 100.0 * count / teacher,
                     "description": spec.description,
                     "heads": None if list(heads) == ["g"] else heads})
    return rows
