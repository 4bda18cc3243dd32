"""Where a run's games come from: the teacher behind each (--teachers: the zoo, a folder, a list) and
the recordings (--datasets: a folder of them, or a list), read and checked before anything starts."""

from __future__ import annotations

from pathlib import Path

from atari_distill.cluster.errors import ConfigError
from atari_distill.pipelines.sections import check_teacher, need


def check_teachers(cfg) -> None:
    """Reads every teacher file once before Ray starts, so a teacher for another game or action
    count is answered at once rather than after the cluster is up."""
    from atari_distill.actors.games import game_spec
    from atari_distill.actors.teachers import load_teacher

    for game, source in cfg.game_teachers():
        if source not in (None, "random"):
            load_teacher(source, game_spec(game))


def dataset_entries(value: str) -> tuple[list[str], bool]:
    """The recordings --datasets names (a list, or the datasets in one folder), and whether it named
    them by their parent folder."""
    entries = [d.strip() for d in value.split(",") if d.strip()]
    if len(entries) == 1 and Path(entries[0]).is_dir() and not (Path(entries[0]) / "index.json").exists():
        return sorted(str(p) for p in Path(entries[0]).iterdir() if (p / "index.json").exists()), True
    return entries, False


def recordings(datasets: str, games: str) -> dict[str, tuple[str, dict]]:
    """{game: (dataset folder, its index)} of --datasets: a folder of datasets, or a list of them; of a
    folder, only the recordings of --games (`games`) where it names them."""
    from atari_distill.replay.dataset import DatasetError, read_index

    entries, parent = dataset_entries(datasets)
    if parent:
        folder = Path(datasets.strip())
        need(bool(entries), f"--datasets {str(folder)!r} holds no dataset (no {folder}/GAME/index.json); record "
                            f"one per game: launch.py record --game GAME --teacher zoo:GAME --out {folder}/GAME")
    found: dict[str, tuple[str, dict]] = {}
    wanted = named_games(games) if parent else set()  # a folder's recordings of other games do not count
    for path in entries:
        try:
            index = read_index(path)
        except DatasetError as error:
            if wanted and Path(path).name not in wanted:  # another game's, by its folder's name
                continue
            raise ConfigError(f"--datasets: {error}") from None
        game = index["game"]
        if wanted and game not in wanted:
            continue
        need(game not in found, f"--datasets holds two {game} recordings ({found.get(game, ('',))[0]} and "
                                f"{path}); give one per game")
        found[game] = (str(Path(path).resolve()), index)
    return found

def named_games(games: str) -> set[str]:
    """--games as canonical names (empty when not given, or when a name is unknown: validate says so)."""
    from atari_distill.actors.games import UnknownGameError, canonical_name

    try:
        return {canonical_name(g.strip()) for g in games.split(",") if g.strip()}
    except UnknownGameError:
        return set()

def teacher_sources(teachers: str, games: list[str]) -> list[str]:
    """One teacher per game from --teachers: the zoo, a folder of files named after their games, one
    source for all, or one per game."""
    from atari_distill.actors.games import UnknownGameError, canonical_name

    if teachers == "zoo":  # a keyword, even where a folder of that name exists (the project's own zoo/)
        return checked([f"zoo:{g}" for g in games])
    if Path(teachers).is_dir():
        found = {}
        for path in sorted(Path(teachers).iterdir()):
            try:
                found.setdefault(canonical_name(path.name.split(".")[0]), str(path))
            except UnknownGameError:
                continue
        missing = [g for g in games if g not in found]
        need(not missing, f"--teachers {teachers!r} has no file for {', '.join(missing)}; "
                          f"name each file after its game (pong.pt, breakout.zip, ...)")
        return [found[g] for g in games]
    sources = [t.strip() for t in teachers.split(",")]
    if len(sources) == 1:
        sources = sources * len(games)
    need(len(sources) == len(games), f"--teachers lists {len(sources)} teachers for {len(games)} games; "
                                     f"give one per game, one for all, or a directory")
    return checked(sources)

def checked(sources: list[str]) -> list[str]:
    for source in sources:
        check_teacher("--teachers", source)
    return sources


def adopt_dataset(cfg) -> None:
    """A dataset fixes the game and teacher; asking for another game is refused."""
    from atari_distill.actors.games import UnknownGameError, canonical_name
    from atari_distill.replay.dataset import DatasetError, read_index

    acting = cfg.acting
    try:
        index = read_index(cfg.dataset)
    except DatasetError as error:
        raise ConfigError(f"--dataset: {error}") from None
    if acting.game is not None:
        try:
            asked = canonical_name(acting.game)
        except UnknownGameError as error:
            raise ConfigError(f"--game: {error}") from None
        need(asked == index["game"], f"--dataset {cfg.dataset!r} holds {index['game']}, not {asked}; "
                                     f"drop --game or record a {asked} dataset")
    acting.game = index["game"]
    cfg.check_recording("--dataset", cfg.dataset, index)
    recorded = index["teacher"]
    if acting.teacher is None:
        acting.teacher = recorded["source"]
        try:
            check_teacher("--teacher", acting.teacher)
        except ConfigError:
            raise ConfigError(f"--dataset was recorded by teacher {acting.teacher!r}, which is not on this machine; "
                              f"pass --teacher PATH (the same weights) for the final evaluation") from None
