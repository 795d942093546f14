"""Per-key token buckets: ``rate`` requests per second sustained, bursts of ``burst``.

>>> limiter = RateLimiter()
>>> limiter.acquire("k", rate=1.0, burst=2, now=0.0), limiter.acquire("k", 1.0, 2, now=0.0)
(0.0, 0.0)
>>> limiter.acquire("k", 1.0, 2, now=0.0)   # empty: retry in a second
1.0

:class:`SharedRateLimiter` keeps the same buckets in a small memory-mapped file, so that
the worker processes of one server (``serve --workers N``) share each key's limit exactly:
a client is limited the same whichever worker its connections reach. One ``acquire`` costs
a lock (``flock``) and a few bytes read and written (microseconds).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path

__all__ = ["RateLimiter", "SharedRateLimiter"]


def _take(tokens: float, last: float, now: float, rate: float, burst: int) -> tuple[float, float]:
    """``(tokens left, wait)``: take one token from a bucket last refilled at ``last``."""
    tokens = min(float(burst), tokens + max(0.0, now - last) * rate)
    if tokens >= 1.0:
        return tokens - 1.0, 0.0
    return tokens, (1.0 - tokens) / rate


class RateLimiter:
    """Token buckets by key name (in memory, per server process)."""

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, last refill time]
        self._lock = threading.Lock()

    def acquire(self, name: str, rate: float, burst: int, *, now: float | None = None) -> float:
        """Take one token: ``0.0`` if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = [float(burst), now]
            bucket[0], wait = _take(bucket[0], bucket[1], now, rate, burst)
            bucket[1] = now
            return wait

    def forget(self, name: str) -> None:
        with self._lock:
            self._buckets.pop(name, None)


class SharedRateLimiter:
    """Token buckets in the file ``path``, shared by every process that opens it.

    The file is a hash table of ``SLOTS`` buckets (key hash, tokens, last refill time on
    the machine-wide monotonic clock), each read and written under an exclusive ``flock``.
    Should the table ever fill up (``SLOTS`` distinct key names), further keys fall back to
    per-process buckets.
    """

    SLOTS = 4096
    _SLOT = struct.Struct("<Qdd")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        size = self.SLOTS * self._SLOT.size
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)  # zeros: empty slots (every process agrees on size)
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()  # flock excludes processes, not this one's threads
        self._slots: dict[str, tuple[int, int]] = {}  # name -> (slot, hash), found once
        self._local = RateLimiter()

    def acquire(self, name: str, rate: float, burst: int, *, now: float | None = None) -> float:
        """As :meth:`RateLimiter.acquire`, across processes."""
        now = time.monotonic() if now is None else now
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                found = self._slot(name)
                if found is None:
                    return self._local.acquire(name, rate, burst, now=now)
                slot, key = found
                offset = slot * self._SLOT.size
                stored, tokens, last = self._SLOT.unpack_from(self._map, offset)
                if stored == 0:  # a new bucket starts full
                    tokens, last = float(burst), now
                tokens, wait = _take(tokens, last, now, rate, burst)
                self._SLOT.pack_into(self._map, offset, key, tokens, max(now, last))
                return wait
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _slot(self, name: str) -> tuple[int, int] | None:
        """``(slot, hash)`` of ``name``'s bucket: its own, or the first empty slot on its
        probe path (claimed by the caller's write, under the lock)."""
        cached = self._slots.get(name)
        if cached is not None:
            return cached
        key = _hash(name)
        for i in range(self.SLOTS):
            slot = (key + i) % self.SLOTS
            found = self._SLOT.unpack_from(self._map, slot * self._SLOT.size)[0]
            if found == key:
                self._slots[name] = (slot, key)
                return slot, key
            if found == 0:
                return slot, key
        return None

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def _hash(name: str) -> int:
    """A non-zero 64-bit hash of a key name (zero marks an empty slot)."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1
