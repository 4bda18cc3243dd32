"""summary.json: how a run ended, written and read by one class, so every reader knows its kind.

The fields every run kind has are typed here (kind, complete, wall time, what stopped it);
the kind's own results ride along in `results` and are written at the top level of the
file, as before, so a person reading summary.json sees one flat record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from atari_distill.models.checkpoint import atomic_write
from atari_distill.rundir.directory import json_safe

FILE = "summary.json"
KINDS = ("distill", "multitask", "teacher", "online", "record")  # one per run config (tests/test_summary.py)
VERSION = 2  # 2: `version` written, per_game for every kind; 1: summaries from before (read the same way)


class SummaryError(ValueError):
    pass


GAME_RESULTS = ("teacher", "teacher_fingerprint", "teacher_params", "teacher_score", "random_score", "student_score",
                "student_pct_of_teacher", "pct_low95", "normalised_pct", "normalised_low95", "pct_withheld",
                "action_agreement", "action_agreement_sticky", "majority_baseline", "majority_baseline_sticky",
                "holdout", "holdout_steps", "env_mode", "num_actions", "dataset", "steps_labelled", "best_report_score",
                "beats_random", "scores_kept", "steps", "agreement_not_above_majority")


def with_per_game(results: dict) -> dict:
    """One shape for every run kind: a game's results under `per_game`, for one game as for ten, and
    each student's under its own `per_game`. A one-game run keeps them at the top level too, as
    runs written before this shape have them only there; they get the same view when read."""
    game = results.get("game")
    if not game or not isinstance(game, str):
        return results
    results = dict(results)
    if not isinstance(results.get("per_game"), dict):
        results["per_game"] = {game: {k: results[k] for k in GAME_RESULTS if k in results}}
    if isinstance(results.get("students"), list):
        results["students"] = [row if not isinstance(row, dict) or "per_game" in row else
                               {**row, "per_game": {game: {k: row[k] for k in GAME_RESULTS if k in row}}}
                               for row in results["students"]]
    return results


def kind_of_config(config: dict) -> str:
    """A run from before summaries named their kind: its config's fields say which command made it."""
    if "games" in config:
        return "multitask"
    if "frames" in config:
        return "online" if "distill_actors" in config else "teacher"
    return "distill"


@dataclass
class Summary:
    kind: str
    complete: bool
    results: dict = field(default_factory=dict)
    wall_s: float | None = None
    stopped_by: str | None = None
    version: int = VERSION

    def __post_init__(self):
        if self.kind not in KINDS:
            raise SummaryError(f"unknown run kind {self.kind!r}; one of {', '.join(KINDS)}")

    def as_dict(self) -> dict:
        typed = {"kind": self.kind, "complete": self.complete, "wall_s": self.wall_s, "version": self.version}
        if not self.complete:
            typed["stopped_by"] = self.stopped_by
        return json_safe({**with_per_game(self.results), **typed})

    def write(self, folder: str | Path) -> None:
        atomic_write(Path(folder) / FILE, json.dumps(self.as_dict(), indent=2, sort_keys=True).encode())

    @classmethod
    def from_dict(cls, record: dict, config: dict | None = None) -> "Summary":
        results = dict(record)
        kind = results.pop("kind", None) or kind_of_config(config or {})
        complete, wall_s = results.pop("complete", False), results.pop("wall_s", None)
        stopped_by = results.pop("stopped_by", None)
        version = results.pop("version", 1)
        if not isinstance(complete, bool) or not (wall_s is None or isinstance(wall_s, (int, float))):
            raise SummaryError(f"summary.json has complete = {complete!r}, wall_s = {wall_s!r}")
        return cls(kind, complete, results, wall_s, stopped_by, version if isinstance(version, int) else 1)

    @classmethod
    def read(cls, folder: str | Path, config: dict | None = None) -> "Summary | None":
        """The run's summary (None before it has one); a damaged file is refused in one line."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict):
                raise SummaryError(f"holds a {type(record).__name__}, not a record")
            return cls.from_dict(record, config)
        except ValueError as error:  # not JSON, not UTF-8, or not a summary's shape
            raise SummaryError(f"{str(path)!r} is damaged ({str(error).splitlines()[0][:80]}); run the command "
                               f"again with --resume {folder} to write it anew") from None
