"""How much history the event store keeps: :class:`RetentionPolicy` and the deletions
that apply it."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from shopsearch.errors import InvalidQueryError

__all__ = ["RetentionPolicy", "delete_expired"]

_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How much history :meth:`EventStore.prune` keeps.

    ``max_age_days``: drop events older than this, relative to the ``now`` given to
    :meth:`~EventStore.prune` (by default the newest stored event, so replaying an old log
    gives the same result whenever it runs). ``max_events``: then keep only the newest this
    many events. ``None`` disables a limit.

    >>> RetentionPolicy(max_age_days=90).max_events is None
    True
    """

    max_age_days: float | None = None
    max_events: int | None = None

    def __post_init__(self) -> None:
        if self.max_age_days is not None and not (
            isinstance(self.max_age_days, int | float)
            and math.isfinite(self.max_age_days)
            and self.max_age_days >= 0
        ):
            raise InvalidQueryError(
                f"max_age_days must be a number >= 0, not {self.max_age_days!r}"
            )
        if self.max_events is not None and not (
            isinstance(self.max_events, int)
            and not isinstance(self.max_events, bool)
            and self.max_events >= 0
        ):
            raise InvalidQueryError(f"max_events must be an integer >= 0, not {self.max_events!r}")


def delete_expired(db: sqlite3.Connection, policy: RetentionPolicy, now: float | None) -> int:
    """Delete what ``policy`` does not keep, inside the caller's transaction; return the
    number of events deleted (see :meth:`EventStore.prune
    <shopsearch.events.store.EventStore.prune>`)."""
    if now is None:
        newest = db.execute("SELECT MAX(timestamp) FROM events").fetchone()[0]
        if newest is None:
            newest = db.execute("SELECT MAX(timestamp) FROM queries").fetchone()[0]
        if newest is None:
            return 0
        now = float(newest)
    deleted = 0
    query_cutoff: float | None = None
    if policy.max_age_days is not None:
        query_cutoff = now - policy.max_age_days * _SECONDS_PER_DAY
        deleted += db.execute("DELETE FROM events WHERE timestamp < ?", (query_cutoff,)).rowcount
    if policy.max_events is not None:
        if policy.max_events == 0:
            oldest_kept = None
            trimmed = db.execute("DELETE FROM events").rowcount
            if trimmed:
                query_cutoff = math.inf
        else:
            oldest_kept = db.execute(
                "SELECT timestamp, event_id FROM events "
                "ORDER BY timestamp DESC, event_id DESC LIMIT 1 OFFSET ?",
                (policy.max_events - 1,),
            ).fetchone()
            trimmed = 0
            if oldest_kept is not None:
                trimmed = db.execute(
                    "DELETE FROM events WHERE timestamp < ? OR (timestamp = ? AND event_id < ?)",
                    (oldest_kept[0], oldest_kept[0], oldest_kept[1]),
                ).rowcount
            if trimmed:
                query_cutoff = max(query_cutoff or -math.inf, oldest_kept[0])
        deleted += trimmed
    queries_deleted = 0
    if query_cutoff is not None:
        cutoff = query_cutoff if math.isfinite(query_cutoff) else 1e300
        queries_deleted = db.execute(
            "DELETE FROM queries WHERE timestamp < ? "
            "AND query_id NOT IN (SELECT query_id FROM events)",
            (cutoff,),
        ).rowcount
    if deleted or queries_deleted:
        db.execute(
            "INSERT INTO counters (name, value) VALUES ('deletions', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1"
        )
    return deleted
