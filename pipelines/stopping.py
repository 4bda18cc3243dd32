"""Stopping a run on purpose: the first Ctrl-C (SIGINT) or SIGTERM asks it to stop at the end of
its current interval, where it writes a final checkpoint, its metrics and a summary marked
incomplete; a second one raises KeyboardInterrupt at once. Every checkpoint and summary is
written to a temp file and renamed, so even that leaves the last complete checkpoint whole.

Only the CLI installs the handlers; library callers (tests, notebooks) keep Python's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}

_requested: str | None = None
_exit_code: int | None = None


def _handle(signum, frame) -> None:
    global _requested
    if _exit_code is not None:  # the command is done and its files are complete: do not interrupt Ray's shutdown
        os._exit(_exit_code)
    if _requested is not None:
        raise KeyboardInterrupt
    _requested = signal.Signals(signum).name
    sys.stderr.write(f"\n{_requested}: stopping after this interval with a final checkpoint and summary; "
                     f"press Ctrl-C again to exit at once\n")


@contextlib.contextmanager
def installed(keep: bool = False):
    """The handlers for the duration of one command, the previous ones after; with `keep` (the
    script, which exits next) they stay, so a signal during shutdown exits at once (`finished`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not keep:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def finished(code: int) -> None:
    """The command returned `code`; from now on a signal exits with it at once."""
    global _exit_code
    _exit_code = code


def requested() -> str | None:
    """The name of the signal that asked the run to stop, or None."""
    return _requested


def request(reason: str = "SIGINT") -> None:
    """Asks the run to stop, as a signal would (for a caller without a signal to send)."""
    global _requested
    _requested = _requested or reason


def reset() -> None:
    global _requested
    _requested = None


def exit_code() -> int:
    """130 or 143 after a signal; 75 (EX_TEMPFAIL: resume later) after a stop the run asked for itself."""
    return EXIT_CODES.get(_requested or "", 75 if _requested else 1)
