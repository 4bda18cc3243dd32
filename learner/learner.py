"""The learner: owns the student and its optimizer, pulls batches, reports and checkpoints.

Batches come from a BatchStream (requests in flight across the shards); the time it still
waits is reported as `wait_fraction`. All file I/O stays with the driver: the
learner hands its state over, so it can run on any node of a cluster.

Data parallel: given a `world` (rank, size) the learner joins a torch.distributed group
(NCCL on CUDA, gloo on CPU) in two steps, as the others need the address of rank 0's store
(learner/rendezvous.py) before any rank can join: rank 0 `open_group`, then every rank
`join_group`, which wraps the student in DistributedDataParallel, averaging gradients in the
backward pass; each replica draws its own batches, so G replicas train on G x batch_size
samples per update.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from atari_distill.evaluation.episodes import greedy_agreement
from atari_distill.learner.rendezvous import JOIN_TIMEOUT, join_store, open_store
from atari_distill.learner.batches import BatchStream
from atari_distill.learner.graphs import GraphedUpdates, graphs_usable, set_capturable
from atari_distill.learner.losses import make_loss
from atari_distill.learner.schedule import GameSchedule
from atari_distill.learner.td import rl_loss
from atari_distill.learner.updates import run_updates
from atari_distill.models.checkpoint import make_payload
from atari_distill.models.networks import QNetwork

# Batches arrive as read-only views of Ray's object store; the learner only reads them.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


@dataclass(frozen=True)
class LearnerConfig:
    """`student` is the run's student section itself (pipelines/sections.py: preset, loss and its
    hyperparameters, lr, batch_size); the rest is how the run feeds and places this learner."""

    student: object
    prefetch: int
    min_replay: int
    device: str  # "auto": CUDA when visible, else CPU
    seed: int
    amp: bool = True  # bf16 autocast on CUDA only, and only for a loss that allows it (bf16_autocast)
    graphs: bool = True  # each update one CUDA graph replay (learner/graphs.py); CUDA without replicas only
    batch_timeout_s: float = 600.0
    rl: object = None  # the run's RL section (pipelines/sections.py::RLSettings): the student also learns from the reward
    grad_clip: float = 10.0  # the DQN's clip, with rl only (a pure distillation step stays as it was)


def student_optimizer(parameters, lr: float, capturable: bool = False) -> torch.optim.Optimizer:
    """The student's RMSProp (alpha 0.95, eps 1e-5), defined once for the learner and for the bare loop
    bench/replay_bench.py measures it against."""
    return torch.optim.RMSprop(parameters, lr=lr, alpha=0.95, eps=1e-5, capturable=capturable)


def bf16_autocast(amp: bool, device: torch.device, loss) -> bool:
    """CUDA only; and never for a loss that reads the student's outputs raw (MSE, learner/losses.py),
    where bf16's rounding of the outputs swamps a fitted student's residual."""
    return amp and device.type == "cuda" and loss.bf16_outputs


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Learner:
    def __init__(self, config: LearnerConfig, heads: dict[str, int], shards: dict[str, list], resume: dict | None = None,
                 weights: dict[str, float] | None = None, world: tuple[int, int] | None = None):
        torch.manual_seed(config.seed)
        self.config = config
        self.device = pick_device(config.device)
        settings = config.student
        self.student = QNetwork(settings.preset, heads, seed=config.seed).to(self.device)
        self.rank, self.world_size = world or (0, 1)
        self.loss_fn = make_loss(settings.loss, **settings.loss_settings())
        self.batch_size = settings.batch_size
        self.updates = 0
        self.samples = 0
        weights = weights or {game: 1.0 for game in shards}
        # the stream's schedule runs ahead by the prefetch depth; `trained` is what a checkpoint records
        requests, self.trained = GameSchedule(weights), GameSchedule(weights)
        self.requests, self.reweights = requests, []  # reweights: (turn, weights) the trained schedule takes next
        rl = config.rl if config.rl is not None and config.rl.active() else None
        self.rl = rl
        transitions = dict(method="sample_transitions", n=rl.rl_n_step, gamma=rl.rl_gamma) if rl else {}
        self.stream = BatchStream(shards, self.batch_size, config.prefetch, requests, config.seed + self.rank,
                                  config.batch_timeout_s, first_batch=int(resume["updates"]) if resume else 0,
                                  **transitions)
        if resume is not None:
            self.student.load_state_dict(resume["model"])
        self.model = self.student
        self.target = copy.deepcopy(self.student).requires_grad_(False) if rl else None
        # with the reward, the student's outputs must stay Q values in the teacher's units for the TD term: the
        # distillation term reads them at the loss's temperature too, KL(softmax(q_T/tau) || softmax(q_S/tau)) as
        # QDagger's; at 1, a tau-0.01 KL would make them logits 100x the teacher's Q, and TD then wrecks the policy
        self.student_tau = getattr(self.loss_fn, "tau", 1.0) if rl else 1.0
        self.distill_weight = torch.ones((), device=self.device)  # lambda: a tensor, so a captured graph reads it
        if rl and resume is not None and "target_model" in resume.get("extra", {}):  # else a plain run's: start anew
            self.target.load_state_dict(resume["extra"]["target_model"])
            self.distill_weight.fill_(float(resume["extra"]["distill_weight"]))
        self.store = None
        graphed = graphs_usable(self.device, config.graphs, self.world_size)
        self.optimizer = student_optimizer(self.student.parameters(), settings.lr, capturable=graphed)
        self.graphed = GraphedUpdates(self._update_body, self.student.parameters(), self.device) if graphed else None
        if resume is not None:
            if resume.get("optimizer"):
                self.optimizer.load_state_dict(resume["optimizer"])
                set_capturable(self.optimizer, graphed, self.device)
            self.updates = int(resume["updates"])
            schedule = resume.get("extra", {}).get("schedule")
            if schedule:
                requests.load(schedule)
                self.trained.load(schedule)

    def open_group(self, secret: str) -> str:
        """Rank 0: opens the group's store; returns the address the other ranks join."""
        self.store, address = open_store(self.world_size, secret)
        return address

    def join_group(self, address: str, secret: str) -> None:
        """Every rank, rank 0 too: returns once all have joined."""
        store = self.store if self.rank == 0 else join_store(address, secret)
        self.model = data_parallel(self.student, self.device, store, self.rank, self.world_size,
                                   find_unused=len(self.student.head_sizes) > 1)

    def wait_for_replay(self, timeout_s: float = 600.0) -> None:
        self.stream.wait_for_replay(self.config.min_replay, timeout_s)

    def step(self, game: str, batch: dict) -> dict[str, torch.Tensor]:
        """One optimizer update on one batch (with data parallelism, every replica calls it in step); its scalars."""
        keys = ("obs", "q") + (("next_obs", "actions", "returns", "discount") if self.rl else ())
        arrays = {key: batch[key] for key in keys}
        if self.graphed is not None:
            return self.graphed(game, arrays)
        tensors = {name: torch.from_numpy(a).to(self.device, non_blocking=True) for name, a in arrays.items()}
        self.optimizer.zero_grad(set_to_none=True)
        return self._update_body(game, tensors)

    def _update_body(self, game: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        amp = bf16_autocast(self.config.amp, self.device, self.loss_fn) and self.rl is None  # TD reads Q raw, as MSE
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
            q_student = self.model(tensors["obs"], game)
        if self.rl is None:
            loss = self.loss_fn(q_student.float(), tensors["q"])
            loss.backward()
            self.optimizer.step()
            return {"loss": loss.detach()}
        distill = self.loss_fn(q_student.float() / self.student_tau, tensors["q"])
        td, _ = rl_loss(q_student.float(), self.student, self.target, tensors, game)
        loss = self.distill_weight * distill + self.rl.rl_weight * td
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return {"loss": loss.detach(), "distill_loss": distill.detach(), "td_loss": td.detach()}

    def set_weights(self, weights: dict[str, float]) -> None:
        """New game shares from the next batch requested; the trained schedule takes them at the same
        turn, so a checkpoint's schedule replays the order the batches came in."""
        self.requests.reweight(weights)
        self.reweights.append((self.requests.turns, dict(weights)))

    def set_distill_weight(self, weight: float) -> None:
        """lambda from the student's latest selection-seed score (--handoff qdagger), on every replica."""
        self.distill_weight.fill_(float(weight))

    def _update(self, game: str, batch: dict) -> dict[str, torch.Tensor]:
        if self.rl is not None and self.rl.handoff == "kickstart":
            self.distill_weight.fill_(self.rl.distill_weight(updates=self.updates))
        scalars = self.step(game, batch)
        if self.rl is not None and (self.updates + 1) % self.rl.rl_target_every == 0:
            self.target.load_state_dict(self.student.state_dict())  # in place: a graph reads the new weights
        while self.reweights and self.reweights[0][0] <= self.trained.turns:
            self.trained.reweight(self.reweights.pop(0)[1])
        self.trained.next()
        self.updates += 1
        self.samples += self.batch_size
        return scalars

    def train(self, num_updates: int) -> dict:
        scalars = ("loss", "distill_loss", "td_loss") if self.rl else ("loss",)
        metrics = run_updates(self.stream, num_updates, self.batch_size, self._update, scalars)
        if self.rl:
            metrics["distill_weight"] = float(self.distill_weight)
        return {
            "updates": self.updates, **metrics, "replay_size": self.stream.replay_size(),
            "samples_per_game": {g: n * self.batch_size for g, n in self.trained.counts.items()},
        }

    def state(self, extra: dict | None = None) -> dict:
        schedule = self.trained.state()
        if self.reweights:  # the balancer's newest shares, not yet reached by training: a resume takes them at once
            schedule["next_weights"] = dict(self.reweights[-1][1])
        extra = {**(extra or {}), "schedule": schedule}
        if self.rl is not None:
            extra.update(target_model={k: v.detach().cpu().clone() for k, v in self.target.state_dict().items()},
                         distill_weight=float(self.distill_weight))
        return make_payload(self.student, "student", updates=self.updates,
                            optimizer=self.optimizer.state_dict(), extra=extra)

    def policy(self) -> dict:
        """The student's weights without its optimizer: what teacher actors act with (--behaviour student)."""
        return make_payload(self.student, "student", updates=self.updates)

    def agreement(self, obs: np.ndarray, q_teacher: np.ndarray, game: str | None = None, batch: int = 512) -> float:
        """Fraction of frames where the student's greedy action equals the teacher's."""
        self.student.eval()
        agreement = greedy_agreement(self.student, obs, q_teacher, game, self.device, batch)
        self.student.train()
        return agreement

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def data_parallel(model: torch.nn.Module, device: torch.device, store, rank: int, size: int,
                  find_unused: bool) -> torch.nn.Module:
    """Joins the replicas' process group and wraps the model; DDP broadcasts rank 0's weights."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=JOIN_TIMEOUT)
    ids = [device.index or 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)
