import numpy as np
import pytest
import torch

from learner.losses import KLLoss, MSELoss, NLLLoss, make_loss


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
    got = make_loss(name, tau)(torch.tensor(qs, dtype=torch.float32), torch.tensor(qt, dtype=torch.float32))
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
        make_loss("kl", 0.0)
