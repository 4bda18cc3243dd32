"""Actors seed their environments apart; evaluation is reproducible and independent of its workers."""

import time

import numpy as np

from atari_distill.actors.env import EnvConfig, actor_seed
from atari_distill.evaluation.episodes import evaluate_parallel, evaluate_policy
from atari_distill.actors.rollout import RolloutActor

SHORT = EnvConfig(max_episode_frames=1_200)  # 300 agent steps: episodes end quickly


def test_two_actors_never_produce_identical_episode_streams(ray_runtime, pong_teacher):
    import ray

    @ray.remote(num_cpus=0)
    class Sink:
        def __init__(self):
            self.messages = []

        def insert(self, message):
            self.messages.append(message)

        def frames(self):
            from atari_distill.replay.chunk import decode
            return [decode(m) for m in self.messages]

    sink = Sink.remote()
    actors = [ray.remote(RolloutActor).options(num_cpus=1, max_concurrency=2).remote(
        game="pong", num_envs=3, env_config=SHORT, seed=actor_seed(0, i), actor_id=i, chunk_steps=48)
        for i in range(2)]
    ray.get([a.run.remote(sink, pong_teacher, max_chunks=2) for a in actors])
    chunks = ray.get(sink.frames.remote())
    streams = {}
    for chunk in sorted(chunks, key=lambda c: c.chunk_index):
        for env in range(chunk.envs):
            streams.setdefault((chunk.actor_id, env), []).append(chunk.frames[:, env])
    streams = {key: np.concatenate(parts) for key, parts in streams.items()}
    assert len(streams) == 6 and all(len(s) == 96 for s in streams.values())
    keys = sorted(streams)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not np.array_equal(streams[a], streams[b]), (a, b)
    for a in actors:
        ray.kill(a)


def test_evaluation_is_reproducible_and_independent_of_worker_count(ray_runtime, pong_teacher):
    kwargs = dict(env_config=SHORT, epsilon=0.05, seed=123)
    first = evaluate_parallel(pong_teacher, "pong", 5, workers=2, **kwargs)
    again = evaluate_parallel(pong_teacher, "pong", 5, workers=2, **kwargs)
    three = evaluate_parallel(pong_teacher, "pong", 5, workers=3, **kwargs)
    assert first.scores == again.scores and first.mean_length == again.mean_length
    assert first.scores == three.scores
    assert first.episodes == 5 and first.median == float(np.median(first.scores))
    other_seed = evaluate_policy(pong_teacher, "pong", 5, env_config=SHORT, epsilon=0.05, seed=124)
    assert (other_seed.scores, other_seed.mean_length) != (first.scores, first.mean_length)


def test_a_lost_life_is_terminal_only_where_asked_and_the_game_plays_on():
    import dataclasses

    from atari_distill.actors.games import game_spec
    from atari_distill.actors.rollout import TeacherRollout
    from atari_distill.actors.teachers import random_teacher

    teacher = random_teacher(game_spec("breakout"), seed=0)
    plain, lives = EnvConfig(noop_max=0), dataclasses.replace(EnvConfig(noop_max=0), life_loss_terminal=True)
    chunks = [TeacherRollout("breakout", teacher, 2, env_config=config, epsilon=1.0, seed=9, chunk_steps=200,
                             groups=1).next_chunk() for config in (plain, lives)]
    assert np.array_equal(chunks[0].frames, chunks[1].frames) and np.array_equal(chunks[0].first, chunks[1].first)
    ended, lost = chunks[0].terminated, chunks[1].terminated
    assert (lost >= ended).all(), "every game over stays terminal"
    assert lost.sum() > ended.sum(), "random Breakout play loses lives within 200 steps"
    after = np.argwhere(lost & ~ended)
    assert not chunks[1].first[np.minimum(after[:, 0] + 1, 199), after[:, 1]].any(), "no reset follows a lost life"


def test_a_teacher_sent_while_a_chunk_boundary_takes_the_last_one_is_applied(ray_runtime, pong_teacher):
    """Ray runs `set_teacher` on another thread than `run`: a teacher sent while a chunk boundary
    is between reading the pending teacher and clearing it must not be lost. The boundary is held
    there until the next teacher is sent (or for 0.5 s, while a lock keeps `set_teacher` out)."""
    import threading

    import ray

    class HeldAtTheSwap(RolloutActor):
        def __init__(self, *args, **kwargs):
            self.held, self.sent = threading.Event(), threading.Event()
            super().__init__(*args, **kwargs)

        @property
        def next_teacher(self):
            pending = self.__dict__.get("_next")
            if pending is not None and not self.held.is_set():
                self.held.set()
                self.sent.wait(timeout=0.5)
            return pending

        @next_teacher.setter
        def next_teacher(self, value):
            self.__dict__["_next"] = value
            if value is not None and self.held.is_set():
                self.sent.set()

        def wait_held(self) -> bool:
            return self.held.wait(timeout=60)

    @ray.remote(num_cpus=0)
    class Sink:
        def insert(self, message):
            return len(message)

    version = lambda v: {**pong_teacher, "teacher_version": v}
    actor = ray.remote(HeldAtTheSwap).options(num_cpus=0, max_concurrency=3).remote(
        game="pong", num_envs=1, env_config=SHORT, chunk_steps=2, groups=1)
    ray.get(actor.set_teacher.remote(version(1)))
    running = actor.run.remote(Sink.remote(), version(0))
    assert ray.get(actor.wait_held.remote())
    ray.get(actor.set_teacher.remote(version(2)))
    sent_at, deadline = ray.get(actor.stats.remote())["steps"], time.monotonic() + 60
    while ray.get(actor.stats.remote())["steps"] < sent_at + 4 and time.monotonic() < deadline:
        time.sleep(0.01)  # until a whole chunk begun after the send is in
    actor.stop.remote()
    stats = ray.get(running, timeout=60)
    assert stats["teacher_version"] == 2, stats["swaps"]
    assert [v for _, v in stats["swaps"]] == [1, 2]  # version 0 was replaced before it labelled a chunk
    ray.kill(actor)


def test_a_restarted_rollout_actor_streams_on_and_ray_logs_no_error_about_its_arguments(ray_runtime, pong_teacher,
                                                                                      capfd):
    """The pipelines let Ray restart their rollout actors. Here the driver drops its ref to the teacher
    at once: only the pending `run` holds it, and the restarted actor, retrying that run, streams on
    from chunk 0. Its constructor takes no object refs, so Ray does not log that a restart may fail."""
    import ray

    from atari_distill.replay.chunk import decode

    @ray.remote(num_cpus=0)
    class Sink:
        def __init__(self):
            self.chunk_indices = []

        def insert(self, message):
            self.chunk_indices.append(decode(message).chunk_index)

        def received(self):
            return self.chunk_indices

    def wait_for(condition):
        deadline = time.monotonic() + 120
        while not condition(ray.get(sink.received.remote())):
            assert time.monotonic() < deadline, ray.get(sink.received.remote())
            time.sleep(0.1)

    sink, teacher = Sink.remote(), ray.put(pong_teacher)
    restartable = {"max_restarts": -1, "max_task_retries": -1}  # as the pipelines start theirs
    actor = ray.remote(RolloutActor).options(num_cpus=0, max_concurrency=2, **restartable).remote(
        game="pong", num_envs=1, env_config=SHORT, chunk_steps=8, groups=1)
    running = actor.run.remote(sink, teacher)
    del teacher
    wait_for(lambda chunks: len(chunks) >= 2)
    ray.kill(actor, no_restart=False)
    wait_for(lambda chunks: chunks.count(0) == 2 and chunks[-1] >= 2)  # a new stream, three chunks in
    actor.stop.remote()
    assert ray.get(running, timeout=60)["steps"] > 0
    ray.kill(actor)
    assert "constructor arguments in the object store" not in capfd.readouterr().err
