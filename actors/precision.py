"""Whether a teacher may label in float16, judged on the target the student's loss trains on.

The same greedy action is not enough: at tau 0.01 the KL target softmax(q/tau) multiplies
every Q error by 100, so fp16 errors that never flip an argmax still move the target far.
Each loss (learner/losses.py) is judged on what it reads of the labels:
  kl   max over frames of the total variation between softmax(q16/tau) and softmax(q32/tau)
  nll  the fraction of frames whose greedy action changes
  mse  max |q16 - q32| over frames and actions, over the Q scale max |q32|
  gap_nll     nll's check, and kl's at gap_tau (its frame weight is the greedy action's probability there)
  entropy_kl  kl's check at tau and at entropy_tau (its frame weight is that softmax's entropy)
A loss not named here is labelled in float32. On 768 random-play frames, float16 compute moves the
five zoo teachers' tau-0.01 KL targets 0.012-0.16 in total variation (tau 1: at most 0.0015) and
flips 1-7 greedy actions where two Q values all but tie; keeping only the head in float32 still
left 0.007-0.014 (Pong, Enduro, Ms. Pac-Man). So a refused teacher runs wholly in float32.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KLTarget:
    """What a KL loss reads of the labels (learner/losses.py's KLLoss has the same name and tau)."""

    tau: float
    name: str = "kl"


STRICTEST_LOSS = KLTarget(tau=0.01)  # the smallest tau the project's runs use: what labels of unknown use must keep
# TV is the most any event's target probability can move, the greedy action's included: at most 1 point
KL_TV_TOLERANCE = 0.01
NLL_CHANGED_TOLERANCE = 0.0  # the NLL target is the greedy action itself
# ten fp16 half-ulps (2^-11 each) of the largest Q: layers of rounding stay under it, lost digits do not
MSE_RELATIVE_TOLERANCE = 5e-3
BATCH = 256


@dataclass(frozen=True)
class _NLLTarget:
    name: str = "nll"


NLL_TARGET = _NLLTarget()


def half_precision_keeps_target(net: torch.nn.Module, frames: torch.Tensor, loss, game: str | None = None
                                ) -> tuple[bool, float, str]:
    """(ok, measured, line) for labelling with `net` in float16 for `loss` (one of learner/losses.py's,
    or a list or tuple of them, which must all hold: a sweep's labels feed every loss), on `frames`,
    uint8 stacks on the net's device. `measured` is the first failing loss's number (else the one
    nearest its tolerance), in that loss's unit. The net is left as it was: the check rounds a copy."""
    losses = list(loss) if isinstance(loss, (list, tuple)) else [loss]
    q32, q16, how = _both(net, frames, game)
    results = [_judge(one, q32, q16) for one in losses]
    ok = all(r[0] for r in results)
    worst = next((r for r in results if not r[0]), None) or max(results, key=lambda r: r[1] / max(r[2], 1e-12))
    verdict = "float16 labels" if ok else "float32 labels"
    return ok, worst[1], f"{verdict}: {'; '.join(r[3] for r in results)} on {len(frames)} frames ({how})"


def _both(net: torch.nn.Module, frames: torch.Tensor, game: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    half = copy.deepcopy(net).half()
    batches = [frames[start:start + BATCH] for start in range(0, len(frames), BATCH)]
    with torch.inference_mode():
        q32 = torch.cat([net(x, game).float() for x in batches])
        try:
            q16, how = torch.cat([half(x.half() / 255.0, game).float() for x in batches]), "float16 compute"
        except RuntimeError:
            if frames.device.type != "cpu":
                raise
            rounded = half.float()  # a torch without float16 kernels on CPU: what rounding the weights does
            q16, how = torch.cat([rounded(x, game) for x in batches]), "fp16-rounded weights, float32 compute"
    return q32, q16, how


def _softmax_moved(q32: torch.Tensor, q16: torch.Tensor, tau: float, what: str) -> tuple[bool, float, float, str]:
    tv = 0.5 * (torch.softmax(q16 / tau, 1) - torch.softmax(q32 / tau, 1)).abs().sum(1).max().item()
    return (tv <= KL_TV_TOLERANCE, tv, KL_TV_TOLERANCE, f"{what} at tau {tau:g} is {tv:.2g} in total variation from "
                                                        f"float32's (tolerance {KL_TV_TOLERANCE:g})")


def _all_of(results: list[tuple[bool, float, float, str]]) -> tuple[bool, float, float, str]:
    """Several checks of one loss: the first failing one's number (else the nearest its tolerance), every line."""
    worst = next((r for r in results if not r[0]), None) or max(results, key=lambda r: r[1] / max(r[2], 1e-12))
    return all(r[0] for r in results), worst[1], worst[2], "; ".join(r[3] for r in results)


def _judge(loss, q32: torch.Tensor, q16: torch.Tensor) -> tuple[bool, float, float, str]:
    name = getattr(loss, "name", type(loss).__name__)
    if name == "kl":
        return _softmax_moved(q32, q16, loss.tau, "KL target")
    if name == "gap_nll":
        return _all_of([_judge(NLL_TARGET, q32, q16), _softmax_moved(q32, q16, loss.gap_tau, "gap weight's softmax")])
    if name == "entropy_kl":
        return _all_of([_softmax_moved(q32, q16, loss.tau, "KL target"),
                        _softmax_moved(q32, q16, loss.entropy_tau, "entropy weight's softmax")])
    if name == "nll":
        changed = (q16.argmax(1) != q32.argmax(1)).float().mean().item()
        return (changed <= NLL_CHANGED_TOLERANCE, changed, NLL_CHANGED_TOLERANCE,
                f"NLL target (the greedy action) changes on {changed:.2%} of frames (tolerance none)")
    if name == "mse":
        scale = q32.abs().max().clamp_min(1e-12)
        error = ((q16 - q32).abs().max() / scale).item()
        return (error <= MSE_RELATIVE_TOLERANCE, error, MSE_RELATIVE_TOLERANCE,
                f"MSE target is {error:.2g} of max |Q| {scale.item():.3g} from float32's "
                f"(tolerance {MSE_RELATIVE_TOLERANCE:g})")
    return False, math.nan, 0.0, f"no float16 check for loss {name!r}"
