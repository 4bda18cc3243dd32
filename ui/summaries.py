"""What launch.py prints when a run ends: the few lines of its summary a person reads first."""

from __future__ import annotations

from atari_distill.evaluation.episodes import score_text
from atari_distill.evaluation.protocol import MIN_CLAIM_EPISODES
from atari_distill.rundir.result import GameResult, RunResult, Score, StudentResult


def number(value, missing: str = "not scored") -> str:
    return missing if value is None else f"{value:.2f}"


def percent(value) -> str:
    """A % of teacher, or n/a where the teacher's score is not positive."""
    return "n/a" if value is None else f"{value:.0f}%"


def ratio_text(result: GameResult | dict) -> str:
    """The student against its teacher as a reader may quote it: raw and normalised % of teacher, each
    with its lower 95% bound, or why they are withheld."""
    if isinstance(result, dict):  # an online summary or an RL student's best checkpoint: one game's record
        result = GameResult.of("", result, {}, None)
    if result.pct_withheld:
        return f"% of teacher withheld ({result.pct_withheld})"
    if result.normalised_withheld:  # a % of such a teacher would be a ratio to noise: the margin leads
        return (f"{result.above_random:.1f} above the random policy (low 95% {result.above_random_low95:.1f}); "
                f"no % of teacher claimed ({result.normalised_withheld}; the raw ratio would read "
                f"{percent(result.pct_of_teacher)})")
    parts = [f"{percent(result.pct_of_teacher)} of teacher (low 95% {percent(result.pct_low95)})"]
    if result.normalised_pct is not None or result.random is not None:
        parts.append(f"normalised {percent(result.normalised_pct)} (low 95% {percent(result.normalised_low95)})")
    return ", ".join(parts)


def agreement_text(result: GameResult) -> str:
    text = f"agreement {result.agreement:.3f} (majority {result.majority_baseline:.3f})"
    if result.agreement_sticky is not None:
        text += f", sticky actions {result.agreement_sticky:.3f} (majority {result.majority_baseline_sticky:.3f})"
    return text


def stopped(summary: dict, command: str, path) -> str:
    if command == "record":
        return (f"[record] stopped by {summary.get('stopped_by')} with {summary.get('steps', 0):,} steps of whole "
                f"chunks recorded; continue with: python launch.py record --resume {path}")
    if summary.get("updates"):
        return (f"[{command}] stopped by {summary.get('stopped_by')} at update {summary.get('updates')}; wrote a final "
                f"checkpoint and an incomplete summary; continue with: python launch.py {command} --resume {path}")
    return (f"[{command}] stopped by {summary.get('stopped_by')} before the first update, so there is no checkpoint "
            f"to write; an incomplete summary is in {path}; start it afresh with: python launch.py {command} "
            f"--resume {path}")


def geometric_text(student: StudentResult) -> str:
    """A multi-task student's geometric means over its games, normalised and raw, each with its lower 95% bound."""
    mean, name = student.geometric, f"{student.preset}/{student.loss}"
    withheld = [r.pct_withheld for r in student.per_game.values() if r.pct_withheld]
    if withheld:
        return f"{name}: geometric mean over {len(mean.games)} games withheld ({withheld[0]})"
    if mean.of is None:
        return f"{name}: geometric mean over {len(mean.games)} games undefined" + (
            f": {mean.undefined}" if mean.undefined else "")
    parts = []
    for label, value, low in (("normalised", mean.normalised_pct, mean.normalised_low95),
                              ("raw", mean.pct_of_teacher, mean.pct_low95)):
        undefined = " (undefined: a game's ratio is below 0, or its teacher not above 0 or random)"
        parts.append(f"{label} {percent(value)}" + (f" (low 95% {percent(low)})" if value is not None else undefined))
    return f"{name}: geometric mean % of teacher over {len(mean.games)} games: " + ", ".join(parts)


def student_acted(summary: dict) -> tuple[int, int] | None:
    """(steps whose action the student chose, steps the teacher labelled) of a --behaviour run, if known."""
    replay = summary.get("replay") or {}
    acted, labelled = replay.get("student_acted_steps"), replay.get("labelled_steps")
    return (acted, labelled) if acted is not None and labelled else None


def rl_text(rl: dict) -> str:
    """A student that learnt from the reward too (--rl-weight): its handoff and where it passed its teacher."""
    weight = rl.get("distill_weight")
    reached = rl.get("reached_teacher_at")
    episodes = f" ({rl['selection_episodes']} episodes a point)" if rl.get("selection_episodes") else ""
    text = (f"--rl-weight {rl['rl_weight']:g} (--handoff {rl['handoff']}): distillation weight "
            f"{'unknown' if weight is None else f'{weight:.2f}'} at the end; on selection seeds{episodes} its mean "
            + (f"first reached the teacher's at update {reached:,}" if reached is not None else "never reached the teacher's")
            + "; " + passed_text(rl.get("passed_teacher"), "the final student"))
    if rl.get("teacher_apart_from_random") is False:
        text += ("; the teacher did not beat the random policy beyond chance on the selection seeds, so the "
                 "reward taught alone from the first point")
    best = rl.get("best")
    if best:
        score = best["student_score"]
        text += (f"; its best selection checkpoint (update {best['updates']:,}) on report seeds "
                 f"{score_text(score['mean'], score['ci95'], score['episodes'])}, {ratio_text(best)}")
        if "passed_teacher" in best:
            text += ", " + passed_text(best["passed_teacher"], "it")
    return text


def passed_text(passed: bool | None, who: str) -> str:
    """The one test of whether a student passed its teacher: on the report seeds, at the end."""
    if passed is None:
        return f"whether {who} passed the teacher is withheld (too few report episodes)"
    return f"{who} {'passed' if passed else 'did not pass'} the teacher beyond chance on the report seeds"


def score(value: Score) -> str:
    return score_text(value.mean, value.ci95, value.episodes)


def distill_lines(summary: dict, path) -> list[str]:
    result = RunResult.from_summary(summary, path)
    lines = []
    for game, shared in result.summary["per_game"].items():
        played = GameResult.of(game, {}, shared, None)
        random = f", random policy {score_text(played.random.mean, played.random.ci95)}" if played.random else ""
        lines.append(f"{game}: teacher {score(played.teacher)}{random}, majority-action baseline "
                     f"{played.majority_baseline:.3f}")
    for student in result.students:
        for game, played in student.per_game.items():
            lines.append(f"{game}: {student.preset} ({student.params:,} params, {student.loss}, {student.updates} "
                         f"updates) {score(played.student)}; {agreement_text(played)}; {ratio_text(played)}")
        if student.geometric is not None:
            lines.append(geometric_text(student))
        if student.rl:
            lines.append(rl_text(student.rl))
    if summary.get("behaviour", "teacher") != "teacher":
        acted = student_acted(summary)
        lines.append(f"--behaviour {summary['behaviour']}: the student chose the actions of "
                     + (f"{acted[0]:,} of the {acted[1]:,} steps the teacher labelled" if acted
                        else "an unknown share of the steps (the replay did not answer)"))
    restarts = summary["restarts"]
    if restarts["actors"] or restarts["learners"]:
        lines.append(f"restarts: {restarts['actors']} actor(s), {restarts['learners']} learner(s)")
    return lines + [f"[distill] wrote {path}"]


def duration(seconds) -> str:
    if seconds is None:
        return "time not recorded"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def teacher_lines(summary: dict, path) -> list[str]:
    best, report = summary["best"] or {}, summary.get("best_report_score")
    lines = [f"{summary['game']}: DQN trained on {summary['frames']:,} frames, {summary['updates']:,} updates, in "
             f"{duration(summary.get('wall_s'))}",
             f"best checkpoint: {best.get('checkpoint')} (version {best.get('version')}, at {best.get('frames')} "
             f"frames; chosen on selection seeds at {number(best.get('score'))})"]
    if report:
        lines.append(f"best checkpoint on report seeds: {score_text(report['mean'], report['ci95'], report['episodes'])}")
    random = summary.get("random_score")
    if report and random:
        beats = summary.get("beats_random")
        verdict = (f"whether the best checkpoint beats it needs at least {MIN_CLAIM_EPISODES} episodes (--eval-episodes)"
                   if beats is None else "the best checkpoint beats it beyond chance" if beats else
                   "the best checkpoint does not beat it beyond chance: no policy learnt yet to distill")
        lines.append(f"random policy on the same seeds: {score_text(random['mean'], random['ci95'], random['episodes'])}"
                     f"; {verdict}")
    return lines + [f"[teacher] wrote {path}"]


def online_lines(summary: dict, path) -> list[str]:
    lines = [f"{summary['game']}: DQN trained on {summary['frames']:,} frames ({summary['updates']:,} updates), its "
             f"student {summary['student_updates']:,} updates, in {duration(summary.get('wall_s'))}"]
    for row in summary["timeline"]:
        if row.get("final"):
            continue
        best = "not scored" if row["best_version"] is None else f"{number(row['best_score'])} (v{row['best_version']})"
        lines.append(f"frames {row['frames']:>10,}: dqn {number(row['dqn_score'])}, best so far {best}, student "
                     f"{number(row['student_score'], 'not trained yet')}")
    student, teacher = summary["student_score"], summary["teacher_score"]
    return lines + [f"final, on report seeds: student {score_text(student['mean'], student['ci95'], student['episodes'])}, "
                    f"best teacher {score_text(teacher['mean'], teacher['ci95'], teacher['episodes'])}; "
                    f"{ratio_text(summary)}", f"[online] wrote {path}"]


def record_lines(index: dict, path) -> list[str]:
    teacher = index["teacher"]
    return [f"{index['game']}: {index['steps']:,} labelled steps in {index['chunks']:,} chunks from teacher "
            f"{teacher.get('source')} (fingerprint {teacher.get('fingerprint')})", f"[record] wrote {path}"]

