"""The score cache keeps a fixed policy's report episodes between runs: read back only for the very
same episodes (any part of the key changed plays them again), written whole or not at all, and a
folder that cannot be written, a damaged file or no home directory costs a replay, never a run."""

import json
from pathlib import Path

from atari_distill.actors.env import EnvConfig
from atari_distill.evaluation.score_cache import ScoreCache, default_folder

PLAY = {"env_config": EnvConfig(), "epsilon": 0.05, "seed": 1000}
ROWS = [[0, 21.0, 812], [1, 19.0, 790]]


def test_kept_rows_come_back_for_the_same_episodes_only(tmp_path):
    cache = ScoreCache(tmp_path)
    key = cache.key("pong", "a1b2", 2, 1, PLAY)
    assert cache.get(key) is None
    cache.put(key, [tuple(row) for row in ROWS])
    assert cache.get(key) == ROWS
    others = [cache.key("breakout", "a1b2", 2, 1, PLAY), cache.key("pong", "c3d4", 2, 1, PLAY),
              cache.key("pong", "random/6", 2, 1, PLAY), cache.key("pong", "a1b2", 2, 2, PLAY),
              cache.key("pong", "a1b2", 2, 1, {**PLAY, "seed": 1001}),
              cache.key("pong", "a1b2", 2, 1, {**PLAY, "epsilon": 0.01}),
              cache.key("pong", "a1b2", 2, 1, {**PLAY, "env_config": EnvConfig(sticky_actions=True)})]
    assert all(cache.get(other) is None for other in others)
    assert {"code", "versions", "cpu"} <= set(key) and key["versions"]["ale-py"]  # the playing code, ALE, the CPU
    assert ScoreCache(tmp_path).get(key) == ROWS  # another run's cache object, the same folder


def test_a_damaged_or_foreign_file_is_played_again_and_an_unwritable_folder_is_no_error(tmp_path):
    cache = ScoreCache(tmp_path)
    key = cache.key("pong", "a1b2", 2, 1, PLAY)
    cache.put(key, ROWS)
    (path,) = tmp_path.glob("pong-*.json")
    path.write_text(path.read_text()[:-10])  # torn
    assert cache.get(key) is None
    path.write_text(json.dumps({"key": {**key, "seed": 7}, "rows": ROWS}))  # another key's episodes
    assert cache.get(key) is None
    path.write_text(json.dumps({"key": key, "rows": ROWS[:1]}))  # fewer episodes than asked
    assert cache.get(key) is None
    for rows in ([[0, "21", 812], [1, 19.0, 790]], [[0, 21.0], [1, 19.0]], [[0, 21.0, 812], [0, 19.0, 790]],
                 [{"slot": 0}, [1, 19.0, 790]], [[0, 21.0, 812.5], [1, 19.0, 790]], [[0, True, 812], [1, 19.0, 790]],
                 [[0, 21.0, 0], [1, 19.0, 790]]):  # valid JSON of another shape: a string score, no length, ...
        path.write_text(json.dumps({"key": key, "rows": rows}))
        assert cache.get(key) is None, rows
    blocked = tmp_path / "file"
    blocked.write_text("")
    ScoreCache(blocked / "scores").put(key, ROWS)  # its parent is a file: nothing kept, nothing raised
    ScoreCache(None).put(key, ROWS)
    assert ScoreCache(None).get(key) is None
    assert not list(tmp_path.glob("**/*.part"))


def test_kept_files_follow_the_umask(tmp_path):
    import os

    cache = ScoreCache(tmp_path)
    previous = os.umask(0o027)
    try:
        cache.put(cache.key("pong", "a1b2", 2, 1, PLAY), ROWS)
    finally:
        os.umask(previous)
    (path,) = tmp_path.glob("pong-*.json")
    assert path.stat().st_mode & 0o777 == 0o640


def test_the_folder_is_chosen_by_the_environment_and_no_home_means_no_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ATARI_DISTILL_SCORE_CACHE", str(tmp_path))
    assert default_folder() == tmp_path
    monkeypatch.setenv("ATARI_DISTILL_SCORE_CACHE", "off")
    assert default_folder() is None
    monkeypatch.delenv("ATARI_DISTILL_SCORE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_folder() == tmp_path / "atari-distill" / "scores"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: ignored
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    assert default_folder() is None
