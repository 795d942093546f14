"""Every error shopsearch raises on purpose derives from :class:`ShopSearchError`.

::

    ShopSearchError
    ├── CatalogError            a catalog file cannot be read at all
    │   └── BadRowError         one row is unusable (carries file and line)
    ├── IndexNotFoundError      no index at the given directory
    ├── IndexLockedError        another process is writing the index
    ├── ModelLoadError          an encoder or model cannot be loaded
    ├── InvalidQueryError       a query, filter or option is malformed
    ├── JudgmentsError          an evaluation judgments file is malformed
    ├── EventRecordError        a user-behaviour event record (or events file) is unusable
    ├── NativeLibraryError      native libraries were loaded in an order that would crash
    └── MissingDependencyError  an optional extra is not installed

Warnings we emit derive from :class:`ShopSearchWarning`.
"""

from __future__ import annotations


class ShopSearchError(Exception):
    """Base class of all shopsearch errors."""


class CatalogError(ShopSearchError):
    """A catalog file cannot be read (missing, unknown format, unreadable)."""


class BadRowError(CatalogError):
    """One catalog row is unusable; ``location`` says where (``file:line``)."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        line: int | None = None,
        product_id: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.product_id = product_id
        super().__init__(f"{self.location}: {message}" if self.location else message)

    @property
    def location(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}"


class IndexNotFoundError(ShopSearchError):
    """No shopsearch index exists at the given directory."""


class IndexLockedError(ShopSearchError):
    """Another process holds the index's writer lock."""


class ModelLoadError(ShopSearchError):
    """An encoder or model cannot be loaded."""


class InvalidQueryError(ShopSearchError):
    """A query, filter or search option is malformed."""


class JudgmentsError(ShopSearchError):
    """A judgments file is malformed; the message names file and line."""


class EventRecordError(ShopSearchError):
    """A user-behaviour event record is unusable, or an events file cannot be read.

    ``location`` says where (``file:line`` for a record, the file for a whole file) and
    ``reason`` says why; the message is ``"{location}: {reason}"``.

    >>> str(EventRecordError("events.jsonl:3", "missing required field 'query_id'"))
    "events.jsonl:3: missing required field 'query_id'"
    """

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{location}: {reason}" if location else reason)

    def __reduce__(self) -> tuple[type[EventRecordError], tuple[str, str]]:
        return (type(self), (self.location, self.reason))


class NativeLibraryError(ShopSearchError):
    """Native libraries were loaded in an order that would crash the process (see
    :mod:`shopsearch.native`)."""


class MissingDependencyError(ShopSearchError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is required for this feature: pip install 'shopsearch[{extra}]'"
        )


class ShopSearchWarning(UserWarning):
    """Base class of warnings emitted by shopsearch."""
