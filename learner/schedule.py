"""Which game the next multi-task batch comes from.

Smooth weighted round robin (as nginx balances upstreams): every game gains its weight in
credit each turn, the richest game is chosen and pays the total. Over any run of turns a
game's count stays within one batch of `turns * weight / total`, with the games
interleaved rather than in blocks, and the order is the same on every machine. With
equal weights (the default) it is plain round robin.

The balanced schedule (`multitask --schedule balanced`) changes the weights as the student
learns, from each game's progress toward its teacher (`balanced_weights`).
"""

from __future__ import annotations


BALANCE_FLOOR = 0.25  # a game at its teacher keeps this share against a lagging game's 1 to 1.25


def balanced_weights(progress: dict[str, float], floor: float = BALANCE_FLOOR) -> dict[str, float]:
    """Weights from each game's normalised progress (0: the random policy's score, 1: the
    teacher's): a game's weight grows with its gap to the teacher, and a game at or past its
    teacher keeps `floor`, so it is rehearsed rather than forgotten."""
    return {game: floor + min(max(1.0 - p, 0.0), 1.0) for game, p in progress.items()}


class GameSchedule:
    def __init__(self, weights: dict[str, float]):
        self.credit = {game: 0.0 for game in weights}
        self.counts = {game: 0 for game in weights}
        self.reweight(weights)

    @property
    def turns(self) -> int:
        return sum(self.counts.values())

    def reweight(self, weights: dict[str, float]) -> None:
        """New shares from the next turn on; each game's credit carries over."""
        if not weights or any(w <= 0 for w in weights.values()) or set(weights) != set(self.credit):
            raise ValueError(f"schedule weights must be positive, one per game of {sorted(self.credit)}, got {weights}")
        self.weights = dict(weights)
        self.total = sum(weights.values())

    def next(self) -> str:
        for game, weight in self.weights.items():
            self.credit[game] += weight
        game = max(self.credit, key=self.credit.get)
        self.credit[game] -= self.total
        self.counts[game] += 1
        return game

    def state(self) -> dict:
        return {"credit": dict(self.credit), "counts": dict(self.counts), "weights": dict(self.weights)}

    def load(self, state: dict) -> None:
        if set(state["credit"]) == set(self.weights):
            self.credit, self.counts = dict(state["credit"]), dict(state["counts"])
