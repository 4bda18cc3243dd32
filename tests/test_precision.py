"""Float16 teacher labels are judged on the target each loss trains on; bf16 autocast is kept off MSE."""

import pytest
import torch

from atari_distill.actors import precision
from atari_distill.actors.precision import KL_TV_TOLERANCE, half_precision_keeps_target
from atari_distill.learner.learner import bf16_autocast
from atari_distill.learner.losses import KLLoss, MSELoss, NLLLoss, make_loss
from atari_distill.models.networks import QNetwork
from atari_distill.zoo import publish

STRICTEST = KLLoss(tau=0.01)


def frames(n: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def close_top_two() -> QNetwork:
    """Q near 20, where fp16's step is 1/64: the top two actions, 0.024 apart, stay in order, but fp16
    reads their gap as 0.031, which tau 0.01 turns from 2.4 logits into 3.1."""
    net = QNetwork("net3", {"g": 4}).eval()
    with torch.no_grad():
        net.heads["g"].weight.zero_()
        net.heads["g"].bias.copy_(torch.tensor([20.0, 20.024, 15.0, 15.0]))
    return net


def test_kl_target_moved_without_a_changed_action_is_refused():
    net, x = close_top_two(), frames()
    payload = {"preset": "net3", "heads": {"g": 4}, "model": net.state_dict()}
    assert publish.half_precision_keeps_actions(payload, x) == (True, len(x))  # the old checks accept it
    assert half_precision_keeps_target(net, x, NLLLoss())[0]
    ok, measured, line = half_precision_keeps_target(net, x, STRICTEST, "g")
    assert not ok and measured > 2 * KL_TV_TOLERANCE, line
    assert line.startswith("float32 labels: KL target at tau 0.01") and "64 frames" in line


def test_the_same_teacher_keeps_a_soft_kl_target_and_its_values():
    net, x = close_top_two(), frames()
    ok, measured, line = half_precision_keeps_target(net, x, KLLoss(tau=1.0))
    assert ok and measured < KL_TV_TOLERANCE / 2, line
    assert half_precision_keeps_target(net, x, MSELoss())[0]
    # a sweep's labels feed every loss in it: the strictest decides
    ok, measured, line = half_precision_keeps_target(net, x, (KLLoss(tau=1.0), MSELoss(), STRICTEST))
    assert not ok and measured > KL_TV_TOLERANCE and line.count(";") == 2, line


def test_a_teacher_well_within_tolerance_labels_in_float16():
    torch.manual_seed(0)
    net, x = QNetwork("net3", {"g": 6}).eval(), frames()
    with torch.no_grad():  # Q a few tau apart: a target neither uniform nor one-hot, with small fp16 errors
        net.heads["g"].weight.mul_(10)
        target = torch.softmax(net(x, "g") / STRICTEST.tau, 1)
    assert 0.3 < target.max(1).values.mean() < 0.9 and len(set(target.argmax(1).tolist())) > 1
    ok, measured, line = half_precision_keeps_target(net, x, STRICTEST)
    assert ok and measured < KL_TV_TOLERANCE / 2, line
    assert line.startswith("float16 labels: KL target at tau 0.01") and "(float16 compute)" in line


def test_the_check_leaves_the_float32_teacher_untouched():
    net = close_top_two()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    half_precision_keeps_target(net, frames(8), STRICTEST)
    after = net.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], before[k]) for k in before)


def test_greedy_ties_fail_nll_and_overflow_fails_mse():
    x = frames(16)
    tie = QNetwork("net3", {"g": 4}).eval()
    with torch.no_grad():
        tie.heads["g"].weight.zero_()
        tie.heads["g"].bias.copy_(torch.tensor([0.0, 1.0, 1.0 + 1e-5, 0.0]))
    ok, changed, line = half_precision_keeps_target(tie, x, NLLLoss())
    assert not ok and changed == 1.0, line
    big = QNetwork("net3", {"g": 4}).eval()
    with torch.no_grad():
        big.heads["g"].bias.fill_(70_000.0)  # past float16's largest value
    ok, error, line = half_precision_keeps_target(big, x, MSELoss())
    assert not ok and error > precision.MSE_RELATIVE_TOLERANCE, line


def test_a_loss_with_no_check_is_labelled_in_float32():
    class Huber:
        name = "huber"

    ok, measured, line = half_precision_keeps_target(close_top_two(), frames(4), Huber())
    assert not ok and measured != measured and "no float16 check for loss 'huber'" in line


def test_without_float16_kernels_it_judges_rounded_weights():
    class NoHalfKernels(QNetwork):
        def forward(self, obs, game=None):
            if obs.dtype == torch.float16:
                raise RuntimeError('"slow_conv2d_cpu" not implemented for \'Half\'')
            return super().forward(obs, game)

    net = NoHalfKernels("net3", {"g": 4}).eval()
    net.load_state_dict(close_top_two().state_dict())
    ok, _, line = half_precision_keeps_target(net, frames(8), STRICTEST)
    assert not ok and "(fp16-rounded weights, float32 compute)" in line


def test_rollout_check_judges_calibration_frames_for_its_losses(monkeypatch):
    import atari_distill.actors.teachers as teachers
    from atari_distill.actors.rollout import TeacherRollout, half_keeps_targets

    monkeypatch.setattr(teachers, "calibration_frames", lambda game, seed: frames(16))
    net = close_top_two()
    assert half_keeps_targets(net, "g", torch.device("cpu"), KLLoss(tau=1.0))[0]
    ok, line = half_keeps_targets(net, "g", torch.device("cpu"), STRICTEST)
    assert not ok and "tau 0.01" in line
    default = TeacherRollout.__init__.__kwdefaults__["label_losses"]
    assert (default.name, default.tau) == (STRICTEST.name, STRICTEST.tau)


def student_fit_to(residual: float, seed: int = 0) -> tuple[QNetwork, torch.Tensor, torch.Tensor]:
    """The default student with Q near 10 and targets `residual` x max |Q| (rms) from its float32 outputs."""
    torch.manual_seed(seed)
    net, x = QNetwork("net1", {"g": 6}), frames()
    with torch.no_grad():
        net.heads["g"].weight.mul_(100)
        net.heads["g"].bias.fill_(10.0)
        q = net(x, "g")
    noise = torch.randn(q.shape, generator=torch.Generator().manual_seed(seed))
    return net, x, q + residual * q.abs().max() * noise


@pytest.mark.parametrize("name", ["mse", "kl", "nll"])
def test_bf16_autocast_keeps_the_loss_within_1_percent_except_mse(name):
    net, x, target = student_fit_to(0.01)
    loss_fn = make_loss(name, tau=0.01)
    losses = []
    for amp in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp, cache_enabled=False), torch.no_grad():
            losses.append(loss_fn(net(x, "g").float(), target).item())
    within = abs(losses[1] - losses[0]) <= 0.01 * losses[0]
    assert within == loss_fn.bf16_outputs, losses
    assert bf16_autocast(True, torch.device("cuda"), loss_fn) == (name != "mse")
    assert not bf16_autocast(True, torch.device("cpu"), loss_fn)
    assert not bf16_autocast(False, torch.device("cuda"), loss_fn)


def test_the_weighted_losses_are_judged_on_their_target_and_their_weights():
    from atari_distill.learner.losses import EntropyWeightedKLLoss, GapWeightedNLLLoss

    net, x = close_top_two(), frames()
    ok, measured, line = half_precision_keeps_target(net, x, GapWeightedNLLLoss(gap_tau=0.01))
    assert not ok and measured > KL_TV_TOLERANCE and "gap weight's softmax at tau 0.01" in line, line
    assert half_precision_keeps_target(net, x, GapWeightedNLLLoss(gap_tau=1.0))[0]  # the greedy action holds
    ok, _, line = half_precision_keeps_target(net, x, EntropyWeightedKLLoss(tau=1.0, entropy_tau=0.01))
    assert not ok and "entropy weight's softmax at tau 0.01" in line, line
    assert half_precision_keeps_target(net, x, EntropyWeightedKLLoss(tau=1.0, entropy_tau=1.0))[0]
