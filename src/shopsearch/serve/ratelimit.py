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

:class:`ClientRateLimiter` limits the clients of a public key (the storefront's, which any
browser can read) beneath the key's own limit, so that one client in a loop cannot spend
everybody's allowance: a bucket per client (address + shopper id) and one per address
(whatever shopper ids it invents), in a fixed-size table (shared by the workers the same
way) where idle buckets make room for new ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClientRateLimiter", "Limit", "RateLimiter", "SharedRateLimiter"]


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


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per second sustained, bursts of ``burst``."""

    rate: float
    burst: int


class ClientRateLimiter:
    """Per-client buckets in a table of ``slots`` entries: in the file ``path`` (shared by
    every process that opens it, under ``flock``), or in this process's memory (``None``).

    >>> limiter = ClientRateLimiter(None, slots=64)
    >>> client, address = Limit(1.0, 2), Limit(10.0, 3)
    >>> [limiter.acquire("10.0.0.1", "u1", client, address, now=0.0)[0] for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> limiter.acquire("10.0.0.1", "u2", client, address, now=0.0)  # the address's last token
    (0.0, '')
    >>> wait, bucket = limiter.acquire("10.0.0.1", "u3", client, address, now=0.0)
    >>> round(wait, 3), bucket
    (0.1, 'address')

    Each bucket is one number, its "theoretical arrival time" (the generic cell rate
    algorithm, equivalent to a token bucket): the time when it will be full again. A bucket
    that is full (that time is past) is the same as a new one, so its slot may be given to
    another client without changing anybody's limit; when every slot on a client's probe
    path is busy, the one closest to full is reused. An address cannot create client
    buckets faster than its own limit, so the table holds the busy clients of many addresses.
    """

    PROBES = 16
    _SLOT = struct.Struct("<Qd")  # key hash (0: empty), theoretical arrival time

    def __init__(self, path: str | os.PathLike[str] | None, slots: int = 65_536) -> None:
        self.slots = slots
        size = slots * self._SLOT.size
        self._fd: int | None = None
        if path is None:
            self._map = mmap.mmap(-1, size)
        else:
            self._fd = os.open(Path(path), os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
            self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()

    def acquire(
        self,
        address: str,
        shopper: str,
        client: Limit,
        per_address: Limit,
        *,
        now: float | None = None,
    ) -> tuple[float, str]:
        """Take one request for ``shopper`` at ``address``: ``(0.0, "")`` if allowed, else
        the seconds to wait and which bucket refused (``"client"`` or ``"address"``).

        The address's bucket is checked first, without taking from it; a request the
        client's own bucket refuses takes nothing from the address's, so a client in a loop
        does not spend the allowance of other shoppers behind the same address.
        """
        now = time.monotonic() if now is None else now
        with self._locked():
            a_slot, a_key, a_tat = self._find(_hash("a\0" + address), now)
            a_wait = _gcra_wait(a_tat, now, per_address)
            if a_wait > 0:
                return a_wait, "address"
            c_slot, c_key, c_tat = self._find(_hash(f"c\0{address}\0{shopper}"), now)
            c_wait = _gcra_wait(c_tat, now, client)
            if c_wait > 0:
                return c_wait, "client"
            self._store(c_slot, c_key, max(c_tat, now) + 1.0 / client.rate)
            if c_slot == a_slot:  # the client's claim took the address's slot: re-find
                a_slot, a_key, a_tat = self._find(a_key, now)
            self._store(a_slot, a_key, max(a_tat, now) + 1.0 / per_address.rate)
            return 0.0, ""

    def _find(self, key: int, now: float) -> tuple[int, int, float]:
        """``(slot, key, tat)`` of ``key``'s bucket: its own slot, else an empty one on its
        probe path, else the one there that is full (or closest to full) soonest."""
        best, best_tat = -1, float("inf")
        for i in range(self.PROBES):
            slot = (key + i) % self.slots
            stored, tat = self._SLOT.unpack_from(self._map, slot * self._SLOT.size)
            if stored == key:
                return slot, key, tat
            if stored == 0:
                tat = -float("inf")
            if tat < best_tat:
                best, best_tat = slot, tat
        return best, key, now  # a new bucket: full

    def _store(self, slot: int, key: int, tat: float) -> None:
        self._SLOT.pack_into(self._map, slot * self._SLOT.size, key, tat)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._fd is None:
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)


def _gcra_wait(tat: float, now: float, limit: Limit) -> float:
    """Seconds until a bucket whose theoretical arrival time is ``tat`` allows a request."""
    tolerance = (limit.burst - 1) / limit.rate
    wait = max(tat, now) - now - tolerance
    return wait if wait > 1e-9 else 0.0  # (sums of 1/rate carry rounding errors)
