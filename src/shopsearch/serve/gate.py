"""A concurrency cap for CPU-bound routes, with load shedding.

Searches are CPU-bound Python: with the GIL, a process gains nothing from running more than
a couple at once, and dozens of threads contending for it slow every one of them down (and
queues never drain). :class:`Gate` runs at most ``concurrency`` calls at once on worker
threads; when ``max_queued`` more are already waiting, a new call is refused at once with
503 ``overloaded`` and ``Retry-After``, instead of waiting in a queue that only grows.

>>> gate = Gate(concurrency=2, max_queued=64)
>>> result = await gate.run(pipeline.search, "ugg slippers")      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from shopsearch.serve.errors import ApiError

__all__ = ["Gate"]

T = TypeVar("T")


class Gate:
    """At most ``concurrency`` calls at once, at most ``max_queued`` waiting (per process;
    used from one event loop)."""

    def __init__(self, concurrency: int, max_queued: int, *, retry_after_s: int = 1) -> None:
        self.concurrency = concurrency
        self.max_queued = max_queued
        self.retry_after_s = retry_after_s
        self.inside = 0  # running or waiting
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def waiting(self) -> int:
        return max(0, self.inside - self.concurrency)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on a worker thread, once a slot is free; raises
        :class:`ApiError` 503 when too many calls are waiting already."""
        if self.inside >= self.concurrency + self.max_queued:
            raise ApiError(
                503,
                "overloaded",
                f"the server is overloaded ({self.waiting} requests waiting): retry later",
                type="api_error",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        if self._limiter is None:  # created in the event loop
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        self.inside += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
        finally:
            self.inside -= 1
