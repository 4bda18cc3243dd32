"""A run's result as typed values, read from the summary.json it wrote: what the Python API returns
and what a notebook, a search or a bench reads by attribute.

summary.json stays the record of truth (a person reads it, older runs have only it); `RunResult`
is its typed view, the same for every run kind: `per_game` maps each game to the scores of the
student (a teacher run: its best checkpoint), the teacher and the random policy, all played on
the report seeds, with the ratios between them and their lower 95% bounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from atari_distill.rundir.summary import FILE, VERSION, Summary, SummaryError, with_per_game


@dataclass(frozen=True)
class Score:
    """Episodes' mean return with the half-width of its 95% CI (None from one episode), played from
    the `seeds` range's first seed."""

    mean: float
    ci95: float | None
    episodes: int
    seeds: int | None = None
    scores: tuple[float, ...] = ()

    @classmethod
    def of(cls, record, seeds: int | None) -> "Score | None":
        if not isinstance(record, dict) or not isinstance(record.get("mean"), (int, float)):
            return None
        return cls(float(record["mean"]), record.get("ci95"), int(record.get("episodes", 0)), seeds,
                   tuple(float(s) for s in record.get("scores", ())))

    def __str__(self) -> str:
        interval = "" if self.ci95 is None else f" +/- {self.ci95:.1f}"
        return f"{self.mean:.1f}{interval} ({self.episodes} episodes)"


@dataclass(frozen=True)
class GameResult:
    """One game of one student: scores on the report seeds and what they say together."""

    game: str
    student: Score | None = None
    teacher: Score | None = None
    random: Score | None = None
    pct_of_teacher: float | None = None  # raw, as the paper states it
    pct_low95: float | None = None
    normalised_pct: float | None = None  # (student - random) / (teacher - random)
    normalised_low95: float | None = None
    agreement: float | None = None  # greedy action agreement with the teacher on held-out frames
    majority_baseline: float | None = None  # the same frames' most common teacher action's share
    agreement_sticky: float | None = None  # the same, on held-out frames played with sticky actions
    majority_baseline_sticky: float | None = None
    pct_withheld: str | None = None  # why no % of teacher is stated (too few episodes), if so
    normalised_withheld: str | None = None  # why no normalised % (teacher not apart from random), if so
    above_random: float | None = None  # then: the student's points above the random policy ...
    above_random_low95: float | None = None  # ... and their lower 95% bound

    @classmethod
    def of(cls, game: str, record: dict, shared: dict, seeds: int | None) -> "GameResult":
        """`record`: the student's entries for the game; `shared`: the run's (teacher, random) for it."""
        both = {**shared, **record}
        student = both.get("student_score") or both.get("best_report_score")
        return cls(game, Score.of(student, seeds), Score.of(both.get("teacher_score"), seeds),
                   Score.of(both.get("random_score"), seeds), both.get("student_pct_of_teacher"),
                   both.get("pct_low95"), both.get("normalised_pct"), both.get("normalised_low95"),
                   both.get("action_agreement"), both.get("majority_baseline"), both.get("action_agreement_sticky"),
                   both.get("majority_baseline_sticky"), both.get("pct_withheld"), both.get("normalised_withheld"),
                   both.get("above_random"), both.get("above_random_low95"))


@dataclass(frozen=True)
class GeometricMean:
    """A multi-task student's % of teacher over its games, as the paper aggregates them."""

    games: list[str]
    normalised_pct: float | None
    normalised_low95: float | None
    pct_of_teacher: float | None
    pct_low95: float | None
    of: str | None  # which ratio it is defined for, None where neither is
    undefined: str | None = None  # why neither is, where a game is below random

    @classmethod
    def of_row(cls, row: dict) -> "GeometricMean | None":
        if "geometric_mean_over" not in row:
            return None
        return cls(list(row["geometric_mean_over"]), row.get("geometric_mean_normalised_pct"),
                   row.get("geometric_mean_normalised_low95"), row.get("geometric_mean_pct_of_teacher"),
                   row.get("geometric_mean_pct_low95"), row.get("geometric_mean_of"),
                   row.get("geometric_mean_undefined"))


@dataclass(frozen=True)
class StudentResult:
    """One trained network of the run (a sweep has several), by its checkpoint series."""

    series: str
    preset: str | None
    loss: str | None
    updates: int | None
    params: int | None
    per_game: dict[str, GameResult]
    geometric: GeometricMean | None = None  # several games only
    rl: dict | None = None  # a student that learnt from the reward too (--rl-weight): its handoff record


@dataclass(frozen=True)
class RunResult:
    """How a run ended and what it scored; `summary` keeps every figure the types leave out."""

    run_dir: Path
    kind: str
    complete: bool
    stopped_by: str | None
    wall_s: float | None
    per_game: dict[str, GameResult]  # the first student's (a teacher run: its best checkpoint's)
    students: list[StudentResult] = field(default_factory=list)
    version: int = VERSION
    summary: dict = field(default_factory=dict, repr=False)

    @property
    def games(self) -> list[str]:
        return list(self.per_game)

    def metrics(self, kind: str | None = None):
        """metrics.jsonl as a pandas DataFrame (`kind`'s lines only, if given; needs pandas)."""
        from atari_distill.rundir.frames import metrics_frame

        return metrics_frame(self.run_dir, kind)

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunResult":
        """The result a run directory's summary.json states; refused in one line without one."""
        run_dir = Path(run_dir)
        config = {}
        if (run_dir / "config.json").is_file():
            try:
                config = json.loads((run_dir / "config.json").read_text())
            except ValueError:
                config = {}
        summary = Summary.read(run_dir, config)
        if summary is None:
            raise SummaryError(f"{str(run_dir)!r} has no {FILE} yet: the run has not ended (resume it with "
                               f"python launch.py COMMAND --resume {run_dir})")
        return cls.from_summary(summary.as_dict(), run_dir)

    @classmethod
    def from_summary(cls, record: dict, run_dir: str | Path) -> "RunResult":
        record = with_per_game(record)
        seeds = ((record.get("protocol") or {}).get("seeds") or {}).get("report") \
            if isinstance(record.get("protocol"), dict) else None
        shared = record.get("per_game") if isinstance(record.get("per_game"), dict) else {}
        students = [cls._student(row, shared, seeds) for row in record.get("students") or [] if isinstance(row, dict)]
        if not students and record.get("kind") == "online" and isinstance(record.get("student"), str):
            row = {"student": record["student"], "loss": record.get("loss"), "updates": record.get("student_updates"),
                   "student_params": record.get("student_params"), "per_game": shared}
            students = [cls._student(row, {}, seeds)]  # online's one student: its results are the run's
        if students:
            per_game = students[0].per_game
        else:
            per_game = {game: GameResult.of(game, {}, entry, seeds) for game, entry in shared.items()}
        return cls(Path(run_dir), record.get("kind", "distill"), bool(record.get("complete", False)),
                   record.get("stopped_by"), record.get("wall_s"), per_game, students,
                   int(record.get("version", 1)), record)

    @staticmethod
    def _student(row: dict, shared: dict, seeds: int | None) -> StudentResult:
        games = row.get("per_game") if isinstance(row.get("per_game"), dict) else {}
        per_game = {game: GameResult.of(game, entry, shared.get(game, {}), seeds) for game, entry in games.items()}
        return StudentResult(row.get("checkpoint_series", "student"), row.get("student"), row.get("loss"),
                             row.get("updates"), row.get("student_params"), per_game, GeometricMean.of_row(row),
                             row.get("rl"))
