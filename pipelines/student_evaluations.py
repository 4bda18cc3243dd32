"""Students scored while they train (`--eval-every`), so a run has a learning curve, not one point.

Every `eval_every` updates a learner's weights are played by evaluator tasks on the protocol's
selection seeds (a curve is what an early stop would choose by, so it never plays the report
seeds the final scores are stated on), and its held-out agreement is measured on the frames the
teacher labelled for the final one. A point of `selection_episodes` episodes states its score
and CI; "% of teacher" appears only where the point has the episodes to support it. Evaluations
run beside the training and are logged when they finish, as metrics records of kind `eval`
(`eval-PRESET-LOSS` in a sweep) at the update they scored, so metrics.jsonl, TensorBoard and the
report all carry the curve.
"""

from __future__ import annotations

import time

from actors.evaluate import collect_evaluation, score_text, submit_agreement, submit_evaluation
from actors.protocol import MIN_CLAIM_EPISODES, SELECTION
from pipelines.evaluation import pct_of_teacher


def eval_kind(metrics_kind: str) -> str:
    """`distill` -> `eval`; `distill-net1-kl` -> `eval-net1-kl`."""
    return metrics_kind.replace("distill", "eval", 1)


class StudentEvaluations:
    def __init__(self, cfg, games: list, holdouts: dict, teacher_pending: dict, run, echo, started: float):
        self.cfg, self.games, self.run, self.echo, self.started = cfg, games, run, echo, started
        self.protocol = cfg.protocol()
        self.holdouts, self.teacher_pending = holdouts, teacher_pending
        self.teacher_scores: dict[str, float] = {}
        self.pending: list[dict] = []

    def submit(self, group, kind: str, updates: int, extra: dict) -> None:
        import ray

        weights = ray.put(group.state(extra))
        entry = {"kind": eval_kind(kind), "label": group.label, "updates": updates, "scores": {}, "agreement": {}}
        for g in self.games:
            name = g.spec.name
            entry["scores"][name] = submit_evaluation(weights, name, self.protocol.selection_episodes,
                                                      self.cfg.evaluation.workers,
                                                      **self.protocol.play(SELECTION, g.teacher))
            entry["agreement"][name] = submit_agreement(weights, self.holdouts[name]["plain"], name)
        self.pending.append(entry)

    def poll(self, wait: bool = False) -> None:
        """Logs every evaluation that has finished (all of them with `wait`), oldest first."""
        import ray

        while self.pending:
            entry = self.pending[0]
            refs = [r for parts in entry["scores"].values() for r in parts] + list(entry["agreement"].values())
            if not wait and len(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) < len(refs):
                return
            self.pending.pop(0)
            self.log(entry)

    def teacher_score(self, game: str) -> float | None:
        import ray

        if game not in self.teacher_scores and ray.wait(self.teacher_pending[game], num_returns=len(
                self.teacher_pending[game]), timeout=0)[0] == self.teacher_pending[game]:
            self.teacher_scores[game] = collect_evaluation(self.teacher_pending[game], 0.0, 0).mean
        return self.teacher_scores.get(game)

    def log(self, entry: dict) -> None:
        import ray

        record = {"kind": entry["kind"], "updates": entry["updates"], "elapsed_s": time.monotonic() - self.started}
        per_game = {}
        for game, parts in entry["scores"].items():
            result = collect_evaluation(parts, self.cfg.evaluation.epsilon, self.cfg.acting.noop_max)
            teacher = self.teacher_score(game)
            agreement = ray.get(entry["agreement"][game]) if game in entry["agreement"] else None
            supported = teacher is not None and result.episodes >= MIN_CLAIM_EPISODES
            per_game[game] = {"score": result.mean, "ci95": result.ci95, "seeds": SELECTION,
                              "episodes": result.episodes, "agreement": agreement,
                              "pct_of_teacher": pct_of_teacher(result.mean, teacher) if supported else None}
            shown = score_text(result.mean, result.ci95, result.episodes, digits=1) + (
                "" if agreement is None else f", agreement {agreement:.3f}") + (
                "" if per_game[game]["pct_of_teacher"] is None else f", {per_game[game]['pct_of_teacher']:.0f}% of teacher")
            self.echo.evaluation(f"{entry['label']} {game} @ {entry['updates']}", shown)
        if len(per_game) == 1:
            record.update(next(iter(per_game.values())))
        else:
            record["per_game"] = per_game
        self.run.log(record)
