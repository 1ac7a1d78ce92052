"""Rate-limit buckets shared by the worker processes of one machine (`serve --workers N`).

Each worker is its own process, so buckets kept in memory would give a token N budgets. These
live in one memory-mapped file that every worker maps: a fixed table of slots, each holding the
hash of a token name, the calls left and when they were counted. One exclusive flock around
each read-refill-take-write makes the update atomic across processes (about a microsecond or
two of system calls). The clock is CLOCK_MONOTONIC, which all processes of a machine share.

A slot is found by linear probing from the name's hash; when the table is full the slot counted
longest ago is reused (it had the most time to refill, so its token loses the least).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import struct
import time
from collections.abc import Callable
from pathlib import Path

from server.ratelimit._local import refused, spend

SLOTS = 4096
"""Distinct token names the table holds at once; far more than a tokens file has."""
_SLOT = struct.Struct("<Qdd")  # name hash (0: free), calls left, stamp (monotonic seconds)
FILE_SIZE = SLOTS * _SLOT.size


def _key(name: str) -> int:
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1  # never 0, which marks a free slot


class SharedRateLimiter:
    """Allows rate calls per second per key with bursts up to burst, across processes."""

    def __init__(
        self, path: Path, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst = rate, max(burst, 1)
        self._clock = clock
        if not path.exists() or path.stat().st_size != FILE_SIZE:
            with path.open("ab") as file:
                fcntl.flock(file, fcntl.LOCK_EX)
                if file.tell() < FILE_SIZE:
                    file.truncate(FILE_SIZE)
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), FILE_SIZE)
        self._slots: dict[str, int] = {}
        """Slot index by name, as last found (checked again under the lock)."""

    async def acquire(self, key: str) -> None:
        """Take one call from key's bucket.

        Raises:
            RateLimited: the bucket is empty; retry_after says when one call is available.
        """
        self.take(key)

    def take(self, key: str) -> None:
        """acquire without a coroutine: the same bucket, the same errors."""
        if self.rate <= 0:
            return
        wanted = _key(key)
        fd = self._file.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = self._clock()
            slot = self._find(key, wanted)
            offset = slot * _SLOT.size
            stored, tokens, stamp = _SLOT.unpack_from(self._map, offset)
            if stored != wanted:
                tokens, stamp = float(self.burst), now
            tokens, allowed = spend(tokens, now - stamp, self.rate, self.burst)
            _SLOT.pack_into(self._map, offset, wanted, tokens, now)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        if not allowed:
            raise refused(self.rate, (1 - tokens) / self.rate)

    def _find(self, name: str, wanted: int) -> int:
        """The slot holding wanted, else a free one, else the stalest; under the lock."""
        cached = self._slots.get(name)
        if cached is not None and _SLOT.unpack_from(self._map, cached * _SLOT.size)[0] == wanted:
            return cached
        start = wanted % SLOTS
        stalest, stalest_stamp = start, float("inf")
        for step in range(SLOTS):
            slot = (start + step) % SLOTS
            stored, _, stamp = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if stored in (wanted, 0):
                self._slots[name] = slot
                return slot
            if stamp < stalest_stamp:
                stalest, stalest_stamp = slot, stamp
        self._slots[name] = stalest
        return stalest

    async def aclose(self) -> None:
        """Unmap the table (the file stays for the other workers)."""
        self._map.close()
        self._file.close()
