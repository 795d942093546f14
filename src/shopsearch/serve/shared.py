"""What the worker processes of one server share: a directory the parent creates.

::

    SHARED/
      reload        the reload marker: each reload request appends a line
      rate-limits   the token buckets of every key (:class:`SharedRateLimiter`)
      client-limits the buckets of public keys' clients (:class:`ClientRateLimiter`)
      metrics/      prometheus_client's multi-process files (PROMETHEUS_MULTIPROC_DIR)

A worker learns whether it missed a reload (``POST /v1/admin/reload`` answered by another
worker, or SIGHUP to the parent) with one ``os.stat`` of the marker: its size only grows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReloadMarker", "SharedDir"]


class ReloadMarker:
    """A file whose size counts the reloads requested (one ``os.stat`` reads it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def request(self) -> int:
        """Ask every process watching the marker to reload; the new count."""
        with open(self.path, "a", encoding="utf-8") as handle:  # O_APPEND: atomic, grows
            handle.write(f"{os.getpid()} {time.time():.6f}\n")
        return self.count()

    def count(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0


@dataclass(frozen=True)
class SharedDir:
    """The shared directory of a multi-process server (see the module docstring)."""

    path: Path

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> SharedDir:
        shared = cls(Path(path))
        shared.metrics.mkdir(parents=True, exist_ok=True)
        return shared

    @property
    def reload_marker(self) -> ReloadMarker:
        return ReloadMarker(self.path / "reload")

    @property
    def rate_limits(self) -> Path:
        return self.path / "rate-limits"

    @property
    def client_limits(self) -> Path:
        return self.path / "client-limits"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics"
