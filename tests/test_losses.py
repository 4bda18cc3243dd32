import numpy as np
import pytest
import torch

from atari_distill.learner.losses import (LOSSES, EntropyWeightedKLLoss, GapWeightedNLLLoss, KLLoss, MSELoss, NLLLoss,
                            hyperparameters, make_loss)


def log_softmax64(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def reference(name, qs, qt, tau):
    if name == "nll":
        return float(np.mean(-log_softmax64(qs)[np.arange(len(qs)), qt.argmax(1)]))
    if name == "mse":
        return float(np.mean(((qs - qt) ** 2).sum(1)))
    pt = np.exp(log_softmax64(qt / tau))
    return float(np.mean((pt * (log_softmax64(qt / tau) - log_softmax64(qs))).sum(1)))


@pytest.mark.parametrize("name", ["kl", "nll", "mse"])
@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01, 0.001])
def test_loss_equals_float64_reference(name, tau):
    rng = np.random.default_rng(hash((name, tau)) % 2**32)
    qs, qt = rng.standard_normal((64, 7)) * 3, rng.standard_normal((64, 7)) * 3
    got = make_loss(name, tau=tau)(torch.tensor(qs, dtype=torch.float32), torch.tensor(qt, dtype=torch.float32))
    assert float(got) == pytest.approx(reference(name, qs, qt, tau), rel=1e-4, abs=1e-5)


def test_kl_is_zero_when_student_matches_sharpened_teacher():
    qt = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    assert float(KLLoss(0.1)(qt / 0.1, qt)) == pytest.approx(0.0, abs=1e-5)


def test_small_tau_turns_kl_into_nll_against_teacher_argmax():
    generator = torch.Generator().manual_seed(0)
    qt, qs = torch.randn(128, 6, generator=generator), torch.randn(128, 6, generator=generator)
    qt[torch.arange(128), qt.argmax(1)] += 0.1  # a clear best action: softmax(q_T / 1e-4) is then one-hot
    assert float(KLLoss(1e-4)(qs, qt)) == pytest.approx(float(NLLLoss()(qs, qt)), rel=1e-4)
    assert abs(float(KLLoss(1.0)(qs, qt)) - float(NLLLoss()(qs, qt))) > 1e-2  # tau = 1 keeps the soft targets


def test_tau_sharpens_the_teacher_distribution():
    qt, qs = torch.randn(16, 6, generator=torch.Generator().manual_seed(2)), torch.zeros(16, 6)
    # against a uniform student, KL = log(A) - H(teacher): a sharper teacher has a larger KL
    assert float(KLLoss(0.01)(qs, qt)) > float(KLLoss(1.0)(qs, qt))


def test_mse_sums_over_actions():
    assert float(MSELoss()(torch.zeros(2, 3), torch.ones(2, 3))) == pytest.approx(3.0)


def test_bad_loss_settings_are_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("l1")
    with pytest.raises(ValueError, match="tau must be positive"):
        make_loss("kl", tau=0.0)


def test_a_loss_carries_its_settings_and_takes_only_its_own():
    assert make_loss("kl", tau=0.1) == KLLoss(0.1)
    assert make_loss("mse", tau=0.1) == MSELoss()  # another loss's setting is not this one's
    assert make_loss("entropy_kl", tau=0.1, gap_tau=2.0) == EntropyWeightedKLLoss(tau=0.1)
    assert [spec.name for spec in hyperparameters()] == ["tau", "gap_tau", "entropy_tau"]
    assert set(LOSSES) == {"kl", "nll", "mse", "gap_nll", "entropy_kl"}


def test_a_new_loss_in_one_place_gets_its_flag_checked_and_into_the_learner(monkeypatch):
    """A loss written only where the losses are (registry + hyperparameter) is a --flag, refused
    out of range in one line, and reaches the learner's config built from it."""
    import dataclasses

    from atari_distill.learner import losses
    from atari_distill.pipelines import config

    @dataclasses.dataclass(frozen=True)
    class HuberLoss(losses.Loss):
        delta: float = losses.hyperparameter(1.0, "Huber threshold", lambda v: v > 0, "be positive")

        def __call__(self, q_student, q_teacher):
            return torch.nn.functional.huber_loss(q_student, q_teacher, delta=self.delta)

    monkeypatch.setitem(losses.LOSSES, "huber", HuberLoss)
    monkeypatch.setattr(HuberLoss, "name", "huber", raising=False)
    settings = dataclasses.make_dataclass(
        "Settings", [(s.name, s.type, dataclasses.field(default=s.default)) for s in hyperparameters()])
    assert {spec.name for spec in dataclasses.fields(settings)} == {"tau", "gap_tau", "entropy_tau", "delta"}
    assert config.loss_for(settings(delta=0.5), "huber") == HuberLoss(0.5)
    with pytest.raises(config.ConfigError, match="^--delta must be positive, got -1"):
        config.loss_for(settings(delta=-1.0), "huber")


def test_the_weighted_losses_are_the_plain_ones_when_every_frame_is_alike():
    """Every frame with the same action gaps (the teacher's Q rows shifted by a constant) weighs the
    same: gap_nll is then NLL, entropy_kl is KL, to rounding."""
    generator = torch.Generator().manual_seed(3)
    row, qs = torch.randn(1, 6, generator=generator), torch.randn(32, 6, generator=generator)
    qt = row + 5 * torch.randn(32, 1, generator=generator)
    assert float(GapWeightedNLLLoss(0.1)(qs, qt)) == pytest.approx(float(NLLLoss()(qs, qt)), rel=1e-5)
    assert float(EntropyWeightedKLLoss(0.01, 0.1)(qs, qt)) == pytest.approx(float(KLLoss(0.01)(qs, qt)), rel=1e-5)


@pytest.mark.parametrize("loss", [GapWeightedNLLLoss(0.1), EntropyWeightedKLLoss(0.01, 0.1)], ids=lambda l: l.name)
def test_a_weighted_loss_pushes_harder_on_the_frame_where_one_action_clearly_wins(loss):
    """Two frames, the same student row and the same greedy action; the teacher's gap is 2.0 on one
    and 0.05 on the other. The plain loss's gradients on the two student rows are about equal (NLL:
    exactly); the weighted loss's gradient on the clear frame is the larger."""
    qt = torch.tensor([[2.0, 0.0, 0.0], [0.05, 0.0, 0.0]])
    qs = torch.zeros(2, 3, requires_grad=True)
    loss(qs, qt).backward()
    clear, close = qs.grad.norm(dim=1)
    assert clear > 2 * close
    qs.grad = None
    NLLLoss()(qs, qt).backward()
    assert qs.grad.norm(dim=1)[0] == pytest.approx(float(qs.grad.norm(dim=1)[1]))
