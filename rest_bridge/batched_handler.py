"""The root log handler: every record written at once, access lines gathered and written together.

Each write to stderr is a system call: in the in-process server under load, the two access lines
of a REST request spent 7 % of the process's time in `write` alone (py-spy), more than making
them. So access lines (rest_bridge.access_lines) wait in memory and go out in one write
FLUSH_SECONDS after the first of them, as soon as MAX_PENDING characters wait, before any other
record (the order of lines is kept), and when logging shuts down at exit. A process killed by
SIGKILL loses at most its last FLUSH_SECONDS of access lines (nginx's buffered access_log makes
the same trade); every other record is written at once, as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TextIO

FLUSH_SECONDS = 0.05
MAX_PENDING = 64 * 1024
"""Characters of access lines held at most (about 200 lines) before they are written."""


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lock = self._locked()  # the handler's own: not looked up per line
        self._pending: list[str] = []
        self._size = 0

    def write_soon(self, line: str) -> None:
        """Queue line (terminator included), written within FLUSH_SECONDS by the running event
        loop; with no loop running in this thread it is written at once."""
        lock = self._lock
        lock.acquire()  # not `with`: it costs twice the two calls
        try:
            pending = self._pending
            pending.append(line)
            self._size += len(line)
            first, full = len(pending) == 1, self._size >= MAX_PENDING
        finally:
            lock.release()
        if full:
            self.flush()
        elif first:
            try:
                asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        with self._locked():
            self._write_pending()
            super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        with self._locked():  # an RLock: StreamHandler.handle holds it already
            self._write_pending()
            super().emit(record)

    def _locked(self) -> threading.RLock:
        if self.lock is None:  # pragma: no cover (Handler.__init__ always makes one)
            raise RuntimeError("a log handler without its lock")
        return self.lock

    def _write_pending(self) -> None:
        if self._pending:
            text, self._pending, self._size = "".join(self._pending), [], 0
            self.stream.write(text)
