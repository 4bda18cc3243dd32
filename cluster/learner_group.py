"""One student's learners on the cluster: a single Learner actor, or G data-parallel replicas.

The driver sees one object per student whatever G is: `train` runs every replica for the
same number of updates (their backward passes meet in the all-reduce) and reports rank 0's
numbers with the samples of all; `state` and `agreement` come from rank 0, whose weights
every replica shares. A learner that dies is rebuilt, all replicas at once, from the
run's last checkpoint, so no optimizer step is counted that is not in the weights.
"""

from __future__ import annotations

import secrets

import numpy as np

from atari_distill.cluster.placement import PLACEMENT_TIMEOUT_S
from atari_distill.cluster.runtime import NO_TASK_EVENTS
from atari_distill.learner.learner import Learner, LearnerConfig
from atari_distill.runners import handles


class LearnerLost(RuntimeError):
    pass


class LearnerGroup:
    def __init__(self, label: str, series: str, config: LearnerConfig, heads: dict[str, int], shards: dict[str, list],
                 weights: dict[str, float] | None, replicas: int, use_gpu: bool, strategies: list[dict],
                 stop_requested=lambda: False):
        self.stop_requested = stop_requested  # polled while waiting for the replay, so a Ctrl-C is not held up
        self.label, self.series, self.config = label, series, config
        self.heads, self.shards, self.weights = heads, shards, weights
        self.replicas, self.use_gpu, self.strategies = replicas, use_gpu, strategies
        self.actors: list = []
        self.joined: list = []  # each replica's join_group, not waited on by `start`
        self.restarts = 0
        self.abandoned: list = []  # replay waits a stop left pending
        self.distill_weight: float | None = None  # lambda, once a curve point set it (--rl-weight)

    def start(self, resume: dict | None) -> None:
        """The replicas, and their group formed behind them: every call they are sent next waits for it.
        Each start draws a new secret, so a replica of an earlier one cannot join (learner/rendezvous.py)."""
        options = {"num_cpus": 1, "num_gpus": 1 if self.use_gpu else 0, **NO_TASK_EVENTS}
        self.actors = [
            handles.remote(Learner, **options, **self.strategies[rank]).remote(
                self.config, self.heads, self.shards, resume, self.weights,
                (rank, self.replicas) if self.replicas > 1 else None)
            for rank in range(self.replicas)]
        self.joined = []
        if self.distill_weight is not None:
            for actor in self.actors:
                actor.set_distill_weight.remote(self.distill_weight)
        if self.replicas > 1:
            secret = secrets.token_hex(16)
            address = self.actors[0].open_group.remote(secret)
            self.joined = [actor.join_group.remote(address, secret) for actor in self.actors]

    def restart(self, resume: dict | None, placed_within_s: float = PLACEMENT_TIMEOUT_S) -> None:
        """The replicas again, from `resume`; raises LearnerLost if they cannot be placed within
        `placed_within_s` (their node left the cluster and no live node has room for their bundles).
        A replica placed on a node that is dying but not yet known dead is tried again."""
        import time

        self.restarts += 1
        deadline = time.monotonic() + placed_within_s
        last_error = None
        while True:
            for actor in self.actors:
                handles.kill(actor)
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise handles.AnswerTimeout
                self.start(resume)
                handles.get(self.joined or [actor.__ray_ready__.remote() for actor in self.actors], timeout=left)
                break
            except (handles.ActorLost, RuntimeError) as error:  # a join fails if a partner dies
                last_error = error
                time.sleep(2)
            except handles.AnswerTimeout:
                for actor in self.actors:
                    handles.kill(actor)
                cause = "" if last_error is None else (
                    f"; the last try failed with {type(last_error).__name__}: {str(last_error).splitlines()[0][:200]}")
                raise LearnerLost(f"learner {self.label} could not be placed again within {placed_within_s:.0f} s: "
                                  f"its node left the cluster and no live node has room for it{cause}") from None
        self.wait_for_replay()

    def wait_for_replay(self) -> bool:
        """Waits for the group to form and the replay's minimum fill; returns False at once if a stop is
        asked for meanwhile."""
        pending = self.joined + [actor.wait_for_replay.remote() for actor in self.actors]
        while pending:
            if self.stop_requested():
                self.abandoned = pending
                return False
            done, pending = handles.wait(pending, num_returns=len(pending), timeout=0.5)
            handles.get(done)
        return True

    def set_weights(self, weights: dict[str, float]) -> None:
        """The multi-task schedule's new shares, on every replica (they draw games in step)."""
        self.weights = dict(weights)  # a restarted replica starts with them
        for actor in self.actors:  # not waited on: an actor's calls run in order, so it lands before the next train;
            actor.set_weights.remote(weights)  # a replica busy or dead then is the training loop's to handle

    def set_distill_weight(self, weight: float) -> None:
        """lambda, the distillation term's weight (--rl-weight with --handoff qdagger), on every replica. A
        checkpoint may hold the one before (it is taken before its update's curve point is scored), so a
        restarted replica is sent this one too."""
        self.distill_weight = float(weight)
        for actor in self.actors:
            actor.set_distill_weight.remote(weight)

    def submit_train(self, updates: int) -> list:
        return [actor.train.remote(updates) for actor in self.actors]

    def collect(self, calls: list, watch=None) -> dict:
        """Waits for one interval on every replica; a dead replica raises at once rather than
        after its partners time out in the all-reduce. `watch` (replay/shard.py::ShardWatch) is
        checked while waiting: a replay shard lost for good raises ReplayLost, rather than the
        learner failing when its batch timeout runs out."""
        pending = list(calls)
        while pending:
            done, pending = handles.wait(pending, num_returns=1, timeout=None if watch is None else 1.0)
            handles.get(done)
            if pending and not done and watch is not None:
                watch.check()
        return self.combine(handles.get(calls))

    def abandon(self, calls: list) -> None:
        """Leaves `calls` unanswered (they wait on a replay that is gone): `kill` then ends the replicas
        at once, and the last checkpoint is where this student stopped."""
        self.abandoned = list(calls)

    def combine(self, results: list[dict]) -> dict:
        """Rank 0's record, with the samples of every replica and their mean loss and wait."""
        record = dict(results[0])
        if len(results) > 1:
            for name in ("loss", "distill_loss", "td_loss"):
                if name in record:
                    record[name] = float(np.mean([r[name] for r in results]))
            record["samples_per_s"] = float(sum(r["samples_per_s"] for r in results))
            if "samples_per_game" in record:  # every replica's batches, as samples_per_s counts them
                record["samples_per_game"] = {g: sum(r["samples_per_game"][g] for r in results)
                                              for g in record["samples_per_game"]}
            record["wait_fraction"] = float(np.mean([r["wait_fraction"] for r in results]))
            record["replicas"] = len(results)
        return record

    def state(self, extra: dict) -> dict:
        return handles.get(self.actors[0].state.remote(extra))

    def policy(self):
        """Rank 0's student without its optimizer, as an object ref (every replica holds the same weights)."""
        return self.actors[0].policy.remote()

    def agreement(self, obs, q, game: str):
        return self.actors[0].agreement.remote(obs, q, game)

    def kill(self) -> None:
        """Leaves the process group and exits cleanly (a forced kill mid-collective spews tracebacks)."""
        if self.abandoned:  # stopped before the first update: no collective to leave, and `close` would queue
            for actor in self.actors:
                handles.kill(actor)
            try:  # collected, so Ray does not report the killed waits as unhandled errors
                handles.get(self.abandoned, timeout=10)
            except (handles.ActorLost, TimeoutError):
                pass
            self.abandoned = []
            return
        try:
            handles.get([actor.close.remote() for actor in self.actors], timeout=30)
            handles.wait([actor.__ray_terminate__.remote() for actor in self.actors], num_returns=len(self.actors),
                     timeout=30)
        except (handles.ActorLost, TimeoutError):
            pass
        for actor in self.actors:  # whatever did not exit by itself
            handles.kill(actor)
        self.actors = []
