"""The DQN learner: trains a teacher from the transitions its own epsilon-greedy actors collect.

It shares the distillation learner's plumbing (BatchStream over replay shards, one
checkpoint format) and differs only in the loss: an n-step double-DQN TD error against a
target network that is copied from the online network every `target_every` updates.
The recipe and why each part was chosen are in docs/GUIDE.md ("Training a teacher").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from atari_distill.learner.batches import BatchStream
from atari_distill.learner.graphs import GraphedUpdates, graphs_usable, set_capturable
from atari_distill.learner.learner import pick_device
from atari_distill.learner.schedule import GameSchedule
from atari_distill.learner.td import dqn_loss
from atari_distill.learner.updates import run_updates
from atari_distill.models.checkpoint import make_payload
from atari_distill.models.networks import QNetwork


@dataclass(frozen=True)
class DQNConfig:
    """`dqn` is the run's DQN section itself (pipelines/sections.py: preset, lr, adam_eps, gamma,
    n_step, double, batch_size, target_every); the rest is how the run feeds and places this learner."""

    dqn: object
    prefetch: int
    min_replay: int
    device: str
    seed: int
    grad_clip: float = 10.0
    batch_timeout_s: float = 600.0
    graphs: bool = True  # each update one CUDA graph replay (learner/graphs.py); CUDA only
    per_call: int | None = None  # batches per sample request (learner/batches.py::request_shape)


class DQNLearner:
    def __init__(self, config: DQNConfig, game: str, num_actions: int, shards: list, resume: dict | None = None):
        torch.manual_seed(config.seed)
        self.config, self.game, self.dqn = config, game, config.dqn
        self.device = pick_device(config.device)
        self.online = QNetwork(self.dqn.preset, {game: num_actions}, seed=config.seed).to(self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        graphed = graphs_usable(self.device, config.graphs)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=self.dqn.lr, eps=self.dqn.adam_eps,
                                          capturable=graphed)
        self.graphed = GraphedUpdates(self._update_body, self.online.parameters(), self.device) if graphed else None
        self.updates = 0
        self.stream = BatchStream({game: shards}, self.dqn.batch_size, config.prefetch, GameSchedule({game: 1.0}),
                                  config.seed, config.batch_timeout_s, method="sample_transitions",
                                  per_call=config.per_call, first_batch=int(resume["updates"]) if resume else 0,
                                  n=self.dqn.n_step, gamma=self.dqn.gamma)
        if resume is not None:
            self.online.load_state_dict(resume["model"])
            self.target.load_state_dict(resume["extra"]["target_model"])
            self.optimizer.load_state_dict(resume["optimizer"])
            set_capturable(self.optimizer, graphed, self.device)
            self.updates = int(resume["updates"])

    def wait_for_replay(self, timeout_s: float = 600.0) -> None:
        self.stream.wait_for_replay(self.config.min_replay, timeout_s)

    def _update(self, game: str, batch: dict) -> dict[str, torch.Tensor]:
        arrays = {k: batch[k] for k in ("obs", "next_obs", "actions", "returns", "discount")}
        if self.graphed is not None:
            scalars = self.graphed(game, arrays)
        else:
            tensors = {k: torch.from_numpy(a).to(self.device, non_blocking=True) for k, a in arrays.items()}
            self.optimizer.zero_grad(set_to_none=True)
            scalars = self._update_body(game, tensors)
        self.updates += 1
        if self.updates % self.dqn.target_every == 0:
            self.target.load_state_dict(self.online.state_dict())  # in place: a graph reads the new weights
        return scalars

    def _update_body(self, game: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, q_taken = dqn_loss(self.online, self.target, tensors, self.dqn.double)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.online.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return {"loss": loss.detach(), "q_mean": q_taken.mean()}

    def train(self, num_updates: int) -> dict:
        metrics = run_updates(self.stream, num_updates, self.dqn.batch_size, self._update, ("loss", "q_mean"))
        return {"updates": self.updates, **metrics}

    def policy(self, version: int) -> dict:
        """The online network as a teacher checkpoint (no optimizer): what actors act with and evaluators score."""
        return make_payload(self.online, "teacher", updates=self.updates, version=version,
                            extra={"trained_by": "launch.py teacher"})

    def state(self, extra: dict | None = None) -> dict:
        target = {k: v.detach().cpu().clone() for k, v in self.target.state_dict().items()}
        return make_payload(self.online, "teacher", updates=self.updates, optimizer=self.optimizer.state_dict(),
                            extra={**(extra or {}), "target_model": target})
