"""Per-key token buckets: ``rate`` requests per second sustained, bursts of ``burst``.

>>> limiter = RateLimiter()
>>> limiter.acquire("k", rate=1.0, burst=2, now=0.0), limiter.acquire("k", 1.0, 2, now=0.0)
(0.0, 0.0)
>>> limiter.acquire("k", 1.0, 2, now=0.0)   # empty: retry in a second
1.0
"""

from __future__ import annotations

import threading
import time

__all__ = ["RateLimiter"]


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
            tokens = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / rate

    def forget(self, name: str) -> None:
        with self._lock:
            self._buckets.pop(name, None)
