"""Stopping one run on purpose: a `StopToken` the run is handed and checks at the end of each
interval, where it writes a final checkpoint, its metrics and a summary marked incomplete.

The token belongs to one run, so a run that stopped itself (a lost replay, a learner that
cannot be placed again) leaves the next run in the same process untouched. Who sets it is the
caller's business: the CLI's signal handlers (atari_distill/cli.py), the Python API on a
KeyboardInterrupt, a search stopping a trial, or the run itself.
"""

from __future__ import annotations

import threading
from typing import Callable

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143, "KeyboardInterrupt": 130}


class StopToken:
    """Asks one run to stop after its current interval; the first reason given is the one kept."""

    def __init__(self) -> None:
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._held: list[Callable[[], None]] = []

    def hold(self, release: Callable[[], None]) -> None:
        """Something the run holds until it ends (its placement, its run directory's lock), and how to let
        it go: a run that ends by an exception in a process that lives on (a notebook) must not keep it."""
        self._held.append(release)

    def release_held(self) -> None:
        """Lets go of everything `hold` was given, newest first; each release at most once."""
        while self._held:
            try:
                self._held.pop()()
            except Exception:  # a release of something already gone (a node lost with it)
                pass

    def request(self, reason: str = "a stop request") -> None:
        with self._lock:
            self._reason = self._reason or reason

    def requested(self) -> str | None:
        """What asked the run to stop, or None."""
        return self._reason

    def exit_code(self) -> int:
        """130 or 143 after a signal or Ctrl-C; 75 (EX_TEMPFAIL: resume later) after a stop the run
        asked for itself; 1 when nothing asked."""
        return EXIT_CODES.get(self._reason or "", 75 if self._reason else 1)
