"""The three distillation losses of Rusu et al. (2015), §3, each a small callable.

q_student, q_teacher: (batch, actions). Each returns the batch mean.
  NLL: -log softmax(q_S)[argmax q_T]
  MSE: ||q_S - q_T||^2   (summed over actions)
  KL:  KL(softmax(q_T / tau) || softmax(q_S)),  tau < 1 sharpens the teacher
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class NLLLoss:
    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(q_student, q_teacher.argmax(dim=1))


@dataclass(frozen=True)
class MSELoss:
    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        return (q_student - q_teacher).pow(2).sum(dim=1).mean()


@dataclass(frozen=True)
class KLLoss:
    tau: float = 0.01

    def __call__(self, q_student: torch.Tensor, q_teacher: torch.Tensor) -> torch.Tensor:
        log_p_teacher = F.log_softmax(q_teacher / self.tau, dim=1)
        log_p_student = F.log_softmax(q_student, dim=1)
        return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()


LOSSES = ("kl", "nll", "mse")


def make_loss(name: str, tau: float = 0.01):
    if name == "kl":
        if not tau > 0:
            raise ValueError(f"tau must be positive, got {tau}")
        return KLLoss(tau)
    if name == "nll":
        return NLLLoss()
    if name == "mse":
        return MSELoss()
    raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
