"""The update loop both learners share: draw a batch, update, and report the interval's means and rates.

Each learner gives one `update(game, batch)` that returns its scalars (loss, and for the DQN
its mean Q); the loop owns the timing, so `wait_fraction` (time spent waiting on the
replay) means the same for a student and for a DQN.
"""

from __future__ import annotations

import time
from typing import Callable

import torch


def run_updates(stream, num_updates: int, batch_size: int, update: Callable[[str, dict], dict[str, torch.Tensor]],
                scalars: tuple[str, ...] = ("loss",)) -> dict:
    started, waited = time.perf_counter(), 0.0
    values: dict[str, list] = {name: [] for name in scalars}
    for _ in range(num_updates):
        game, batch, wait = stream.next()
        waited += wait
        for name, value in update(game, batch).items():
            values[name].append(value)
    elapsed = time.perf_counter() - started
    means = {name: float(torch.stack(v).mean()) if v else float("nan") for name, v in values.items()}
    return {**means, "updates_per_s": num_updates / elapsed, "samples_per_s": num_updates * batch_size / elapsed,
            "wait_fraction": waited / elapsed}
