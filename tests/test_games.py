import pytest

from atari_distill.actors.games import PAPER_GAMES, UnknownGameError, canonical_name, game_spec

PAPER_ACTIONS = {"breakout": 4, "enduro": 9, "ms_pacman": 9, "pong": 6, "qbert": 6,
                 "riverraid": 18, "seaquest": 18, "space_invaders": 6, "beam_rider": 9, "freeway": 3}


@pytest.mark.parametrize("spelling", ["pong", "Pong", "ALE/Pong-v5", "PongNoFrameskip-v4", " PONG "])
def test_names_are_matched_forgivingly(spelling):
    assert canonical_name(spelling) == "pong"


def test_multiword_titles_resolve():
    assert canonical_name("Ms. Pac-Man") == "ms_pacman"
    assert canonical_name("Q*bert") == "qbert"
    assert canonical_name("SpaceInvaders") == "space_invaders"


def test_paper_games_have_their_minimal_action_sets():
    assert set(PAPER_GAMES) == set(PAPER_ACTIONS)
    for name, actions in PAPER_ACTIONS.items():
        spec = game_spec(name)
        assert (spec.num_actions, spec.in_paper) == (actions, True)


def test_any_shipped_rom_is_accepted():
    spec = game_spec("montezuma_revenge")
    assert spec.num_actions == 18 and not spec.in_paper


def test_unknown_game_suggests_close_names():
    with pytest.raises(UnknownGameError, match="did you mean: pong"):
        canonical_name("pongg")
