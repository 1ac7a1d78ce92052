"""The root handler writes access lines in batches (rest_bridge.batched_handler): within
FLUSH_SECONDS on a running loop, at once without one, before any other record, and at flush."""

from __future__ import annotations

import asyncio
import io
import logging

from rest_bridge import batched_handler
from rest_bridge.batched_handler import BatchedStreamHandler


class CountingStream(io.StringIO):
    """A stream that counts its writes (each one a system call on a real stderr)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_on_a_loop_go_out_together_within_the_flush_time() -> None:
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)

    async def scenario() -> tuple[str, str]:
        for i in range(3):
            handler.write_soon(f"line {i}\n")
        held = stream.getvalue()
        await asyncio.sleep(batched_handler.FLUSH_SECONDS + 0.05)
        return held, stream.getvalue()

    held, written = asyncio.run(scenario())
    assert held == ""
    assert written == "line 0\nline 1\nline 2\n"
    assert stream.writes == 1


def test_another_record_is_written_after_the_lines_before_it() -> None:
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "an error", None, None)

    async def scenario() -> str:
        handler.write_soon("access\n")
        handler.handle(record)
        return stream.getvalue()

    assert asyncio.run(scenario()) == "access\nan error\n"


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    stream = CountingStream()
    BatchedStreamHandler(stream).write_soon("now\n")
    assert stream.getvalue() == "now\n"


def test_many_lines_are_written_before_the_timer_once_they_fill_the_buffer() -> None:
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)
    line = "x" * 1023 + "\n"

    async def scenario() -> int:
        for _ in range(batched_handler.MAX_PENDING // len(line)):
            handler.write_soon(line)
        return len(stream.getvalue())

    assert asyncio.run(scenario()) == batched_handler.MAX_PENDING
    assert stream.writes == 1


def test_flush_writes_what_waits() -> None:
    """What logging.shutdown does at exit: flush every handler."""
    stream = CountingStream()
    handler = BatchedStreamHandler(stream)

    async def scenario() -> None:
        handler.write_soon("last\n")
        handler.flush()

    asyncio.run(scenario())
    assert stream.getvalue() == "last\n"
