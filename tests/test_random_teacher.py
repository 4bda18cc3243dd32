import numpy as np

from atari_distill.actors.rollout import TeacherRollout


def test_random_teacher_policy_is_not_degenerate_on_its_own_frames(pong_teacher):
    _, q = TeacherRollout("pong", pong_teacher, 8, seed=5).labelled_stacks(2000)
    shares = np.bincount(q.argmax(1), minlength=6) / len(q)
    entropy = -(shares[shares > 0] * np.log(shares[shares > 0])).sum() / np.log(6)
    print(f"random teacher greedy-action shares {shares.round(3)}, normalised entropy {entropy:.3f}")
    assert shares.max() < 0.5
    assert entropy > 0.7


def test_random_teacher_is_reproducible(pong_teacher):
    from atari_distill.actors.games import game_spec
    from atari_distill.actors.teachers import random_teacher

    again = random_teacher(game_spec("pong"), seed=0)
    assert all((again["model"][k] == v).all() for k, v in pong_teacher["model"].items())
