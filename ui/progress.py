"""What a run shows while it runs: a live panel on a terminal, plain lines anywhere else.

Runs report events as text (`progress("...")`) and every metrics record as it is written
to metrics.jsonl (`progress.update(record)`). On a terminal, rich redraws one compact
panel per record and prints events above it. When stdout is not a terminal (CI, `ray job`
logs, a file) nothing but plain lines is written: one per event and one per record, with no
control codes.
"""

from __future__ import annotations

import collections
import sys
import time

from atari_distill.rundir.directory import ABANDONED

# (record key, label, format); only keys a record carries are shown
FIELDS = (
    ("updates", "updates", "{:,}"),
    ("frames", "frames", "{:,}"),
    ("labelled_steps", "labelled", "{:,}"),
    ("loss", "loss", "{:.4f}"),
    ("updates_per_s", "upd/s", "{:.1f}"),
    ("samples_per_s", "samples/s", "{:,.0f}"),
    ("labelled_per_s", "labelled/s", "{:,.0f}"),
    ("wait_fraction", "learner waits", "{:.0%}"),
    ("epsilon", "epsilon", "{:.3f}"),
    ("teacher_version", "teacher version", "{}"),
    ("q_mean", "mean Q", "{:.2f}"),
)


def _format(fmt: str, value) -> str:
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


RATE_WINDOW_S = 30.0  # labelled/s averages over at least this long

class Progress:
    def __init__(self, title: str, total: int, unit: str, write=None, live: bool | None = None,
                 capacity: dict[str, int] | None = None, console=None, on_metrics=None):
        """`unit` is the record key that counts towards `total` (updates or frames); `on_metrics`, if given,
        is handed every metrics record as it is written, curve points included (a notebook, a search)."""
        self.title, self.total, self.unit = title, total, unit
        self.write = write or (lambda text: print(text, flush=True))
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.capacity = capacity or {}
        self.latest: dict[str, dict] = {}
        self.evaluations: dict[str, str] = {}
        self.started = time.monotonic()
        self.first: dict[str, tuple[float, float]] = {}
        self.previous_labelled: dict[str, collections.deque] = {}  # (labelled steps, seconds) in the rate window
        self.live, self.console = None, console  # console: rich's, for tests; None is stdout
        self.on_metrics = on_metrics

    @classmethod
    def quiet(cls) -> "Progress":
        return cls("", 1, "updates", write=lambda text: None, live=False)

    def __call__(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text, markup=False, highlight=False)
        else:
            self.write(text)

    def evaluation(self, who: str, text: str) -> None:
        self.evaluations[who] = text
        self(f"[eval] {who}: {text}")

    def _enrich(self, kind: str, record: dict) -> dict:
        record = dict(record)
        now = record.get("elapsed_s") or (time.monotonic() - self.started)
        # over a window: chunks land in bursts, so one interval reads 0 or double; a recording labels nothing
        if "labelled_steps" in record and not record.get("from_dataset"):
            window = self.previous_labelled.setdefault(kind, collections.deque())
            window.append((record["labelled_steps"], now))
            while len(window) > 2 and now - window[1][1] >= RATE_WINDOW_S:
                window.popleft()
            if now > window[0][1]:
                record["labelled_per_s"] = (record["labelled_steps"] - window[0][0]) / (now - window[0][1])
        done = record.get(self.unit)
        if done is not None:
            start = self.first.setdefault(self.unit, (done, now))
            if now > start[1] and done > start[0] and self.total > done:
                record["eta_s"] = (self.total - done) * (now - start[1]) / (done - start[0])
        return record

    def _replay(self, record: dict) -> str:
        sizes = record.get("replay_size")
        per_game = record.get("replay_per_game")
        if per_game:
            sizes = {g: r["replay_size"] for g, r in per_game.items()}
        if isinstance(sizes, int):
            sizes = {game: sizes for game in self.capacity} or {"replay": sizes}
        if not isinstance(sizes, dict):
            return ""
        parts = []
        for game, size in sizes.items():
            capacity = self.capacity.get(game)
            parts.append(f"{game} {size:,}" + (f" ({size / capacity:.0%})" if capacity else ""))
        return ", ".join(parts)

    def line_for(self, kind: str, record: dict) -> str:
        shown = [f"{label} {_format(fmt, record[key])}" for key, label, fmt in FIELDS if record.get(key) is not None]
        replay = self._replay(record)
        if replay:
            shown.append(f"replay {replay}")
        if record.get("eta_s") is not None:
            eta = record["eta_s"]
            shown.append(f"ETA {eta:.0f} s" if eta < 120 else f"ETA {eta / 60:.1f} min")
        return f"[{kind}] " + " | ".join(shown)

    def update(self, record: dict) -> None:
        if self.on_metrics is not None:
            self.on_metrics(dict(record))
        kind = record.get("kind", "distill")
        if kind.startswith("eval") or kind == ABANDONED:  # shown by `evaluation` as it finishes, or not at all
            return
        record = self._enrich(kind, record)
        self.latest[kind] = record
        if not self.live_mode:
            self.write(self.line_for(kind, record))
            return
        if self.live is None:
            from rich.live import Live

            self.live = Live(self._panel(), refresh_per_second=4, transient=False, console=self.console)
            self.live.start()
        self.live.update(self._panel())

    def _panel(self):
        from rich.panel import Panel
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for kind, record in self.latest.items():
            table.add_row(kind, self.line_for(kind, record).split("] ", 1)[1].replace(" | ", "   "))
        for who, text in self.evaluations.items():
            table.add_row(f"eval {who}", text)
        return Panel(table, title=self.title)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def as_progress(echo, title: str, total: int, unit: str, capacity: dict[str, int] | None = None) -> Progress:
    """The CLI passes a Progress; tests and library callers may pass any line printer."""
    if isinstance(echo, Progress):
        echo.title, echo.total, echo.unit = title, total, unit
        echo.capacity = capacity or echo.capacity
        return echo
    return Progress(title, total, unit, write=echo, live=False, capacity=capacity)
