"""Read UBI JSONL files (optionally gzipped) into records, line by line.

A bad line never stops a read: it is yielded as an :class:`EventProblem` with its file and
line. Lines are read with a size bound (the catalog loader's bounded reader), so one huge
line costs at most ``max_line_bytes`` of memory before it is skipped.

>>> for line, item in iter_records("events.jsonl"):          # doctest: +SKIP
...     if isinstance(item, EventProblem):
...         print(f"{item.location}: {item.reason}")
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from shopsearch.catalog.loaders import LoadLimits, _numbered_lines
from shopsearch.errors import CatalogError, EventRecordError
from shopsearch.events.schema import EventRecord, QueryRecord, parse_record

__all__ = ["DEFAULT_MAX_LINE_BYTES", "EventProblem", "iter_parsed", "iter_records"]

DEFAULT_MAX_LINE_BYTES = 65_536
"""Longest line accepted, in bytes without the newline."""

T = TypeVar("T")
_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


@dataclass(frozen=True)
class EventProblem:
    """One line that could not be read as a record, and why.

    >>> EventProblem("events.jsonl", 7, "missing required field 'query_id'").location
    'events.jsonl:7'
    """

    source: str
    line: int | None
    reason: str

    @property
    def location(self) -> str:
        """``file:line``, or just ``file`` when the line is unknown."""
        return self.source if self.line is None else f"{self.source}:{self.line}"

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


def iter_records(
    path: str | os.PathLike[str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[tuple[int, QueryRecord | EventRecord | EventProblem]]:
    """Yield ``(line, record_or_problem)`` for every non-blank line of a UBI JSONL file.

    Line numbers are 1-based physical lines. Files ending in ``.gz`` are decompressed. A file
    that cannot be opened raises :class:`~shopsearch.errors.EventRecordError` here; one that
    becomes unreadable midway (a truncated or corrupt ``.gz``) yields a final problem at the
    line where reading stopped.
    """
    return iter_parsed(path, parse_record, max_line_bytes=max_line_bytes)


def iter_parsed(
    path: str | os.PathLike[str],
    parse: Callable[[dict[str, Any], str], T],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[tuple[int, T | EventProblem]]:
    """:func:`iter_records` with another ``parse(obj, location)`` than
    :func:`~shopsearch.events.schema.parse_record` (raising its errors), e.g. one built on
    :func:`~shopsearch.events.schema.parse_values` for bulk ingestion."""
    if max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be >= 1, not {max_line_bytes}")
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise EventRecordError(source, "no such file")
    if not p.is_file():
        raise EventRecordError(source, "not a file")
    try:
        handle = cast(
            IO[bytes], gzip.open(p, "rb") if p.name.lower().endswith(".gz") else open(p, "rb")
        )
    except OSError as exc:
        raise EventRecordError(source, f"cannot open: {exc}") from exc
    return _iter(handle, source, max_line_bytes, parse)


def _iter(
    handle: IO[bytes], source: str, max_line_bytes: int, parse: Callable[[dict[str, Any], str], T]
) -> Iterator[tuple[int, T | EventProblem]]:
    limits = LoadLimits(max_row_bytes=max_line_bytes)
    loads = json.loads
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    lineno = 0
    with handle:
        try:
            for lineno, raw, oversize in _numbered_lines(handle, limits, source):
                if oversize:
                    reason = f"line is larger than {max_line_bytes:,} bytes ({oversize:,} bytes)"
                    yield lineno, EventProblem(source, lineno, reason)
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    reason = f"invalid UTF-8 at byte {exc.start + 1}: {exc.reason}"
                    yield lineno, EventProblem(source, lineno, reason)
                    continue
                try:
                    try:  # fast path: the C scanner, without json.loads's set-up
                        obj, end = scan(text, 0)
                    except StopIteration:
                        obj, end = loads(text), 0  # raises with json's message
                    if end != len(text) and not text[end:].isspace():
                        obj = loads(text)  # whitespace around the value, or trailing data
                except json.JSONDecodeError as exc:
                    if not text.strip():
                        continue  # a blank line
                    reason = f"malformed JSON: {exc.msg} (column {exc.colno})"
                    yield lineno, EventProblem(source, lineno, reason)
                    continue
                except (ValueError, RecursionError) as exc:  # too many digits, too deep
                    reason = f"malformed JSON: {exc or type(exc).__name__}"
                    yield lineno, EventProblem(source, lineno, reason)
                    continue
                if type(obj) is not dict:
                    kind = _KINDS.get(type(obj), "a number")
                    yield lineno, EventProblem(source, lineno, f"line is {kind}, not a JSON object")
                    continue
                item: T | EventProblem
                try:
                    item = parse(obj, f"{source}:{lineno}")
                except EventRecordError as exc:
                    item = EventProblem(source, lineno, exc.reason)
                yield lineno, item
        except CatalogError as exc:  # the bounded reader's read error (OSError, EOFError, zlib)
            cause = exc.__cause__ or exc
            reason = f"cannot read the rest of the file: {cause}"
            yield lineno + 1, EventProblem(source, lineno + 1, reason)
