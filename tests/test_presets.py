"""The paper's networks, counted exactly as Rusu et al. (2015) count them."""

import pytest
import torch

from atari_distill.models.checkpoint import CheckpointError, build_network, load_checkpoint, make_payload, save_checkpoint
from atari_distill.models.networks import PRESETS, QNetwork, UnknownPresetError, canonical_preset, parameter_count, preset_table

PAPER_COUNTS_18_ACTIONS = {"nature": 1_693_362, "net1": 427_874, "net2": 113_346, "net3": 61_954}


@pytest.mark.parametrize("name,count", PAPER_COUNTS_18_ACTIONS.items())
def test_compression_presets_have_the_papers_exact_parameter_counts(name, count):
    assert parameter_count(QNetwork(name, {"g": 18})) == count


def test_compression_presets_are_the_papers_fractions_of_the_teacher():
    pct = {row["preset"]: round(row["pct_of_nature"]) for row in preset_table(18)}
    assert (pct["net1"], pct["net2"], pct["net3"]) == (25, 7, 4)


def test_three_game_multitask_student_matches_the_paper():
    """Nature trunk and fc 512, then per game fc 128 and outputs; the paper's 1,882,668 is 12 outputs in all."""
    net = QNetwork("multi-3", {"a": 4, "b": 4, "c": 4})
    assert parameter_count(net) == 1_882_668
    assert [m.out_channels for m in net.trunk if isinstance(m, torch.nn.Conv2d)] == [32, 64, 64]
    assert [m.out_features for m in net.heads["a"] if isinstance(m, torch.nn.Linear)] == [128, 4]


def test_ten_game_multitask_student_matches_the_paper():
    """Convs 64/64/64, shared fc 1500, per game fc 128; the paper's 6,756,721 is 85 outputs in all
    (ale-py's minimal sets of the ten games hold 88: 6,757,108)."""
    actions = [4, 9, 9, 6, 6, 18, 18, 6, 6, 3]  # 85
    assert parameter_count(QNetwork("multi-10", {f"g{i}": n for i, n in enumerate(actions)})) == 6_756_721
    ten = {"breakout": 4, "enduro": 9, "ms_pacman": 9, "pong": 6, "qbert": 6, "riverraid": 18, "seaquest": 18,
           "space_invaders": 6, "beam_rider": 9, "freeway": 3}
    assert parameter_count(QNetwork("multi-10", ten)) == 6_757_108


def test_per_game_layers_stay_apart():
    net = QNetwork("multi-3", {"pong": 6, "breakout": 4})
    x = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    net(x, "pong").sum().backward()
    assert all(p.grad is None for p in net.heads["breakout"].parameters())
    assert all(p.grad is not None for p in net.heads["pong"].parameters())


def test_checkpoint_of_renamed_preset_still_loads(tmp_path):
    """paper-25 was net1 under another name: the same weights load, and the network says net1."""
    net = QNetwork("net1", {"pong": 6})
    payload = make_payload(net, "teacher")
    payload["preset"] = "paper-25"
    save_checkpoint(tmp_path / "old.pt", payload)
    rebuilt = build_network(load_checkpoint(tmp_path / "old.pt"))
    assert rebuilt.preset_name == "net1"
    x = torch.randint(0, 255, (3, 4, 84, 84), dtype=torch.uint8)
    assert torch.equal(rebuilt(x), net(x))


@pytest.mark.parametrize("retired", ["paper-7", "paper-4", "multitask"])
def test_checkpoint_of_retired_preset_is_refused_with_the_reason(tmp_path, retired):
    payload = make_payload(QNetwork("net3", {"pong": 6}), "student")
    payload["preset"] = retired
    save_checkpoint(tmp_path / "old.pt", payload)
    with pytest.raises(CheckpointError, match=f"preset '{retired}' was retired: .*not the paper's"):
        load_checkpoint(tmp_path / "old.pt")


def test_unknown_preset_names_the_choices():
    with pytest.raises(UnknownPresetError, match="choose one of: " + ", ".join(PRESETS)):
        canonical_preset("huge")
