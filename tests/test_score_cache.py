"""The score cache keeps a fixed policy's report episodes between runs: read back only for the very
same episodes (any part of the key changed plays them again), written whole or not at all, and a
folder that cannot be written or a damaged file costs a replay, never a run."""

import json

from actors.env import EnvConfig
from pipelines.score_cache import ScoreCache

PLAY = {"env_config": EnvConfig(), "epsilon": 0.05, "seed": 1000}
ROWS = [[0, 21.0, 812], [1, 19.0, 790]]


def test_kept_rows_come_back_for_the_same_episodes_only(tmp_path):
    cache = ScoreCache(tmp_path)
    key = cache.key("pong", "a1b2", 2, PLAY)
    assert cache.get(key) is None
    cache.put(key, [tuple(row) for row in ROWS])
    assert cache.get(key) == ROWS
    others = [cache.key("breakout", "a1b2", 2, PLAY), cache.key("pong", "c3d4", 2, PLAY),
              cache.key("pong", "random/6", 2, PLAY), cache.key("pong", "a1b2", 2, {**PLAY, "seed": 1001}),
              cache.key("pong", "a1b2", 2, {**PLAY, "epsilon": 0.01}),
              cache.key("pong", "a1b2", 2, {**PLAY, "env_config": EnvConfig(sticky_actions=True)})]
    assert all(cache.get(other) is None for other in others)
    assert {"code", "versions"} <= set(key) and key["versions"]["ale-py"]  # the playing code and ALE are in it
    assert ScoreCache(tmp_path).get(key) == ROWS  # another run's cache object, the same folder


def test_a_damaged_or_foreign_file_is_played_again_and_an_unwritable_folder_is_no_error(tmp_path):
    cache = ScoreCache(tmp_path)
    key = cache.key("pong", "a1b2", 2, PLAY)
    cache.put(key, ROWS)
    (path,) = tmp_path.glob("pong-*.json")
    path.write_text(path.read_text()[:-10])  # torn
    assert cache.get(key) is None
    path.write_text(json.dumps({"key": {**key, "seed": 7}, "rows": ROWS}))  # another key's episodes
    assert cache.get(key) is None
    path.write_text(json.dumps({"key": key, "rows": ROWS[:1]}))  # fewer episodes than asked
    assert cache.get(key) is None
    blocked = tmp_path / "file"
    blocked.write_text("")
    ScoreCache(blocked / "scores").put(key, ROWS)  # its parent is a file: nothing kept, nothing raised
    assert not list(tmp_path.glob("**/*.part*"))
