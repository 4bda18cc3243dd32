"""What a finished distillation run states: the teacher's and the random policy's scores and held-out
frames, each student played on the report seeds with its agreement, an RL-weighted student's handoff,
and the summary's shape for one game or several."""

from __future__ import annotations

import numpy as np

from atari_distill.evaluation.episodes import collect_evaluation, result_of, submit_evaluation
from atari_distill.evaluation.protocol import REPORT
from atari_distill.cluster.learner_group import LearnerGroup
from atari_distill.models.checkpoint import fingerprint, payload_params
from atari_distill.pipelines.config import DistillConfig
from atari_distill.pipelines.distill_games import GameRun
from atari_distill.evaluation.statistics import (compare, geometric_means, majority_baseline, passed_teacher,
                                                  submit_holdouts, unless_majority_action)
from atari_distill.evaluation.score_cache import KeptOrPlayed, ScoreCache, policy_key
from atari_distill.pipelines.skeleton import RunStart
from atari_distill.evaluation.curve import eval_kind
from atari_distill.runners import handles


def metrics_kind(series: str) -> str:
    """The `kind` of a learner's metrics records: `distill` (implicit) alone, `distill-PRESET-LOSS` in a sweep."""
    return series.replace("student", "distill", 1)


def student_results(cfg: DistillConfig, group: LearnerGroup, student: dict, games: list[GameRun], holdouts: dict,
                    teacher_evals: dict, pending: dict, echo) -> dict:
    per_game = {}
    for g in games:
        name = g.spec.name
        result = collect_evaluation(pending[name], cfg.evaluation.epsilon, cfg.acting.noop_max)
        echo.evaluation(f"{group.label} {name}", result.text())
        teacher, random = teacher_evals[name]
        agreement = {key: handles.get(group.agreement(obs, q, name)) for key, (obs, q, _) in holdouts[name].items()}
        plain_q = holdouts[name]["plain"][1]
        ratios = unless_majority_action(compare(result.as_dict(), teacher.as_dict(), random.as_dict()),
                                        agreement["plain"], majority_baseline(plain_q), len(plain_q))
        per_game[name] = {"student_score": result.as_dict(), **ratios,
                          "action_agreement": agreement["plain"], "action_agreement_sticky": agreement["sticky"]}
    settings = group.config.student
    row = {"student": settings.preset, "loss": settings.loss, "student_params": payload_params(student),
           "updates": student["updates"], "replicas": group.replicas, "learner_restarts": group.restarts,
           "checkpoint_series": group.series}
    if len(games) == 1:
        return {**row, **per_game[games[0].spec.name]}
    return {**row, "per_game": per_game, **geometric_means(per_game),
            "mean_action_agreement": float(np.mean([r["action_agreement"] for r in per_game.values()]))}


def rl_results(cfg: DistillConfig, start: RunStart, game: GameRun, group: LearnerGroup, student: dict,
               final: dict, best: dict | None, best_pending: list | None, teacher_scores: dict) -> dict:
    """A student that learnt from the reward too: its handoff, when its selection score reached the
    teacher's, whether the final student (`final`, its report-seed row) passed the teacher on the report
    seeds, and its best selection-seed checkpoint played on the report seeds (the final student's score
    stays the summary's own; a best chosen on selection seeds is stated on the others, as a DQN's)."""
    from atari_distill.evaluation.curve import first_update

    kind = eval_kind(metrics_kind(group.series))
    result = {"rl_weight": cfg.rl.rl_weight, "handoff": cfg.rl.handoff, "n_step": cfg.rl.rl_n_step,
              "gamma": cfg.rl.rl_gamma, "target_every": cfg.rl.rl_target_every,
              "life_loss_terminal": cfg.rl.rl_life_loss_terminal,
              "distill_weight": student["extra"].get("distill_weight"),
              "selection_episodes": cfg.evaluation.selection_episodes, "best": None}
    records = start.run.metrics()
    apart = [r["teacher_apart_from_random"] for r in records if r.get("kind") == kind and "teacher_apart_from_random" in r]
    teacher, random = teacher_scores[game.spec.name]
    result.update(reached_teacher_at=first_update(records, kind, "reached_teacher"),
                  passed_teacher=passed_teacher(final["student_score"], teacher.as_dict()),
                  teacher_apart_from_random=apart[-1] if apart else None)
    if best is not None:
        played = collect_evaluation(best_pending, cfg.evaluation.epsilon, cfg.acting.noop_max)
        start.echo.evaluation(f"{group.label} best (update {best['updates']:,}) {game.spec.name}", played.text())
        result["best"] = {"updates": best["updates"], "selection_score": best["score"],
                          "student_score": played.as_dict(), **compare(played.as_dict(), teacher.as_dict(),
                                                                         random.as_dict()),
                          "passed_teacher": passed_teacher(played.as_dict(), teacher.as_dict())}
    return result


class TeacherEvaluation:
    """The teacher's and the random policy's scores on the report seeds and the teacher's held-out
    frames (across whole episodes, with and without sticky actions), made while the students train.
    Report episodes an earlier run played with the same teacher, seeds and code are read from the
    score cache instead (evaluation/score_cache.py)."""

    def __init__(self, cfg: DistillConfig, games: list[GameRun], scores: ScoreCache | None = None):
        self.cfg, self.games, self.protocol = cfg, games, cfg.protocol()
        self.scores = scores or ScoreCache.default()
        self.holdout_refs = {g.spec.name: submit_holdouts(g.spec.name, g.teacher_ref, self.protocol) for g in games}
        self.baselines = {(g.spec.name, random): self.baseline(g, random) for g in games for random in (False, True)}

    def keep_if_played(self) -> None:
        for baseline in self.baselines.values():
            baseline.keep_if_played()

    def submit(self, g: GameRun, policy, random_policy: bool = False) -> list:
        return submit_evaluation(policy, g.spec.name, self.protocol.episodes, self.cfg.evaluation.workers,
                                 **self.protocol.play(REPORT, g.teacher, random_policy=random_policy))

    def baseline(self, g: GameRun, random_policy: bool) -> KeptOrPlayed:
        play = self.protocol.play(REPORT, g.teacher, random_policy=random_policy)
        key = self.scores.key(g.spec.name, policy_key(g.teacher, g.spec.num_actions, random_policy),
                              self.protocol.episodes, self.cfg.evaluation.workers, play)
        return KeptOrPlayed(self.scores, key, lambda: self.submit(g, g.teacher_ref, random_policy))

    def results(self, producer_stats: dict, echo) -> tuple[dict, dict, dict]:
        """Held-out frames, (teacher, random) results and each game's teacher record for the summary."""
        cfg = self.cfg
        holdouts = {name: {key: handles.get(ref) for key, ref in refs.items()} for name, refs in self.holdout_refs.items()}
        scores, per_game = {}, {}
        for g in self.games:
            name = g.spec.name
            result, random = (result_of(self.baselines[name, r].rows(), 1.0 if r else cfg.evaluation.epsilon,
                                        cfg.acting.noop_max) for r in (False, True))
            scores[name] = (result, random)
            kept = {r: " (kept)" if self.baselines[name, r].kept else "" for r in (False, True)}
            echo.evaluation(f"teacher {name}", result.text() + kept[False])
            echo.evaluation(f"random policy {name}", random.text() + kept[True])
            plain, sticky = holdouts[name]["plain"], holdouts[name]["sticky"]
            per_game[name] = {
                "teacher": g.teacher["extra"].get("source", "random"), "teacher_fingerprint": fingerprint(g.teacher),
                "teacher_params": payload_params(g.teacher), "num_actions": g.spec.num_actions,
                "steps_labelled": sum(s["steps"] for s in producer_stats[name]), "teacher_score": result.as_dict(),
                "random_score": random.as_dict(),
                "majority_baseline": majority_baseline(plain[1]), "majority_baseline_sticky": majority_baseline(sticky[1]),
                "holdout_steps": int(len(plain[1])), "holdout": {"plain": plain[2], "sticky": sticky[2]},
                "env_mode": g.env_mode,
                "scores_kept": [who for who, r in (("teacher", False), ("random", True)) if self.baselines[name, r].kept],
            }
        if any(b.kept for b in self.baselines.values()):
            echo(f"[distill] (kept): read from {self.scores.folder}, where an earlier run left the same episodes "
                 f"played by the same code; delete it to play them again")
        return holdouts, scores, per_game


def with_games(cfg: DistillConfig, summary: dict, games: list[GameRun], per_game: dict, rows: list[dict],
               producer_stats: dict, students: list[dict]) -> dict:
    """One game's results at the summary's top level; several games' under per_game (merged with
    the student's where there is one student)."""
    single = {k: v for k, v in rows[0].items() if k not in ("student", "loss")} if len(rows) == 1 else {}
    if len(games) == 1:
        name = games[0].spec.name
        summary.update(game=name, **per_game[name], **single,
                       dataset=({"path": cfg.dataset, **producer_stats[name][0]} if cfg.dataset else None))
        summary["eval_protocol"] = summary["protocol"]["text"] = cfg.protocol().text(per_game[name]["env_mode"])
        summary["protocol"]["env_mode"] = per_game[name]["env_mode"]
        return summary
    for g in games:
        if g.dataset:
            per_game[g.spec.name]["dataset"] = {"path": str(g.dataset.path), **producer_stats[g.spec.name][0]}
    if single:
        single["per_game"] = {g: {**per_game[g], **r} for g, r in single["per_game"].items()}
    summary.update(
        games=[g.spec.name for g in games], per_game=single.pop("per_game", per_game), schedule=cfg.schedule,
        schedule_weights=students[0]["extra"]["schedule"].get("weights", cfg.schedule_weights()),
        samples_per_game={g: n * cfg.student.batch_size * rows[0]["replicas"]  # every replica draws the same games
                          for g, n in students[0]["extra"]["schedule"]["counts"].items()},
        steps_labelled=sum(r["steps_labelled"] for r in per_game.values()), **single)
    return summary
