"""summary.json: how a run ended, written and read by one class, so every reader knows its kind.

The fields every run kind has are typed here (kind, complete, wall time, what stopped it);
the kind's own results ride along in `results` and are written at the top level of the
file, as before, so a person reading summary.json sees one flat record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from models.checkpoint import atomic_write
from pipelines.config import RunConfig
from pipelines.rundir import json_safe

FILE = "summary.json"


class SummaryError(ValueError):
    pass


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

    def __post_init__(self):
        if self.kind not in RunConfig.kinds():
            raise SummaryError(f"unknown run kind {self.kind!r}; one of {', '.join(RunConfig.kinds())}")

    def as_dict(self) -> dict:
        typed = {"kind": self.kind, "complete": self.complete, "wall_s": self.wall_s}
        if not self.complete:
            typed["stopped_by"] = self.stopped_by
        return json_safe({**self.results, **typed})

    def write(self, folder: str | Path) -> None:
        atomic_write(Path(folder) / FILE, json.dumps(self.as_dict(), indent=2, sort_keys=True).encode())

    @classmethod
    def from_dict(cls, record: dict, config: dict | None = None) -> "Summary":
        results = dict(record)
        kind = results.pop("kind", None) or kind_of_config(config or {})
        complete, wall_s = results.pop("complete", False), results.pop("wall_s", None)
        stopped_by = results.pop("stopped_by", None)
        if not isinstance(complete, bool) or not (wall_s is None or isinstance(wall_s, (int, float))):
            raise SummaryError(f"summary.json has complete = {complete!r}, wall_s = {wall_s!r}")
        return cls(kind, complete, results, wall_s, stopped_by)

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
