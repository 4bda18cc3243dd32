"""Students scored while they train (`--eval-every`), so a run has a learning curve, not one point.

Every `eval_every` updates a learner's weights are played by evaluator tasks on the protocol's
selection seeds (a curve is what an early stop would choose by, so it never plays the report
seeds the final scores are stated on), and its held-out agreement is measured on the frames the
teacher labelled for the final one. A point of `selection_episodes` episodes states its score
and CI; "% of teacher" appears only where the point has the episodes to support it. Evaluations
run beside the training and are logged when they finish, as metrics records of kind `eval`
(`eval-PRESET-LOSS` in a sweep) at the update they scored, so metrics.jsonl, TensorBoard and the
report all carry the curve.

With `multitask --schedule balanced`, each point also moves the student's batches toward the
games furthest below their teacher (`Balancer`). With `--rl-weight`, each point is a checkpoint
scored like a DQN's: the best so far is kept (`student-best`), the distillation weight is handed
off by it (--handoff qdagger, never raised again), and the summary names the first point at or above
the teacher's selection score (`Handoff`). Whether the student passed its teacher is decided once,
on the report seeds at the end: tested at every point, an equal student "passes" in a third of runs.
"""

from __future__ import annotations

import math
import time

from atari_distill.evaluation.episodes import collect_evaluation, score_text, submit_agreement, submit_evaluation
from atari_distill.evaluation.protocol import MIN_CLAIM_EPISODES, SELECTION
from atari_distill.learner.schedule import balanced_weights
from atari_distill.models.checkpoint import CheckpointError, load_checkpoint
from atari_distill.pipelines.stopping import StopToken
from atari_distill.evaluation.statistics import beats_beyond_chance, pct_of_teacher
from atari_distill.rundir.directory import ABANDONED
from atari_distill.runners import handles


def eval_kind(metrics_kind: str) -> str:
    """`distill` -> `eval`; `distill-net1-kl` -> `eval-net1-kl`."""
    return metrics_kind.replace("distill", "eval", 1)


def progress(score: float, teacher: float, random: float, apart: bool = True) -> float:
    """How far from the random policy's score to the teacher's a score lies (1: the teacher's); a teacher
    no better than random counts as reached, and so, for a student that also learns from the reward,
    does one not `apart` from random (see `distinct`): the reward teaches more than it can."""
    return (score - random) / (teacher - random) if apart and teacher > random else 1.0


def distinct(teacher, random) -> bool:
    """Whether the teacher beats the random policy beyond chance (EvalResults): the difference of the
    means above the 95% half-width of that difference; an interval not stated (too few episodes)
    leaves the means to decide."""
    return beats_beyond_chance(teacher.mean, teacher.ci95, random.mean, random.ci95)


class Balancer:
    """Moves a multi-task student's batches toward the games furthest below their teacher. It
    judges on the selection seeds alone, with the teacher and the random policy played there too:
    the report seeds state the final scores, and a schedule steered by them would be tuned on its
    own yardstick."""

    def __init__(self, baselines):
        """`baselines`: {game: (teacher's mean, random policy's mean, ...)} on the selection seeds, or a
        callable that returns it once they are played."""
        self._baselines = baselines

    def weights(self, per_game: dict[str, dict]) -> dict[str, float]:
        """The schedule's weights from one learning-curve point ({game: {"score", "seeds"}})."""
        for game, point in per_game.items():
            if point.get("seeds") != SELECTION:
                raise ValueError(f"the balancing schedule reads selection-seed scores only; {game}'s point was "
                                 f"played on {point.get('seeds')!r} seeds")
        baselines = self._baselines() if callable(self._baselines) else self._baselines
        # means alone: a game whose teacher is near random still has its labels to learn, and no reward term
        return balanced_weights({game: progress(point["score"], *baselines[game][:2])
                                 for game, point in per_game.items()})


class SelectionBaselines:
    """The teacher's and the random policy's means on the selection seeds, played from the run's start,
    and whether the teacher is distinct from random there: what a curve point (selection seeds) is
    measured against, so its "% of teacher" never divides by the report seeds' teacher."""

    def __init__(self, cfg, games: list):
        protocol = cfg.protocol()
        self.found: dict[str, tuple[float, float, bool]] = {}
        self.pending = {g.spec.name: [submit_evaluation(g.teacher_ref, g.spec.name, protocol.selection_episodes,
                                                        cfg.evaluation.workers,
                                                        **protocol.play(SELECTION, g.teacher, random_policy=random))
                                      for random in (False, True)] for g in games}

    def __call__(self) -> dict[str, tuple[float, float, bool]]:
        """{game: (teacher's mean, random's mean, distinct)}, waiting for them the first time."""
        for game, parts in self.pending.items():
            if game not in self.found:
                teacher, random = (collect_evaluation(part, 0.0, 0) for part in parts)
                self.found[game] = (teacher.mean, random.mean, distinct(teacher, random))
        return self.found

    def refs(self) -> list:
        return [ref for parts in self.pending.values() for part in parts for ref in part]


class Handoff:
    """A student learning from the reward too (--rl-weight): its best selection-seed checkpoint so far,
    its distillation weight set from each point (--handoff qdagger), and the update at which its
    selection score first reached the teacher's."""

    def __init__(self, settings, baselines, run, echo, stop: StopToken):
        self.settings, self.baselines, self.run, self.echo, self.stop = settings, baselines, run, echo, stop
        self.best: dict | None = None  # {"updates", "score", "state"}
        self.resumed_at = math.inf  # a resumed run's student updates: a student-best past them is not its own
        self.weight = 1.0  # lambda so far: it only falls, so one lucky point hands off for good and a noisy one
        # never hands the labels back (QDagger anneals it)

    def point(self, label: str, game: str, updates: int, point: dict, state: dict, group) -> dict:
        """What one curve point adds to its metrics record."""
        teacher, random, apart = self.baselines()[game]
        reached = progress(point["score"], teacher, random, apart)
        best = self.best_so_far()
        added = {"progress": reached, "teacher_selection_score": teacher, "random_selection_score": random,
                 "teacher_apart_from_random": apart, "reached_teacher": point["score"] >= teacher}
        if best is None or point["score"] > best["score"]:
            self.best = {"updates": updates, "score": point["score"], "state": state}
            self.run.save_checkpoint(state, "student-best")
        if self.settings.handoff == "qdagger" and not self.stop.requested():
            added["distill_weight"] = self.weight = weight = min(self.weight, self.settings.distill_weight(reached))
            group.set_distill_weight(weight)
            where = (f"is {100 * reached:.0f}% of the way from random ({random:.1f}) to the teacher ({teacher:.1f})"
                     if apart else f"(the teacher's {teacher:.1f} does not beat random's {random:.1f} beyond chance "
                                   f"on these seeds: the reward alone teaches)")
            self.echo(f"[handoff] {label} at update {updates:,}: selection score {point['score']:.1f} {where}; "
                      f"distillation weight {weight:.2f}")
        return added

    def best_so_far(self) -> dict | None:
        """This run's best curve point, or a resumed run's: its newest `student-best` checkpoint that the
        resumed student reached and whose curve point is still in the metrics, with the score it was kept
        for. One past the checkpoint the run resumed from belongs to updates the resume trains again,
        and its point was dropped: paired with no score, any point would have replaced it."""
        if self.best is not None:
            return self.best
        points = {r["updates"]: r["score"] for r in self.run.metrics() if "progress" in r and "updates" in r}
        for path in reversed(self.run.checkpoint_paths("student-best")):
            updates = self.run.checkpoint_updates(path)
            if updates > self.resumed_at or updates not in points:
                continue
            try:
                state = load_checkpoint(path)
            except CheckpointError:
                continue
            self.best = {"updates": updates, "score": points[updates], "state": state}
            return self.best
        return None

    def resume(self, group, kind: str, updates: int) -> None:
        """A resumed run (its student at `updates`): lambda as its last curve point left it (the
        checkpoint's may be the one before), and the best so far among the checkpoints it reached."""
        self.resumed_at = updates
        weights = [r["distill_weight"] for r in self.run.metrics() if r.get("kind") == kind and "distill_weight" in r]
        if weights and self.settings.handoff == "qdagger":
            self.weight = weights[-1]
            group.set_distill_weight(self.weight)


def first_update(records: list[dict], kind: str, flag: str) -> int | None:
    """The first update whose curve point (metrics `kind`) has `flag`, such as `reached_teacher`: its selection
    mean at or above the teacher's there (what hands the weight off; a point estimate, no claim)."""
    return next((r["updates"] for r in records if r.get("kind") == kind and r.get(flag)), None)


class StudentEvaluations:
    def __init__(self, cfg, games: list, holdouts: dict, run, echo, started: float, stop: StopToken):
        self.cfg, self.games, self.run, self.echo, self.started, self.stop = cfg, games, run, echo, started, stop
        self.protocol = cfg.protocol()
        self.holdouts = holdouts
        self.pending: list[dict] = []
        self.baselines = baselines = SelectionBaselines(cfg, games) if cfg.eval_every > 0 else None
        self.balancer = Balancer(baselines) if cfg.balanced() else None
        self.handoff = Handoff(cfg.rl, baselines, run, echo, stop) if cfg.rl.active() else None

    def submit(self, group, kind: str, updates: int, extra: dict) -> None:
        state = group.state(extra)
        weights = handles.put(state)
        entry = {"kind": eval_kind(kind), "label": group.label, "updates": updates, "scores": {}, "agreement": {},
                 "group": group, "state": state if self.handoff else None, "asked_at": time.monotonic()}
        for g in self.games:
            name = g.spec.name
            entry["scores"][name] = submit_evaluation(weights, name, self.protocol.selection_episodes,
                                                      self.cfg.evaluation.workers,
                                                      **self.protocol.play(SELECTION, g.teacher))
            entry["agreement"][name] = submit_agreement(weights, self.holdouts[name]["plain"], name)
        self.pending.append(entry)

    def discard(self, group, after: int) -> None:
        """A rebuilt learner's points past the checkpoint it went back to: their network is gone, and the
        learner plays those updates again; logged, they would steer the balancer, the handoff and
        student-best with weights no student has."""
        self.pending = [e for e in self.pending if not (e["group"] is group and e["updates"] > after)]

    def poll(self, wait: bool = False) -> None:
        """Logs every evaluation that has finished (all of them with `wait`), oldest first."""
        while self.pending:
            entry = self.pending[0]
            refs = self._refs(entry)
            if not wait and len(handles.wait(refs, num_returns=len(refs), timeout=0)[0]) < len(refs):
                return
            self.pending.pop(0)
            self.log(entry)

    def settle(self, budget) -> list[dict]:
        """At a stop: the curve points still playing get what is left of the stop's `budget` (a WindDown)
        to finish and be logged (a resume cannot play them again: their weights are gone); any left, or
        whose evaluation failed (its node lost), are logged as kind ABANDONED with a console line, so a
        gap in the resumed curve is explained. Returns those abandoned."""
        if not self.pending:
            return []
        self.echo(f"[stop] waiting up to {max(0.0, budget.ends - time.monotonic()):.0f} s for {len(self.pending)} "
                  f"curve evaluation(s) in flight; Ctrl-C again exits at once")
        abandoned = []
        while self.pending and time.monotonic() < budget.ends:
            refs = self._refs(self.pending[0])
            done = handles.wait(refs, num_returns=len(refs), timeout=min(1.0, max(0.0, budget.ends - time.monotonic())))
            if len(done[0]) < len(refs):
                continue
            entry = self.pending.pop(0)
            try:
                self.log(entry)
            except Exception as error:  # a task lost with its node: the stop goes on without that point
                abandoned.append(self._abandon(entry, f"its evaluation failed ({type(error).__name__})"))
        abandoned += [self._abandon(entry, "still playing when the stop's wind-down ran out") for entry in self.pending]
        self.pending = []
        return abandoned

    def _abandon(self, entry: dict, why: str) -> dict:
        record = {"kind": ABANDONED, "of": entry["kind"], "label": entry["label"], "updates": entry["updates"],
                  "why": why}
        self.echo(f"[eval] {entry['label']} @ {entry['updates']:,} abandoned at the stop: {why}, so the curve has "
                  f"no point there")
        self.run.log(record)
        return record

    def _refs(self, entry: dict) -> list:
        """What a point waits for: its episodes, its agreement, and the teacher's and the random policy's
        selection-seed scores it is measured against (played first, from the run's start)."""
        return ([r for parts in entry["scores"].values() for r in parts] + list(entry["agreement"].values())
                + self.baselines.refs())

    def log(self, entry: dict) -> None:
        now = time.monotonic()  # lag_s: its play, and its wait behind older points, since its update
        record = {"kind": entry["kind"], "updates": entry["updates"], "elapsed_s": now - self.started,
                  "lag_s": now - entry["asked_at"]}
        per_game = {}
        for game, parts in entry["scores"].items():
            result = collect_evaluation(parts, self.cfg.evaluation.epsilon, self.cfg.acting.noop_max)
            teacher, random, _ = self.baselines()[game]  # on the point's own seeds
            agreement = handles.get(entry["agreement"][game]) if game in entry["agreement"] else None
            supported = result.episodes >= MIN_CLAIM_EPISODES  # the baselines are in: the point waited for them
            per_game[game] = {"score": result.mean, "ci95": result.ci95, "seeds": SELECTION,
                              "episodes": result.episodes, "agreement": agreement,
                              "teacher_selection_score": teacher, "random_selection_score": random,
                              "pct_of_teacher": pct_of_teacher(result.mean, teacher) if supported else None}
            shown = score_text(result.mean, result.ci95, result.episodes, digits=1) + (
                "" if agreement is None else f", agreement {agreement:.3f}") + (
                "" if per_game[game]["pct_of_teacher"] is None else f", {per_game[game]['pct_of_teacher']:.0f}% of teacher")
            self.echo.evaluation(f"{entry['label']} {game} @ {entry['updates']}",
                                 shown + (f" (logged {record['lag_s']:.0f} s after its update)" if len(per_game) == 1 else ""))
        if len(per_game) == 1:
            record.update(next(iter(per_game.values())))
            if self.handoff is not None:
                game = next(iter(per_game))
                record.update(self.handoff.point(entry["label"], game, entry["updates"], per_game[game],
                                                 entry["state"], entry["group"]))
        else:
            record["per_game"] = per_game
        if self.balancer is not None and not self.stop.requested():
            record["schedule_weights"] = weights = self.balancer.weights(per_game)
            entry["group"].set_weights(weights)
            self.echo(f"[schedule] {entry['label']}, by its scores at update {entry['updates']:,}: "
                      + ", ".join(f"{game} {w:.2f}" for game, w in weights.items()))
        self.run.log(record)
