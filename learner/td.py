"""The n-step double-DQN TD loss: a teacher's whole loss (learner/dqn.py), and a distilling student's
reward term with --rl-weight (learner/learner.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def td_targets(online: torch.nn.Module, target: torch.nn.Module, batch: dict[str, torch.Tensor],
               double: bool = True) -> torch.Tensor:
    """returns + discount * Q_target(s', a*), with a* from the online network (double) or the target's max.

    `discount` is gamma**k for a k-step return, and 0 after a terminal step."""
    with torch.no_grad():
        q_next = target(batch["next_obs"])
        if double:
            best = online(batch["next_obs"]).argmax(dim=1, keepdim=True)
            bootstrap = q_next.gather(1, best).squeeze(1)
        else:
            bootstrap = q_next.max(dim=1).values
        return batch["returns"] + batch["discount"] * bootstrap


def dqn_loss(online: torch.nn.Module, target: torch.nn.Module, batch: dict[str, torch.Tensor],
             double: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Huber loss of Q(s, a) against the TD target, and Q(s, a) itself (for logging)."""
    q_taken = online(batch["obs"]).gather(1, batch["actions"].long().unsqueeze(1)).squeeze(1)
    return F.smooth_l1_loss(q_taken, td_targets(online, target, batch, double)), q_taken.detach()


def rl_loss(q_student: torch.Tensor, student: torch.nn.Module, target: torch.nn.Module,
            batch: dict[str, torch.Tensor], game: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A distilling student's own DQN term (--rl-weight): the Huber TD loss of its outputs `q_student`
    on batch["obs"] against the double-DQN target, its head `game`'s."""
    head = (lambda net: lambda obs: net(obs, game)) if game is not None else (lambda net: net)
    q_taken = q_student.gather(1, batch["actions"].long().unsqueeze(1)).squeeze(1)
    return F.smooth_l1_loss(q_taken, td_targets(head(student), head(target), batch)), q_taken.detach()
