"""The replay returns exactly what the teacher saw and produced (the invariant in replay/frame_ring.py)."""

import numpy as np
import pytest
import torch

from atari_distill.actors.env import EnvConfig, env_seeds, make_vector_env
from atari_distill.actors.rollout import TeacherRollout
from atari_distill.models.checkpoint import build_network
from atari_distill.replay.chunk import decode, encode
from atari_distill.replay.frame_ring import FRAME_BYTES, STACK, FrameRing, bytes_per_step

SHORT_EPISODES = EnvConfig(max_episode_frames=240, noop_max=30)  # about 60 steps: many episode starts


class Recorder:
    """Replays an actor's recorded actions in a fresh environment with the same seeds: independent truth."""

    def __init__(self, envs: int, seed: int, env_config: EnvConfig = SHORT_EPISODES):
        self.env = make_vector_env("pong", envs, env_config)
        self.obs, _ = self.env.reset(seed=env_seeds(seed, envs))

    def follow(self, chunk) -> np.ndarray:
        stacks = []
        for t in range(chunk.steps):
            stacks.append(self.obs.copy())
            self.obs, *_ = self.env.step(chunk.actions[t].astype(np.int64))
        return np.stack(stacks)  # (T, N, 4, 84, 84)


def run_actors(teacher, chunks_per_actor, drop=None, specs=((0, 3, 11), (1, 2, 23))):
    """Actors' chunks, interleaved, as the replay receives them; plus the true stack of every step.

    `specs` holds (actor id, envs, seed) per actor."""
    rollouts = {a: TeacherRollout("pong", teacher, n, env_config=SHORT_EPISODES, seed=s, actor_id=a, chunk_steps=16)
                for a, n, s in specs}
    recorders = {a: Recorder(n, s) for a, n, s in specs}
    delivered, truth = [], []
    for k in range(chunks_per_actor):
        for actor in rollouts:
            chunk = decode(encode(rollouts[actor].next_chunk()))
            stacks = recorders[actor].follow(chunk)
            assert np.array_equal(stacks[:, :, -1], chunk.frames), "actor frames differ from the environment's"
            if (actor, k) == drop:
                continue
            delivered.append((chunk, stacks))
            truth.extend(stacks[:, n] for n in range(chunk.envs))  # env-major, as the ring numbers steps
    return delivered, np.concatenate(truth)


def test_teacher_q_is_the_teachers_output_on_the_true_stack(pong_teacher):
    delivered, _ = run_actors(pong_teacher, chunks_per_actor=2)
    net = build_network(pong_teacher).eval()
    for chunk, stacks in delivered:
        with torch.inference_mode():
            for t in range(chunk.steps):
                q = net(torch.from_numpy(stacks[t])).numpy()
                # the actor labels its env groups in smaller batches: float sums may round differently
                np.testing.assert_allclose(chunk.q[t], q, rtol=1e-5, atol=1e-4)
                assert np.array_equal(q.argmax(1), chunk.q[t].argmax(1))


@pytest.mark.parametrize("capacity", [10_000, 301])  # 301: the ring wraps many times, mid-chunk
def test_sampled_stack_is_bit_exact_after_episode_start_and_wrap(pong_teacher, capacity):
    delivered, truth = run_actors(pong_teacher, chunks_per_actor=10)
    ring = FrameRing(capacity, num_actions=6)
    for chunk, _ in delivered:
        ring.insert(chunk)
    q_truth = np.concatenate([np.swapaxes(c.q, 0, 1).reshape(-1, 6) for c, _ in delivered])

    slots = np.arange(ring.size)
    stacks, complete = ring.stacks(slots)
    seqs = ring.seq[slots]
    assert complete.mean() > 0.9
    assert np.array_equal(stacks[complete], truth[seqs[complete]])
    assert np.array_equal(ring.q[slots], q_truth[seqs])
    episode_starts = complete & ~truth[seqs][:, 0].any(axis=(1, 2))
    assert episode_starts.sum() >= 5, "the check must cover steps right after an episode start"

    batch = ring.sample(4096, np.random.default_rng(0))
    assert np.array_equal(batch["obs"], truth[batch["seq"]])
    assert np.array_equal(batch["q"], q_truth[batch["seq"]])
    if capacity == 301:
        assert ring.inserted > 2 * capacity
        assert not complete.all(), "steps whose predecessors were overwritten must be retired"


def test_lost_chunk_never_joins_stacks_across_the_gap(pong_teacher):
    delivered, truth = run_actors(pong_teacher, chunks_per_actor=4, drop=(0, 2))
    ring = FrameRing(10_000, num_actions=6)
    for chunk, _ in delivered:
        ring.insert(chunk)
    stacks, complete = ring.stacks(np.arange(ring.size))
    assert np.array_equal(stacks[complete], truth[complete])
    assert (~complete).sum() > 0  # the steps right after the gap cannot be rebuilt and are not offered
    batch = ring.sample(2048, np.random.default_rng(1))
    assert np.array_equal(batch["obs"], truth[batch["seq"]])


def test_chunk_of_wrong_action_count_is_refused(pong_teacher):
    delivered, _ = run_actors(pong_teacher, chunks_per_actor=1)
    with pytest.raises(ValueError, match="6 actions"):
        FrameRing(1000, num_actions=4).insert(delivered[0][0])


def test_ring_memory_is_frame_bytes_plus_q_plus_metadata():
    ring = FrameRing(1000, num_actions=6)
    assert ring.nbytes() == 1000 * bytes_per_step(6) + FRAME_BYTES  # plus the zero padding row
    assert bytes_per_step(6) <= 1.05 * (7056 + 24)


@pytest.mark.parametrize("into", [False, True])
def test_a_large_gather_split_over_threads_is_the_plain_fancy_index(monkeypatch, into):
    import atari_distill.replay.frame_ring as frame_ring
    monkeypatch.setattr(frame_ring, "GATHER_THREADS", 3)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (1001, 84, 84), dtype=np.uint8)
    rows = rng.integers(0, 1001, (257, STACK))  # 7.3 MB: three parts, of unequal lengths
    out = np.full((257, STACK, 84, 84), 7, np.uint8) if into else None
    got = frame_ring.gather(frames, rows, out)
    assert np.array_equal(got, frames[rows]) and (got is out or not into)
