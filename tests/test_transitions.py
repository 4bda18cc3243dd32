"""n-step DQN transitions from the frame ring equal a plain walk along each environment's stream."""

import numpy as np
import pytest

from atari_distill.replay.chunk import Chunk, decode, encode
from atari_distill.replay.frame_ring import FrameRing
from tests.test_frame_ring import run_actors

GAMMA = 0.9


def expected_transition(stream: list[int], i: int, steps: dict, n: int):
    """(return, discount, bootstrap seq) for stream position i, or None if it cannot be sampled."""
    if i + 1 < len(stream) and steps[stream[i + 1]]["first"]:
        return None  # the reset step: its action was ignored
    total, discount = 0.0, 1.0
    for j in range(i, i + n):
        step = steps[stream[j]]
        total += discount * np.sign(step["reward"])
        discount *= GAMMA
        if step["terminated"]:
            return total, 0.0, None
        if j + 1 >= len(stream):
            return None
        if step["truncated"]:
            return total, discount, stream[j + 1]
    return total, discount, stream[i + n]


def synthetic_chunks(envs=2, steps=12, chunks=3, seed=0, life_losses=()):
    """Hand-made episodes with terminal and truncated ends, laid out as AtariVectorEnv emits them;
    `life_losses` ((t, env) pairs) are terminal but the game plays on: no reset follows.

    Each frame's pixel [0, 0] is the step's number within its env stream, so a stack names its steps."""
    rng = np.random.default_rng(seed)
    total = steps * chunks
    first = np.zeros((total, envs), bool)
    terminated = np.zeros((total, envs), bool)
    truncated = np.zeros((total, envs), bool)
    rewards = rng.choice([-1.0, 0.0, 0.0, 2.0], size=(total, envs)).astype(np.float32)
    first[0] = True
    for env in range(envs):
        t = int(rng.integers(3, 8))
        while t + 2 < total:
            (terminated if rng.random() < 0.6 else truncated)[t, env] = True
            rewards[t + 1, env] = 0.0  # the reset step
            first[t + 2, env] = True
            t += int(rng.integers(4, 10))
    for t, env in life_losses:
        assert not (first[t - 2:t + 3, env].any() or terminated[t - 1:t + 2, env].any()
                    or truncated[t - 1:t + 2, env].any()), "a life is lost mid-episode"
        terminated[t, env] = True
    frames = np.zeros((total, envs, 84, 84), np.uint8)
    frames[:, :, 0, 0] = np.arange(total)[:, None]
    out = []
    for c in range(chunks):
        part = slice(c * steps, (c + 1) * steps)
        out.append(Chunk(game="pong", actor_id=0, chunk_index=c, teacher_version=c, frames=frames[part],
                         q=np.zeros((steps, envs, 6), np.float32), actions=rng.integers(0, 6, (steps, envs)).astype(np.uint8),
                         rewards=rewards[part], first=first[part], terminated=terminated[part],
                         truncated=truncated[part]))
    return out


def stream_truth(chunks):
    """Per-seq step facts and each env stream's seqs, in the order the ring numbers them."""
    steps, streams, seq = {}, {}, 0
    for chunk in chunks:
        for env in range(chunk.envs):
            for t in range(chunk.steps):
                steps[seq] = {"reward": float(chunk.rewards[t, env]), "first": bool(chunk.first[t, env]),
                              "terminated": bool(chunk.terminated[t, env]), "truncated": bool(chunk.truncated[t, env]),
                              "action": int(chunk.actions[t, env])}
                streams.setdefault((chunk.actor_id, env), []).append(seq)
                seq += 1
    return steps, streams


def check_batch(batch, steps, streams, n, stack_truth):
    position = {s: (key, i) for key, stream in streams.items() for i, s in enumerate(stream)}
    for k, seq in enumerate(batch["seq"]):
        key, i = position[int(seq)]
        expected = expected_transition(streams[key], i, steps, n)
        assert expected is not None, f"seq {seq} is not a valid n-step start but was sampled"
        total, discount, bootstrap = expected
        assert batch["returns"][k] == pytest.approx(total, abs=1e-6)
        assert batch["discount"][k] == pytest.approx(discount, abs=1e-6)
        assert batch["actions"][k] == steps[int(seq)]["action"]
        assert np.array_equal(batch["obs"][k], stack_truth(int(seq)))
        if bootstrap is not None:
            assert np.array_equal(batch["next_obs"][k], stack_truth(bootstrap))


@pytest.mark.parametrize("n, life_losses", [(1, ()), (3, ()), (3, ((30, 0), (21, 1)))])
def test_n_step_returns_stop_at_terminal_and_bootstrap_after_truncation(n, life_losses):
    chunks = [decode(encode(c)) for c in synthetic_chunks(seed=3 if life_losses else 0, life_losses=life_losses)]
    ring = FrameRing(10_000, num_actions=6)
    for chunk in chunks:
        ring.insert(chunk)
    steps, streams = stream_truth(chunks)
    position = {s: (key, i) for key, stream in streams.items() for i, s in enumerate(stream)}

    def stack_truth(seq):
        key, i = position[seq]
        stack = np.zeros((4, 84, 84), np.uint8)
        for back in range(4):
            j = i - back
            if j < 0:
                break
            stack[3 - back] = ring.frames[streams[key][j] % ring.capacity]
            if steps[streams[key][j]]["first"]:
                break
        return stack

    batch = ring.sample_transitions(2048, n, GAMMA, np.random.default_rng(0))
    check_batch(batch, steps, streams, n, stack_truth)
    sampled = set(batch["seq"].tolist())
    valid = {s for s, (key, i) in position.items() if expected_transition(streams[key], i, steps, n)}
    assert sampled == valid, "sampling must cover every valid start and nothing else"
    assert (batch["discount"] == 0).any() and (batch["discount"] > 0).any()
    for t, env in life_losses:  # the step after a lost life is sampled, its stack reaching back across the loss
        after = streams[(0, env)][t + 1]
        assert after in sampled and batch["obs"][list(batch["seq"]).index(after)][2, 0, 0] == t


def test_transitions_are_bit_exact_on_real_pong_with_wrap(pong_teacher):
    delivered, truth = run_actors(pong_teacher, chunks_per_actor=8)
    ring = FrameRing(400, num_actions=6)
    chunks = [chunk for chunk, _ in delivered]
    for chunk in chunks:
        ring.insert(chunk)
    steps, streams = stream_truth(chunks)
    batch = ring.sample_transitions(1024, 3, GAMMA, np.random.default_rng(2))
    oldest = ring.inserted - ring.capacity
    assert (batch["seq"] >= oldest).all()
    check_batch(batch, steps, streams, 3, lambda seq: truth[seq])
    assert any(s["truncated"] for s in steps.values()), "the episodes must end inside the run"


def test_a_restarted_actors_new_stream_never_joins_its_dead_one():
    """Ray restarts a dead exploring actor: its new stream begins again at chunk 0 with every env
    reset. No n-step walk and no stack may cross from the dead stream's last steps (mid-episode)
    into the new stream's first ones; every valid start of either stream is still sampled."""
    dead, reborn = synthetic_chunks(seed=5, chunks=3), synthetic_chunks(seed=6, chunks=2)
    assert not (dead[-1].terminated[-1] | dead[-1].truncated[-1]).all(), "the dead stream must end mid-episode"
    chunks = [decode(encode(c)) for c in dead + reborn]
    ring = FrameRing(10_000, num_actions=6)
    for chunk in chunks:
        ring.insert(chunk)
    steps, streams = stream_truth(chunks[:3])
    later, later_streams = stream_truth(chunks[3:])
    offset = len(steps)
    steps.update({seq + offset: facts for seq, facts in later.items()})
    streams.update({("reborn", env): [seq + offset for seq in stream] for (_, env), stream in later_streams.items()})
    position = {s: (key, i) for key, stream in streams.items() for i, s in enumerate(stream)}

    def stack_truth(seq):
        key, i = position[seq]
        stack = np.zeros((4, 84, 84), np.uint8)
        for back in range(min(4, i + 1)):
            stack[3 - back] = ring.frames[streams[key][i - back] % ring.capacity]
            if steps[streams[key][i - back]]["first"]:
                break
        return stack

    batch = ring.sample_transitions(4096, 3, GAMMA, np.random.default_rng(0))
    check_batch(batch, steps, streams, 3, stack_truth)
    valid = {s for s, (key, i) in position.items() if expected_transition(streams[key], i, steps, 3)}
    assert set(batch["seq"].tolist()) == valid
    assert ring.prev[offset % ring.capacity] == -1  # the new stream's first step has no predecessor


def test_a_ring_wrapped_between_two_chunks_never_links_one_actors_step_to_anothers():
    """Actor 1's chunk wraps the ring between actor 0's two chunks, so the slot of actor 0's last
    step holds actor 1's step when actor 0's next chunk links its stream on. No n-step target may
    then bootstrap from the wrong actor's frames (n = 4: a shorter walk never reaches a full stack
    of the other stream), and every transition still stored whole is sampled."""
    import dataclasses

    def tagged(chunk, actor_id, index):
        frames = chunk.frames.copy()
        frames[:, :, 0, 1] = actor_id + 1  # a stack names its actor too
        return dataclasses.replace(chunk, actor_id=actor_id, chunk_index=index, frames=frames)

    behind = synthetic_chunks(envs=2, steps=12, chunks=2, seed=1)
    ahead = synthetic_chunks(envs=2, steps=30, chunks=1, seed=2)
    chunks = [decode(encode(c)) for c in (tagged(behind[0], 0, 0), tagged(ahead[0], 1, 0), tagged(behind[1], 0, 1))]
    ring = FrameRing(60, num_actions=6)
    for chunk in chunks:
        ring.insert(chunk)
    steps, streams = stream_truth(chunks)
    position = {s: (key, i) for key, stream in streams.items() for i, s in enumerate(stream)}
    for env in range(2):  # the slot of actor 0's last step before its second chunk: actor 1's now
        assert position[int(ring.seq[streams[(0, env)][11] % ring.capacity])][0][0] == 1
    produced = iter(frame for chunk in chunks for env in range(chunk.envs) for frame in chunk.frames[:, env])
    frames = {seq: next(produced) for seq in range(len(steps))}  # stream_truth's numbering: the ring's
    n = 4

    def history(seq):
        key, i = position[seq]
        back = [streams[key][j] for j in range(i, max(i - 4, -1), -1)]
        cut = next((k for k, s in enumerate(back) if steps[s]["first"]), len(back) - 1)
        return back[:cut + 1], len(back) == 4 or steps[back[cut]]["first"]

    def stack_truth(seq):
        stack = np.zeros((4, 84, 84), np.uint8)
        for k, s in enumerate(history(seq)[0]):
            stack[3 - k] = frames[s]
        return stack

    def stored_whole(seq):
        key, i = position[seq]
        expected = expected_transition(streams[key], i, steps, n)
        if expected is None:
            return False
        end = expected[2] if expected[2] is not None else next(
            s for s in streams[key][i:] if steps[s]["terminated"])
        needed = [*history(seq)[0], *streams[key][i:streams[key].index(end) + 1], *history(end)[0]]
        whole = history(seq)[1] and history(end)[1]
        return whole and min(needed) >= ring.inserted - ring.capacity

    batch = ring.sample_transitions(4096, n, GAMMA, np.random.default_rng(0))
    crossed = (batch["next_obs"][:, 3, 0, 1] != batch["obs"][:, 3, 0, 1]).sum()
    assert crossed == 0, f"{crossed} of 4096 targets bootstrap from the other actor's frames"
    check_batch(batch, steps, streams, n, stack_truth)
    assert set(batch["seq"].tolist()) == {s for s in position if stored_whole(s)}
