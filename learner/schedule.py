"""Which game the next multi-task batch comes from.

Smooth weighted round robin (as nginx balances upstreams): every game gains its weight in
credit each turn, the richest game is chosen and pays the total. Over any run of turns a
game's count stays within one batch of `turns * weight / total`, with the games
interleaved rather than in blocks, and the order is the same on every machine. With
equal weights (the default) it is plain round robin.
"""

from __future__ import annotations


class GameSchedule:
    def __init__(self, weights: dict[str, float]):
        if not weights or any(w <= 0 for w in weights.values()):
            raise ValueError(f"schedule weights must be positive, got {weights}")
        self.weights = dict(weights)
        self.total = sum(weights.values())
        self.credit = {game: 0.0 for game in weights}
        self.counts = {game: 0 for game in weights}

    def next(self) -> str:
        for game, weight in self.weights.items():
            self.credit[game] += weight
        game = max(self.credit, key=self.credit.get)
        self.credit[game] -= self.total
        self.counts[game] += 1
        return game

    def state(self) -> dict:
        return {"credit": dict(self.credit), "counts": dict(self.counts)}

    def load(self, state: dict) -> None:
        if set(state["credit"]) == set(self.weights):
            self.credit, self.counts = dict(state["credit"]), dict(state["counts"])
