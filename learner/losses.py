"""The distillation losses of Rusu et al. (2015), §3, each an object that carries its hyperparameters.

q_student, q_teacher: (batch, actions). Each returns the batch mean.
  NLL: -log softmax(q_S)[argmax q_T]
  MSE: ||q_S - q_T||^2   (summed over actions)
  KL:  KL(softmax(q_T / tau) || softmax(q_S)),  tau < 1 sharpens the teacher
and two that weight each frame's term (weights averaging 1 over the batch):
  gap_nll:    NLL weighted by softmax(q_T / gap_tau)[argmax q_T], which grows with the action gap
  entropy_kl: KL weighted by 1 - H(softmax(q_T / entropy_tau)) / log(actions), the teacher's sureness

A loss is registered by name, and each hyperparameter is a dataclass field whose metadata
holds its help text and its check: the run configs take their flags (`--tau`) from here, so
a new loss with a new hyperparameter is written in this file alone (and tested beside it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F

LOSSES: dict[str, type] = {}


class LossError(ValueError):
    pass


def hyperparameter(default: float, help: str, valid: Callable[[float], bool], must: str):
    """A loss's setting: a flag of the same name in every config that trains a student with it."""
    return field(default=default, metadata={"help": help, "valid": valid, "must": must})


def registered(name: str):
    def register(cls):
        cls.name = name
        LOSSES[name] = cls
        return cls
    return register


class Loss:
    """Checks its hyperparameters when built, so a learner never starts with one out of range."""

    name: ClassVar[str]
    bf16_outputs: ClassVar[bool] = True  # whether the learner may compute the student's outputs under bf16 autocast

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if not spec.metadata["valid"](value):
                raise LossError(f"{spec.name} must {spec.metadata['must']}, got {value}")

    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@registered("kl")
@dataclass(frozen=True)
class KLLoss(Loss):
    tau: float = hyperparameter(0.01, "KL temperature applied to the teacher's Q values (sharpens when < 1; the "
                                      "paper tries 1, 0.1, 0.01, 0.001)", lambda v: v > 0, "be positive")

    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        log_p_teacher = F.log_softmax(q_teacher / self.tau, dim=1)
        log_p_student = F.log_softmax(q_student, dim=1)
        return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()


@registered("nll")
@dataclass(frozen=True)
class NLLLoss(Loss):
    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(q_student, q_teacher.argmax(dim=1))


@registered("mse")
@dataclass(frozen=True)
class MSELoss(Loss):
    # bf16 rounds a trained net's Q outputs by ~0.15% of |Q| (rms) and MSE reads them raw: with the residual at
    # 1% of max |Q| the loss is ~2% off float32's and its gradient mostly rounding (cosine 0.1-0.4 to float32's)
    bf16_outputs: ClassVar[bool] = False

    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        return (q_student - q_teacher).pow(2).sum(dim=1).mean()


def _mean_one(weights: torch.Tensor) -> torch.Tensor:
    """Per-frame weights rescaled to average 1 over the batch, so a weighted loss keeps the plain one's
    step size, and held constant: a weight says how much a frame counts, it is not trained."""
    weights = weights.detach()
    return weights / weights.mean().clamp_min(1e-12)


@registered("gap_nll")
@dataclass(frozen=True)
class GapWeightedNLLLoss(Loss):
    """NLL on the teacher's greedy action, each frame weighted by the teacher's softmax probability of
    that action at temperature `gap_tau`: a function of the frame's action gaps, near 1 where one
    action clearly wins and 1/actions where all tie (Rusu et al.'s best online variant weighted
    classification by a softmax of the action gap). Equal gaps give plain NLL."""

    gap_tau: float = hyperparameter(0.1, "gap_nll: temperature of the teacher's softmax whose greedy-action probability "
                                         "weights each frame (smaller: the frames with a clear best action count more)",
                                    lambda v: v > 0, "be positive")

    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        greedy = q_teacher.argmax(dim=1)
        confidence = F.softmax(q_teacher.float() / self.gap_tau, dim=1).gather(1, greedy[:, None])[:, 0]
        frame_loss = F.cross_entropy(q_student, greedy, reduction="none")
        return (_mean_one(confidence) * frame_loss).mean()


@registered("entropy_kl")
@dataclass(frozen=True)
class EntropyWeightedKLLoss(Loss):
    """KL at `tau`, each frame weighted by how sure the teacher is there: 1 minus the entropy of its
    softmax at `entropy_tau` over log(actions), plus a floor so no frame counts for nothing (the
    importance-prioritised distillation idea: the states where the teacher's choice matters).
    Equal entropies give plain KL."""

    tau: float = hyperparameter(0.01, "KL temperature applied to the teacher's Q values (sharpens when < 1; the "
                                      "paper tries 1, 0.1, 0.01, 0.001)", lambda v: v > 0, "be positive")
    entropy_tau: float = hyperparameter(0.1, "entropy_kl: temperature of the teacher's softmax whose entropy weights "
                                             "each frame", lambda v: v > 0, "be positive")
    floor: ClassVar[float] = 0.05

    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(q_teacher.float() / self.entropy_tau, dim=1)
        entropy = -(log_p.exp() * log_p).sum(dim=1)
        sureness = 1.0 - entropy / math.log(q_teacher.shape[1]) + self.floor
        log_p_teacher = F.log_softmax(q_teacher / self.tau, dim=1)
        frame_loss = (log_p_teacher.exp() * (log_p_teacher - F.log_softmax(q_student, dim=1))).sum(dim=1)
        return (_mean_one(sureness) * frame_loss).mean()


def hyperparameters() -> list[dataclasses.Field]:
    """Every registered loss's hyperparameters, each name once (two losses sharing one share its flag)."""
    found: dict[str, dataclasses.Field] = {}
    for cls in LOSSES.values():
        for spec in dataclasses.fields(cls):
            found.setdefault(spec.name, spec)
    return list(found.values())


def make_loss(name: str, **settings) -> Loss:
    """The loss `name` with the settings it takes; the others (another loss's) are ignored."""
    if name not in LOSSES:
        raise LossError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    cls = LOSSES[name]
    return cls(**{spec.name: settings[spec.name] for spec in dataclasses.fields(cls) if spec.name in settings})
