"""Teachers trained with CleanRL and Stable-Baselines3 play in our actors with the same Q values."""

import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from atari_distill.actors.env import make_vector_env
from atari_distill.actors.games import game_spec
from atari_distill.actors.teachers import load_teacher
from atari_distill.models.checkpoint import CheckpointError, build_network

pytestmark = pytest.mark.xdist_group("test_teacher_import")  # its module-scoped fixture is built once


def our_observations(steps=24, envs=4, seed=3) -> np.ndarray:
    env = make_vector_env("pong", envs)
    obs, _ = env.reset(seed=seed)
    rng, out = np.random.default_rng(seed), []
    for _ in range(steps):
        out.append(obs.copy())
        obs, *_ = env.step(rng.integers(0, 6, envs))
    env.close()
    return np.concatenate(out)


class CleanRLQNetwork(nn.Module):
    """CleanRL's dqn_atari.py network, as written there (env replaced by the action count)."""

    def __init__(self, num_actions):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3136, 512), nn.ReLU(),
            nn.Linear(512, num_actions),
        )

    def forward(self, x):
        return self.network(x / 255.0)


def test_cleanrl_state_dict_gives_the_same_q_values(tmp_path):
    torch.manual_seed(0)
    theirs = CleanRLQNetwork(6).eval()
    path = tmp_path / "dqn_atari.cleanrl_model"
    torch.save(theirs.state_dict(), path)  # what dqn_atari.py's --save-model writes
    payload = load_teacher(str(path), game_spec("pong"))
    assert payload["extra"]["imported_from"] == "cleanrl" and payload["heads"] == {"pong": 6}
    obs = torch.from_numpy(our_observations())
    with torch.inference_mode():
        expected = theirs(obs.float())
        ours = build_network(payload).eval()(obs)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def sb3_pong_zip(tmp_path_factory):
    import ale_py
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=1, seed=0), n_stack=4)
    model = DQN("CnnPolicy", env, buffer_size=2_000, learning_starts=100, train_freq=4, batch_size=32,
                optimize_memory_usage=False, seed=0, device="cpu")
    model.learn(total_timesteps=400)  # real training steps: the weights are SB3's own, not an init
    path = tmp_path_factory.mktemp("sb3") / "dqn-PongNoFrameskip-v4.zip"
    model.save(path)
    env.close()
    return path, model


def test_sb3_dqn_zip_gives_the_same_q_values_as_its_q_net(sb3_pong_zip):
    path, model = sb3_pong_zip
    payload = load_teacher(str(path), game_spec("pong"))
    assert payload["extra"]["imported_from"] == "stable-baselines3"
    obs = torch.from_numpy(our_observations())
    with torch.inference_mode():
        expected = model.q_net(obs)  # SB3 scales uint8 images by 1/255 itself
        ours = build_network(payload).eval()(obs)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert (ours.argmax(1) == expected.argmax(1)).all()


def test_imported_teacher_with_the_wrong_action_count_is_refused(sb3_pong_zip, tmp_path):
    path, _ = sb3_pong_zip
    with pytest.raises(CheckpointError, match="has 6 actions for breakout, but breakout's minimal action set has 4"):
        load_teacher(str(path), game_spec("breakout"))
    torch.save(CleanRLQNetwork(4).state_dict(), tmp_path / "b.cleanrl_model")
    with pytest.raises(CheckpointError, match="has 4 actions for pong"):
        load_teacher(str(tmp_path / "b.cleanrl_model"), game_spec("pong"))


def test_sb3_zip_with_unexpected_members_is_refused(sb3_pong_zip, tmp_path):
    path, _ = sb3_pong_zip
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as out:
        for item in source.infolist():
            out.writestr(item, source.read(item.filename))
        out.writestr("payload.pkl", b"not expected here")
    with pytest.raises(CheckpointError, match="unexpected members"):
        load_teacher(str(tampered), game_spec("pong"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"network.0.weight": Exploit()}, tmp_path / "evil.cleanrl_model")
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_teacher(str(tmp_path / "evil.cleanrl_model"), game_spec("pong"))
