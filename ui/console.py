"""Our lines on the console; Ray's, ALE's and other libraries' log lines in a file.

Ray's C++ core, Ray's Python loggers and the emulator write straight to file descriptor 2,
around Python, so the only place to sort them from ours is that descriptor: while a command
runs, fd 2 is a pipe read by a thread that passes our lines through to the terminal and
keeps every line in a third-party format for `third_party.log` in the run directory (or the
temp folder when the command made none). `--debug` leaves fd 2 alone. The lines Ray forwards from
its workers it prints to stdout, coloured, around this filter: launch.py asks Ray not to forward them
(cluster/runtime.forward_worker_logs), and they stay in Ray's session logs. Ray's error listener still
prints its own few, coloured, to stdout (a node marked dead, a raylet terminated).
"""

from __future__ import annotations

import os
import re
import select
import sys
import tempfile
import threading
import time
from pathlib import Path

THIRD_PARTY = re.compile(
    r"^(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\]"  # Ray's C++ logs
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\t(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+:\d+ -- "  # Ray's Python loggers
    r"|\(\w+ pid=\d+(, ip=[\d.]+)?\) \[\d{4}-\d\d-\d\d"  # a worker's C++ log, forwarded by Ray
    r"|A\.L\.E: Arcade Learning Environment|\[Powered by Stella\])")
SINGLE_LINE = ("A.L.E", "[Powered by Stella]")  # the emulator's banner has no continuation
# the rest of a multi-line third-party message: indented lines, a traceback, the exception's own lines
CONTINUATION = re.compile(r"^(\s|Traceback|[\w.]+(Error|Exception)\b|(class_name|actor_id|pid|namespace|ip):|The actor )")


class ConsoleFilter:
    def __init__(self):
        self.captured: list[bytes] = []
        self.pending = b""  # a line not yet ended
        self.inside = False  # within a third-party message that spans lines
        self.stopping = threading.Event()

    def __enter__(self) -> "ConsoleFilter":
        sys.stderr.flush()
        self.terminal = os.dup(2)
        self.reader, writer = os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
        self.thread = threading.Thread(target=self._pump, name="console-filter", daemon=True)
        self.thread.start()
        return self

    def _pump(self) -> None:
        while not self.stopping.is_set():
            if select.select([self.reader], [], [], 0.1)[0] and not self._read():
                break

    def _read(self) -> bool:
        """Routes what the pipe holds now; False at its end."""
        data = os.read(self.reader, 65536)
        if not data:
            return False
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self._route(line + b"\n")
        return True

    def _route(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if THIRD_PARTY.match(text):
            self.captured.append(line)
            self.inside = not text.startswith(SINGLE_LINE)
        elif self.inside and CONTINUATION.match(text):
            self.captured.append(line)
        else:
            self.inside = False
            os.write(self.terminal, line)

    def __exit__(self, *exc) -> None:
        """Drains the pipe here, in the main thread, so a last line (the error that ended the
        command) reaches the terminal however late the busy machine schedules the reader."""
        sys.stderr.flush()
        os.dup2(self.terminal, 2)
        self.stopping.set()
        self.thread.join(timeout=30)
        if not self.thread.is_alive():
            deadline = time.monotonic() + 5  # a child still holding the pipe may write on
            while time.monotonic() < deadline and select.select([self.reader], [], [], 0)[0] and self._read():
                pass
            if self.pending:
                self._route(self.pending)
            os.close(self.reader)
        os.close(self.terminal)

    def save(self, folder: str | None) -> Path | None:
        """Writes the captured lines beside a run (appending on resume), else to the temp folder."""
        if not self.captured:
            return None
        here = Path(folder) if folder and (Path(folder) / "config.json").is_file() else None
        path = here / "third_party.log" if here else Path(tempfile.gettempdir()) / (
            f"atari-distill-third-party-{time.strftime('%Y%m%d-%H%M%S')}.log")
        with open(path, "ab") as log:
            log.writelines(self.captured)
        return path
