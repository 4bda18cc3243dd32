"""Who acts while the teacher labels (--behaviour): the student's actions reach the replay with the
teacher's labels, and a mixture's teacher share follows its schedule over episodes."""

import numpy as np
import pytest
import torch

from atari_distill.actors.env import EnvConfig
from atari_distill.actors.rollout import TeacherRollout
from atari_distill.models.checkpoint import build_network, make_payload
from atari_distill.models.networks import QNetwork
from atari_distill.pipelines.sections import BehaviourSettings
from atari_distill.replay.chunk import decode, encode

pytestmark = pytest.mark.xdist_group("test_behaviour")  # its module-scoped fixture is built once

SHORT = EnvConfig(max_episode_frames=120, noop_max=0)  # 30 steps: many episode starts


@pytest.fixture(scope="module")
def teacher_and_student():
    from atari_distill.actors.games import game_spec
    from atari_distill.actors.teachers import random_teacher

    torch.manual_seed(11)
    return random_teacher(game_spec("pong"), seed=0), make_payload(QNetwork("net3", {"pong": 6}), "student")


def greedy(payload: dict, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        q = build_network(payload).eval()(torch.from_numpy(obs), "pong")
    return q.argmax(1).numpy(), q.numpy()


def test_with_the_student_driving_the_actions_are_its_and_the_labels_the_teachers(teacher_and_student):
    teacher, student = teacher_and_student
    rollout = TeacherRollout("pong", teacher, 4, epsilon=0.0, seed=3, chunk_steps=8, groups=2)
    rollout.keep_obs = True
    before = rollout.step(relaunch=False)  # drained, as at a chunk boundary where a student is taken
    assert "student_acted" not in before and np.array_equal(before["actions"], greedy(teacher, before["obs"])[0])
    rollout.set_student(student, beta=0.0)
    for _ in range(12):
        record = rollout.step()
        student_actions, _ = greedy(student, record["obs"])
        teacher_actions, teacher_q = greedy(teacher, record["obs"])
        assert record["student_acted"].all()
        assert np.array_equal(record["actions"], student_actions)
        # the labels stay the teacher's: equal to float32 rounding (a batch of 2 envs there, 4 here: up to 3e-5 apart
        # on 2026-12-07's CPU), where the student's Q values differ by whole units
        assert np.allclose(record["q"], teacher_q, atol=1e-4)
    assert (student_actions != teacher_actions).any(), "two random nets disagree somewhere, so the check can fail"
    rollout.keep_obs = False
    rollout.step(relaunch=False)
    chunk = decode(encode(rollout.next_chunk()))
    assert chunk.student_steps == chunk.steps * chunk.envs


def test_the_teachers_share_of_episodes_follows_its_schedule(teacher_and_student):
    mixed = BehaviourSettings(behaviour="mixed", beta_half_life=1000)
    assert [mixed.beta(u) for u in (0, 1000, 2000)] == [1.0, 0.5, 0.25]
    assert BehaviourSettings(behaviour="student").beta(0) == 0.0 and BehaviourSettings().beta(5000) == 1.0
    teacher, student = teacher_and_student
    shares = []
    for beta in (0.75, 0.25):
        rollout = TeacherRollout("pong", teacher, 8, env_config=SHORT, epsilon=0.0, seed=5, chunk_steps=32, groups=1)
        rollout.set_student(student, beta=beta)
        chunks = [rollout.next_chunk() for _ in range(8)]
        acted = np.concatenate([c.student_acted for c in chunks])
        first = np.concatenate([c.first for c in chunks])
        starts = acted[first]  # one draw per episode start
        assert len(starts) >= 60
        episode_of = np.cumsum(first, axis=0)  # an episode keeps one policy from start to end
        for env in range(acted.shape[1]):
            for episode in np.unique(episode_of[:, env])[1:]:
                assert len(set(acted[episode_of[:, env] == episode, env])) == 1
        shares.append(1 - starts.mean())
        assert abs(shares[-1] - beta) < 3 * np.sqrt(beta * (1 - beta) / len(starts)), (beta, shares[-1], len(starts))
    assert shares[0] > shares[1]
