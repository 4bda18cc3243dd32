"""Finding zoo teachers and reading their cards (zoo/publish.py writes them; zoo/__init__.py
has the layout). Actors and configs resolve `zoo:GAME` here, so this module imports nothing
above the game list.

A card is what a user needs to trust a teacher without training it again: the score with
a 95% CI over at least 30 no-op-start episodes, the random policy's on the same protocol
and seeds, and where the weights came from (run flags, frames, wall time, device, commit).
A teacher replaced by a better one keeps its predecessors in the card's `history`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ZOO_DIR = Path(__file__).resolve().parent / "teachers"
PREFIX = "zoo:"
CARD_EPISODES = 30  # the protocol: mean and 95% CI over at least 30 no-op-start episodes
CARD_FORMAT = "atari-distill-zoo-card"
CARD_NOOP_MAX = 30
HALF_CHECK_STEPS = 2000


class ZooError(ValueError):
    pass


def games(zoo_dir: Path | None = None) -> list[str]:
    zoo_dir = zoo_dir or ZOO_DIR
    return sorted(p.stem for p in zoo_dir.glob("*.json") if (zoo_dir / f"{p.stem}.pt").is_file())


def zoo_game(source: str | None) -> str | None:
    """The game a `zoo:GAME` source names (canonical), else None."""
    if not source or not source.startswith(PREFIX):
        return None
    from atari_distill.actors.games import UnknownGameError, canonical_name

    try:
        return canonical_name(source[len(PREFIX):])
    except UnknownGameError:
        import difflib

        held = games()
        close = difflib.get_close_matches(source[len(PREFIX):].lower(), held, n=3, cutoff=0.5)
        raise ZooError(f"--teacher {source!r}: the zoo has no teacher of that name; did you mean: "
                       f"{', '.join(PREFIX + g for g in close or held)}? (launch.py zoo lists them)") from None


def teacher_path(source: str, zoo_dir: Path | None = None) -> str:
    """The file behind a teacher source: `zoo:GAME` resolves into the zoo, anything else is a path."""
    game = zoo_game(source)
    if game is None:
        return source
    zoo_dir = zoo_dir or ZOO_DIR
    path = zoo_dir / f"{game}.pt"
    if not path.is_file():
        held = ", ".join(games(zoo_dir)) or "nothing yet"
        raise ZooError(f"the zoo has no teacher for {game} (it holds: {held}); train one with launch.py teacher "
                       f"and add it with launch.py zoo --add RUN_DIR")
    expected, found = card(game, zoo_dir).get("sha256"), file_digest(path)
    if found != expected:
        raise ZooError(f"{path} does not match its card (sha256 {found[:12]}, the card says {str(expected)[:12]}): "
                       f"the weights were changed or damaged; restore them with: git checkout -- {path}")
    return str(path)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def card(game: str, zoo_dir: Path | None = None) -> dict:
    zoo_dir = zoo_dir or ZOO_DIR
    path = zoo_dir / f"{game}.json"
    if not path.is_file():
        raise ZooError(f"the zoo has no card for {game}; it holds: {', '.join(games(zoo_dir)) or 'nothing yet'}")
    return json.loads(path.read_text())


def as_float32(payload: dict) -> dict:
    """Weights as float32, whatever the zoo stored them in (every consumer runs float32)."""
    return {**payload, "model": {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}}


def overlaps(a: dict, b: dict) -> bool:
    """Whether two scores' 95% intervals overlap: a re-evaluation consistent with the card."""
    return abs(a["mean"] - b["mean"]) <= (a["ci95"] or 0) + (b["ci95"] or 0)


def describe(c: dict) -> str:
    s, r = c["score"], c["random_score"]
    return (f"{c['game']:<15} {c['preset']:<7} {c['params']:>10,} {s['mean']:>9.1f} +/- {s['ci95']:<7.1f} "
            f"{r['mean']:>8.1f} +/- {r['ci95']:<6.1f} {c['trained']['frames']:>11,}  {c['dtype']}")


def markdown_table(zoo_dir: Path | None = None) -> str:
    """The README's zoo table, from the cards alone (a test keeps the README equal to it)."""
    rows = ["| game | preset | params | score (mean +/- 95% CI) | random policy | frames: checkpoint / run | "
            "training |", "|---|---|---|---|---|---|---|"]
    for game in games(zoo_dir):
        c = card(game, zoo_dir)
        s, r, t = c["score"], c["random_score"], c["trained"]
        notes = [f"{t['wall_s'] / 60:.0f} min on {t['device']}", c["dtype"]]
        if t["flags"].get("life_loss_terminal"):
            notes.append("life loss terminal")
        rows.append(f"| {c['title']} | `{c['preset']}` | {c['params']:,} | {s['mean']:.1f} +/- {s['ci95']:.1f} "
                    f"({s['episodes']}) | {r['mean']:.1f} +/- {r['ci95']:.1f} | {t['frames']:,} / "
                    f"{t['run_frames']:,} | {', '.join(notes)} |")
    return "\n".join(rows) + "\n"
