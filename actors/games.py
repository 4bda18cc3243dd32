"""The one registry of Atari games: canonical names, titles, and minimal action sets.

Any ROM that ale-py ships is accepted; the ten games of Rusu et al. (2015) are marked so
presets and tests can name them. Action counts come from ALE itself, not from a table we
could get wrong.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

PAPER_GAMES = (
    "breakout", "enduro", "ms_pacman", "pong", "qbert",
    "riverraid", "seaquest", "space_invaders", "beam_rider", "freeway",
)

_TITLES = {
    "breakout": "Breakout", "enduro": "Enduro", "ms_pacman": "Ms. Pac-Man", "pong": "Pong",
    "qbert": "Q*bert", "riverraid": "River Raid", "seaquest": "Seaquest",
    "space_invaders": "Space Invaders", "beam_rider": "Beam Rider", "freeway": "Freeway",
}


class UnknownGameError(ValueError):
    pass


@dataclass(frozen=True)
class GameSpec:
    name: str  # ale-py ROM id, e.g. "ms_pacman"
    title: str
    num_actions: int  # size of the minimal action set
    in_paper: bool


def _key(name: str) -> str:
    """Fold every spelling users type (`ALE/MsPacman-v5`, `Ms. Pac-Man`, `ms_pacman`) to one key."""
    name = name.strip()
    name = re.sub(r"^ALE/", "", name, flags=re.IGNORECASE)
    name = re.sub(r"(NoFrameskip)?-v\d+$", "", name, flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.cache
def _rom_ids() -> dict[str, str]:
    from ale_py import roms

    return {_key(rom): rom for rom in roms.get_all_rom_ids()}


@functools.cache
def action_meanings(rom: str) -> tuple[str, ...]:
    """The minimal action set's names in ALE's order (index i is the network's output i): NOOP, FIRE, ..."""
    import ale_py
    from ale_py import roms

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # static: set before the banner would print
    ale = ale_py.ALEInterface()
    ale.loadROM(roms.get_rom_path(rom))
    return tuple(action.name for action in ale.getMinimalActionSet())


def _minimal_action_count(rom: str) -> int:
    return len(action_meanings(rom))


def canonical_name(name: str) -> str:
    rom = _rom_ids().get(_key(name))
    if rom is None:
        close = difflib.get_close_matches(_key(name), list(_rom_ids()), n=3, cutoff=0.5)
        hint = ", ".join(_rom_ids()[k] for k in close) or ", ".join(PAPER_GAMES)
        raise UnknownGameError(f"unknown game {name!r}; did you mean: {hint}?")
    return rom


def game_spec(name: str) -> GameSpec:
    rom = canonical_name(name)
    return GameSpec(
        name=rom,
        title=_TITLES.get(rom, rom.replace("_", " ").title()),
        num_actions=_minimal_action_count(rom),
        in_paper=rom in PAPER_GAMES,
    )
