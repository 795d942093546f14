"""Catalog ingestion: read JSONL, CSV and Parquet files into :class:`Product` records.

A catalog is a file of rows; each row is a mapping from field names to values. Rows are
normalised to the canonical :class:`~shopsearch.catalog.schema.Product` by
:func:`normalize_row` (field aliases, type coercion, size limits). A bad row never stops a
load: :func:`load_catalog` collects it as a :class:`RowProblem` with its file and line, unless
``strict=True``.

>>> report = load_catalog("products.jsonl.gz")            # doctest: +SKIP
>>> report.ok, report.failed                                # doctest: +SKIP
(6764, 0)

Supported formats, by file suffix: ``.jsonl``/``.ndjson`` (optionally ``.gz``),
``.json.gz``, ``.csv`` (optionally ``.gz``) and ``.parquet`` (needs the ``parquet`` extra).
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import json
import math
import numbers
import os
import re
import reprlib
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

from shopsearch.catalog.schema import Product
from shopsearch.errors import BadRowError, CatalogError, MissingDependencyError
from shopsearch.ids import id_problem

__all__ = [
    "DEFAULT_ALIASES",
    "MAX_PRICE",
    "LoadLimits",
    "LoadReport",
    "RowProblem",
    "iter_catalog",
    "load_catalog",
    "normalize_row",
]

DEFAULT_ALIASES: dict[str, str] = {
    "asin": "id",
    "product_id": "id",
    "sku": "id",
    "name": "title",
    "product_title": "title",
    "product_description": "description",
    "product_bullet_point": "bullet_points",
    "product_brand": "brand",
    "product_color": "color",
    "categories": "category",
    "stars": "rating",
    "average_rating": "rating",
    "num_ratings": "rating_count",
    "review_count": "rating_count",
    "image_url": "image",
}
"""Source field name -> canonical :class:`Product` field (names compared lower-cased)."""


@dataclass(frozen=True)
class LoadLimits:
    """Size limits that keep one hostile or broken row from exhausting memory.

    >>> LoadLimits(max_title_chars=200).max_title_chars
    200
    """

    max_row_bytes: int = 1_000_000
    max_id_chars: int = 256
    max_title_chars: int = 1_000
    max_short_field_chars: int = 1_000  # brand, color, each category level, image
    max_text_chars: int = 100_000  # description, bullet_points
    max_category_levels: int = 20


_DEFAULT_LIMITS = LoadLimits()


@dataclass(frozen=True)
class RowProblem:
    """One row that could not be loaded, and why.

    >>> RowProblem("products.jsonl", 7, "missing required field 'id'").location
    'products.jsonl:7'
    """

    source: str
    line: int | None
    reason: str
    product_id: str | None = None

    @property
    def location(self) -> str:
        """``file:line``, or just ``file`` when the line is unknown."""
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass
class LoadReport:
    """What :func:`load_catalog` read: the products, the problems and the row count.

    >>> LoadReport(products=[], problems=[], rows_read=0).ok
    0
    """

    products: list[Product]
    problems: list[RowProblem]
    rows_read: int

    @property
    def ok(self) -> int:
        """Number of products loaded."""
        return len(self.products)

    @property
    def failed(self) -> int:
        """Number of rows rejected (bad rows and duplicate ids)."""
        return len(self.problems)


# --------------------------------------------------------------------------- public API


def normalize_row(
    raw: Mapping[str, Any],
    *,
    aliases: Mapping[str, str] | None = None,
    limits: LoadLimits = _DEFAULT_LIMITS,
    json_types: bool = False,
) -> Product:
    """Turn one source row into a :class:`Product`.

    Raises :class:`BadRowError` (without a location; callers add it) when the row is
    unusable. When the id could be read, the error has a ``product_id`` attribute.

    ``json_types``: the row is a JSON object from an API client, whose fields must already
    have their JSON types (a price is a number, not ``"9.99"``; a title is a string, not
    ``12``): nothing is converted. Files keep the lenient reading (a CSV cell is always
    text), and both share every other check (bounds, ids, sizes).

    >>> normalize_row({"asin": "B01", "title": " Mug ", "price": "$4.50"}).price
    4.5
    >>> normalize_row({"id": "B01", "title": "Mug", "price": "4.50"}, json_types=True)
    Traceback (most recent call last):
    ...
    shopsearch.errors.BadRowError: price must be a JSON number, got str '4.50'
    """
    return _normalize(raw, _FieldMap(aliases), limits, json_types)


def iter_catalog(
    path: str | os.PathLike[str],
    *,
    aliases: Mapping[str, str] | None = None,
    limits: LoadLimits = _DEFAULT_LIMITS,
) -> Iterator[tuple[int, Product | BadRowError]]:
    """Yield ``(line, product_or_error)`` for every row of a catalog file.

    A bad row is yielded as a :class:`BadRowError` carrying ``source`` and ``line``; it is
    never raised. :class:`CatalogError` is raised (here for a missing file or unknown format,
    during iteration for an unreadable one) only when the file itself cannot be read. Line
    numbers are 1-based physical lines for JSONL/CSV and 1-based row numbers for Parquet.
    """
    p = Path(path)
    fmt, gz = _detect_format(p)
    if not p.exists():
        raise CatalogError(f"catalog file not found: {p}")
    if not p.is_file():
        raise CatalogError(f"catalog path is not a file: {p}")
    field_map = _FieldMap(aliases)
    source = str(path)
    if fmt == "jsonl":
        return _iter_jsonl(p, source, gz, field_map, limits)
    if fmt == "csv":
        return _iter_csv(p, source, gz, field_map, limits)
    return _iter_parquet(p, source, _import_parquet(), field_map, limits)


def load_catalog(
    path: str | os.PathLike[str],
    *,
    aliases: Mapping[str, str] | None = None,
    limits: LoadLimits | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Load a whole catalog file, collecting bad rows instead of failing.

    Duplicate ids: the first occurrence wins; later ones become problems. With
    ``strict=True`` the first bad row (or duplicate) is raised as a :class:`BadRowError`.
    ``progress(n)`` is called with the number of rows processed every 1,000 rows and at the
    end.

    >>> report = load_catalog("catalog.csv")                  # doctest: +SKIP
    >>> for problem in report.problems:                        # doctest: +SKIP
    ...     print(problem.location, problem.reason)
    """
    limits = limits or _DEFAULT_LIMITS
    products: list[Product] = []
    problems: list[RowProblem] = []
    first_seen: dict[str, int] = {}
    unit = "row" if _detect_format(Path(path))[0] == "parquet" else "line"
    n = 0
    items = iter_catalog(path, aliases=aliases, limits=limits)
    try:
        for line, item in items:
            n += 1
            if isinstance(item, BadRowError):
                if strict:
                    raise item
                product_id = getattr(item, "product_id", None)
                problems.append(RowProblem(item.source, item.line, item.reason, product_id))
            elif item.id in first_seen:
                reason = f"duplicate id {item.id!r} (first seen at {unit} {first_seen[item.id]})"
                if strict:
                    error = BadRowError(reason, source=str(path), line=line)
                    error.product_id = item.id
                    raise error
                problems.append(RowProblem(str(path), line, reason, item.id))
            else:
                first_seen[item.id] = line
                products.append(item)
            if progress is not None and n % 1_000 == 0:
                progress(n)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()  # release the file at once when strict mode stops early
    if progress is not None and (n == 0 or n % 1_000 != 0):
        progress(n)
    return LoadReport(products=products, problems=problems, rows_read=n)


# --------------------------------------------------------------------------- formats

_FORMATS: dict[str, tuple[str, bool]] = {
    ".jsonl": ("jsonl", False),
    ".ndjson": ("jsonl", False),
    ".jsonl.gz": ("jsonl", True),
    ".ndjson.gz": ("jsonl", True),
    ".json.gz": ("jsonl", True),
    ".csv": ("csv", False),
    ".csv.gz": ("csv", True),
    ".parquet": ("parquet", False),
}
_BOM = b"\xef\xbb\xbf"
_SKIP_CHUNK = 1 << 16


def _detect_format(path: Path) -> tuple[str, bool]:
    name = path.name.lower()
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    known = ", ".join(_FORMATS)
    raise CatalogError(f"unknown catalog format for {path} (expected one of: {known})")


def _import_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet") from None
    return pq


def _open_binary(path: Path, gz: bool) -> IO[bytes]:
    try:
        return cast(IO[bytes], gzip.open(path, "rb") if gz else open(path, "rb"))
    except OSError as exc:
        raise CatalogError(f"cannot open catalog {path}: {exc}") from exc


def _readline(f: IO[bytes], size: int, source: str) -> bytes:
    try:
        return f.readline(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise CatalogError(f"cannot read catalog {source}: {exc}") from exc


def _numbered_lines(
    f: IO[bytes], limits: LoadLimits, source: str
) -> Iterator[tuple[int, bytes, int]]:
    """``(1-based physical line number, bytes, oversize)`` per line, BOM stripped from line 1;
    ``oversize`` is the size of a line that was too big (its bytes are then empty)."""
    lineno = 0
    while True:
        raw, oversize = _read_bounded_line(f, limits, source)
        if not raw and not oversize:
            return
        lineno += 1
        yield lineno, (raw.removeprefix(_BOM) if lineno == 1 else raw), oversize


def _read_bounded_line(f: IO[bytes], limits: LoadLimits, source: str) -> tuple[bytes, int]:
    """Read one physical line; if it is too long, skip the rest and return its size.

    Returns ``(line, 0)`` for a normal line, ``(b"", size)`` for an over-long one and
    ``(b"", 0)`` at end of file.
    """
    line = _readline(f, limits.max_row_bytes + 1, source)
    if len(line) <= limits.max_row_bytes or line.endswith(b"\n"):
        return line, 0
    size = len(line)
    while True:  # skip the rest of the line in bounded chunks
        chunk = _readline(f, _SKIP_CHUNK, source)
        size += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            break
    return b"", size - (1 if chunk.endswith(b"\n") else 0)


def _too_big(size: int, limits: LoadLimits) -> str:
    return f"row is larger than {limits.max_row_bytes:,} bytes ({size:,} bytes)"


def _located(error: BadRowError, source: str, line: int) -> BadRowError:
    located = BadRowError(error.reason, source=source, line=line)
    product_id = getattr(error, "product_id", None)
    if product_id is not None:
        located.product_id = product_id
    return located


def _normalize_at(
    row: Mapping[str, Any], field_map: _FieldMap, limits: LoadLimits, source: str, line: int
) -> Product | BadRowError:
    """The product for ``row``, or its error located at ``source:line``."""
    try:
        return _normalize(row, field_map, limits)
    except BadRowError as error:
        return _located(error, source, line)


def _iter_jsonl(
    path: Path, source: str, gz: bool, field_map: _FieldMap, limits: LoadLimits
) -> Iterator[tuple[int, Product | BadRowError]]:
    with _open_binary(path, gz) as f:
        for lineno, raw, oversize in _numbered_lines(f, limits, source):
            if oversize:
                yield lineno, BadRowError(_too_big(oversize, limits), source=source, line=lineno)
                continue
            if not raw.strip():
                continue
            try:
                row = _parse_json_row(raw)
            except BadRowError as error:
                yield lineno, _located(error, source, lineno)
                continue
            yield lineno, _normalize_at(row, field_map, limits, source, lineno)


_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _parse_json_row(raw: bytes) -> Mapping[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRowError(f"invalid UTF-8 at byte {exc.start + 1}: {exc.reason}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRowError(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. too many digits, too deeply nested
        raise BadRowError(f"malformed JSON: {exc or type(exc).__name__}") from None
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "a number")
        raise BadRowError(f"row is {kind}, not a JSON object")
    return value


def _iter_csv(
    path: Path, source: str, gz: bool, field_map: _FieldMap, limits: LoadLimits
) -> Iterator[tuple[int, Product | BadRowError]]:
    csv.field_size_limit(max(csv.field_size_limit(), min(limits.max_row_bytes, 2**31 - 1)))
    with _open_binary(path, gz) as f:
        pending: list[tuple[int, str]] = []  # line-level problems found by _csv_lines
        reader = csv.reader(_csv_lines(f, source, limits, pending))
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if header is None:
                    raise CatalogError(f"cannot read CSV header of {source}: {exc}") from exc
                yield start, BadRowError(f"malformed CSV: {exc}", source=source, line=start)
                continue
            if pending:
                if header is None:
                    line, reason = pending[0]
                    raise CatalogError(f"cannot read CSV header of {source}:{line}: {reason}")
                for line, reason in pending:
                    yield line, BadRowError(reason, source=source, line=line)
                pending.clear()
            if not any(cell.strip() for cell in row):
                continue  # blank line or a row of empty cells
            if header is None:
                header = [name.strip() for name in row]
                dupes = sorted({n for n in header if n and header.count(n) > 1})
                if dupes:
                    raise CatalogError(f"duplicate column {dupes[0]!r} in CSV header of {source}")
                continue
            if len(row) != len(header):
                reason = f"row has {len(row)} fields, header has {len(header)}"
                yield start, BadRowError(reason, source=source, line=start)
                continue
            size = sum(len(cell) for cell in row)
            if size > limits.max_row_bytes:
                yield start, BadRowError(_too_big(size, limits), source=source, line=start)
                continue
            record = {name: (cell or None) for name, cell in zip(header, row, strict=True) if name}
            yield start, _normalize_at(record, field_map, limits, source, start)


def _csv_lines(
    f: IO[bytes], source: str, limits: LoadLimits, pending: list[tuple[int, str]]
) -> Iterator[str]:
    """Decoded physical lines for ``csv.reader``, bounded in size.

    An over-long or undecodable line is replaced by an empty line and its problem is put in
    ``pending``, so that line numbering stays physical and reading goes on.
    """
    for lineno, raw, oversize in _numbered_lines(f, limits, source):
        if oversize:
            pending.append((lineno, _too_big(oversize, limits)))
            yield "\n"
            continue
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            pending.append((lineno, f"invalid UTF-8 at byte {exc.start + 1}: {exc.reason}"))
            yield "\n"


def _iter_parquet(
    path: Path, source: str, pq: Any, field_map: _FieldMap, limits: LoadLimits
) -> Iterator[tuple[int, Product | BadRowError]]:
    import pyarrow as pa

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise CatalogError(f"cannot open Parquet catalog {source}: {exc}") from exc
    rowno = 0
    try:
        for batch in parquet.iter_batches(batch_size=1_024):
            for record in batch.to_pylist():
                rowno += 1
                size = _approx_size(record)
                if size > limits.max_row_bytes:
                    yield rowno, BadRowError(_too_big(size, limits), source=source, line=rowno)
                    continue
                yield rowno, _normalize_at(record, field_map, limits, source, rowno)
    except (OSError, pa.ArrowException) as exc:
        raise CatalogError(f"cannot read Parquet catalog {source}: {exc}") from exc
    finally:
        parquet.close()


def _approx_size(value: Any, depth: int = 0) -> int:
    """Rough in-memory size of a row in bytes (string lengths plus 8 per scalar)."""
    if isinstance(value, str | bytes):
        return len(value)
    if depth > _MAX_DEPTH:
        return 8
    if isinstance(value, Mapping):
        return sum(len(str(k)) + _approx_size(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_approx_size(v, depth + 1) for v in value)
    return 8


# --------------------------------------------------------------------------- normalisation

_CANONICAL = frozenset(f.name for f in fields(Product))
_MAX_DEPTH = 64
_MAX_COUNT = 2**63 - 1
#: The largest price a product may have (in any currency: 10**12 covers a car priced in
#: Vietnamese dong); a larger number is a unit or data error.
MAX_PRICE = 1e12

_SYMBOLS = "$¢£¤¥֏؋৲৳৻૱௹฿៛\u20a0-\u20c0﷼﹩＄￠￡￥￦"
_AMOUNT = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|[+-]?\.\d+(?:[eE][+-]?\d+)?"
_MONEY_RE = re.compile(
    rf"(?:[A-Z]{{3}}\s*|[A-Z]{{1,2}}(?=[{_SYMBOLS}]))?[{_SYMBOLS}]?\s*(?P<num>{_AMOUNT})"
    rf"\s*[{_SYMBOLS}]?(?:\s*[A-Z]{{3}})?"
)
_NUMBER_RE = re.compile(r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")
_COUNT_RE = re.compile(r"(?P<num>\+?(?:\d{1,3}(?:,\d{3})+|\d+))(?:\.0*)?")

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 4
_repr.maxlevel = 2


def _show(value: Any) -> str:
    """A short, safe repr of a value for error messages (about 40 characters)."""
    try:
        return _repr.repr(value)
    except (ValueError, RecursionError):  # e.g. an int with more than 4,300 digits
        return f"<{type(value).__name__}>"


class _FieldMap:
    """Resolves source field names to canonical fields, caching each distinct name."""

    def __init__(self, aliases: Mapping[str, str] | None) -> None:
        merged = {**DEFAULT_ALIASES, **(aliases or {})}
        self._aliases = {str(k).strip().lower(): str(v).strip() for k, v in merged.items()}
        self._cache: dict[str, tuple[str, str | None, bool]] = {}

    def resolve(self, key: Any) -> tuple[str, str | None, bool]:
        """``(name, canonical field or None, whether an alias was used)`` for a source key.

        ``name`` is the attribute name used when the value ends up in ``attributes``; it is
        empty for a blank key (such a field is dropped).
        """
        if type(key) is str:
            hit = self._cache.get(key)
            if hit is None:
                hit = self._resolve(key)
                if len(self._cache) < 10_000:
                    self._cache[key] = hit
            return hit
        return self._resolve(key)

    def _resolve(self, key: Any) -> tuple[str, str | None, bool]:
        name = str(key).strip()
        folded = name.lower()
        if folded in self._aliases:
            target = self._aliases[folded]
            if target.lower() in _CANONICAL:
                return name, target.lower(), folded != target.lower()
            return target, None, True  # an alias to a non-canonical name renames the attribute
        return name, (folded if folded in _CANONICAL else None), False


def _lone_surrogate(value: Any, path: str = "", depth: int = 0) -> str | None:
    """The path of the first string (value or key) in ``value`` not encodable as UTF-8."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "value"
        return None
    if depth > 64:
        return None  # deeper values are refused by the size and type checks
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = _lone_surrogate(key, where, depth + 1) or _lone_surrogate(
                item, where, depth + 1
            )
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def _normalize(
    raw: Mapping[str, Any], field_map: _FieldMap, limits: LoadLimits, json_types: bool = False
) -> Product:
    if not isinstance(raw, Mapping):
        raise BadRowError(f"row must be a mapping, got {type(raw).__name__}")
    bad = _lone_surrogate(raw)
    if bad is not None:  # e.g. a JSON escape like "\ud800": SQLite cannot store it
        raise BadRowError(f"field {bad!r} holds an invalid Unicode escape (lone surrogate)")
    canonical: dict[str, Any] = {}
    from_alias: dict[str, str] = {}  # canonical field -> source key it was taken from
    extras: dict[str, Any] = {}
    for key, value in raw.items():
        name, target, via_alias = field_map.resolve(key)
        if target is None:
            if name:
                extras[name] = value
        elif target not in canonical:
            canonical[target] = value
            if via_alias:
                from_alias[target] = name
        elif not via_alias and target in from_alias:
            # the canonical name itself beats an alias seen earlier in the row
            extras[from_alias.pop(target)] = canonical[target]
            canonical[target] = value
        else:
            extras[name] = value

    if json_types:
        _check_json_types(canonical)
    product_id = _parse_id(canonical.get("id"), limits)
    try:
        return _build(product_id, canonical, extras, limits)
    except BadRowError as error:
        error.product_id = product_id
        raise


def _build(
    product_id: str, row: dict[str, Any], extras: dict[str, Any], limits: LoadLimits
) -> Product:
    title = _text("title", row.get("title"), limits.max_title_chars)
    if not title:
        raise BadRowError(_missing("title", row.get("title")))
    attributes = {k: _jsonable(v, k) for k, v in extras.items()}
    attributes.update(_attributes(row.get("attributes")))
    return Product(
        id=product_id,
        title=title,
        description=_text("description", row.get("description"), limits.max_text_chars),
        bullet_points=_bullets(row.get("bullet_points"), limits),
        brand=_text("brand", row.get("brand"), limits.max_short_field_chars),
        color=_text("color", row.get("color"), limits.max_short_field_chars),
        price=_price(row.get("price")),
        category=_category(row.get("category"), limits),
        rating=_rating(row.get("rating")),
        rating_count=_count("rating_count", row.get("rating_count")),
        image=_text("image", row.get("image"), limits.max_short_field_chars),
        attributes=attributes,
    )


def _missing(name: str, value: Any) -> str:
    message = f"missing required field {name!r}"
    return message if value is None else f"{message} (value is empty)"


def _clean(text: str) -> str:
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.strip()


def _check_length(name: str, text: str, limit: int) -> str:
    if len(text) > limit:
        raise BadRowError(f"{name} is {len(text):,} characters, limit {limit:,}")
    return text


def _int_text(name: str, value: int) -> str:
    if value.bit_length() > 1_000:  # str() of a huge int is slow or refused
        raise BadRowError(f"{name} is an integer too large to use ({value.bit_length()} bits)")
    return str(value)


def _parse_id(value: Any, limits: LoadLimits) -> str:
    if value is None:
        raise BadRowError(_missing("id", value))
    if isinstance(value, str):
        text = _clean(value)
    elif isinstance(value, bool):
        raise BadRowError(f"id must be a string or an integer, got {_show(value)}")
    elif isinstance(value, numbers.Integral):
        text = _int_text("id", int(value))
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        text = _int_text("id", int(value))
    else:
        raise BadRowError(f"id must be a string or an integer, got {_show(value)}")
    if not text:
        raise BadRowError(_missing("id", value))
    _check_length("id", text, limits.max_id_chars)
    problem = id_problem(text, limits.max_id_chars)
    if problem is not None:
        raise BadRowError(f"id {problem}")
    return text


def _scalar_text(name: str, value: Any) -> str:
    """str, or a number converted with str(); anything else is an error."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return _int_text(name, int(value))
    if isinstance(value, float | Decimal) and math.isfinite(value):
        return str(value)
    raise BadRowError(f"{name} must be a string, got {type(value).__name__} {_show(value)}")


def _text(name: str, value: Any, limit: int) -> str:
    if value is None:
        return ""
    return _check_length(name, _scalar_text(name, value), limit)


def _bullets(value: Any, limits: LoadLimits) -> str:
    if isinstance(value, list | tuple):
        lines = [_scalar_text("bullet_points", item) for item in value if item is not None]
        text = "\n".join(line for line in lines if line)
        return _check_length("bullet_points", text, limits.max_text_chars)
    return _text("bullet_points", value, limits.max_text_chars)


def _category(value: Any, limits: LoadLimits) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        levels = [_clean(part) for part in value.split(">")]
    elif isinstance(value, list | tuple):
        levels = [_scalar_text("category level", item) for item in value if item is not None]
    else:
        raise BadRowError(
            f"category must be a list or an 'A > B' string, got {type(value).__name__} "
            f"{_show(value)}"
        )
    levels = [level for level in levels if level]
    if len(levels) > limits.max_category_levels:
        raise BadRowError(
            f"category has {len(levels):,} levels, limit {limits.max_category_levels:,}"
        )
    for i, level in enumerate(levels, start=1):
        _check_length(f"category level {i}", level, limits.max_short_field_chars)
    return tuple(levels)


def _number(name: str, value: Any, pattern: re.Pattern[str]) -> float | None:
    """A finite float from a number or a numeric string; None for None or ''."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = pattern.fullmatch(text)
        if match is None:
            raise BadRowError(f"{name} is not a number: {_show(value)}")
        number = float(match["num"].replace(",", ""))
    elif isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise BadRowError(f"{name} must be a number, got {type(value).__name__} {_show(value)}")
    else:
        try:
            number = float(value)
        except (OverflowError, ValueError):
            number = math.inf
    if not math.isfinite(number):
        raise BadRowError(f"{name} must be a finite number, got {_show(value)}")
    return number + 0.0  # -0.0 -> 0.0


def _price(value: Any) -> float | None:
    price = _number("price", value, _MONEY_RE)
    if price is not None and price < 0:
        raise BadRowError(f"price must not be negative, got {_show(value)}")
    if price is not None and price > MAX_PRICE:
        raise BadRowError(
            f"price must be at most {MAX_PRICE:,.0f}, got {_show(value)} (no product costs "
            "more in any currency; a larger number is a unit or data error, and it would "
            "swamp price facets and sorting)"
        )
    return price


#: The JSON types each canonical field accepts with ``json_types`` (lists: of strings).
_JSON_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "id": ((str,), "a string"),
    "title": ((str,), "a string"),
    "description": ((str,), "a string"),
    "brand": ((str,), "a string"),
    "color": ((str,), "a string"),
    "image": ((str,), "a string"),
    "bullet_points": ((str, list), "a string or a list of strings"),
    "category": ((str, list), "a list of strings or an 'A > B' string"),
    "price": ((int, float), "a JSON number"),
    "rating": ((int, float), "a JSON number"),
    "rating_count": ((int,), "a JSON integer"),
    "attributes": ((dict,), "a JSON object"),
}


def _check_json_types(row: Mapping[str, Any]) -> None:
    """Refuse a canonical field whose JSON type is not the field's (nulls are absent values;
    booleans are never numbers)."""
    for name, value in row.items():
        allowed, expected = _JSON_FIELD_TYPES.get(name, ((object,), ""))
        if value is None or (isinstance(value, allowed) and not isinstance(value, bool)):
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise BadRowError(f"{name} must be {expected}, got {_show(value)}")
            continue
        raise BadRowError(f"{name} must be {expected}, got {type(value).__name__} {_show(value)}")


def _rating(value: Any) -> float | None:
    rating = _number("rating", value, _NUMBER_RE)
    if rating is not None and not 0 <= rating <= 10:
        raise BadRowError(f"rating must be between 0 and 10, got {_show(value)}")
    return rating


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    count: int | None = None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        match = _COUNT_RE.fullmatch(text)
        if match is not None and len(match["num"]) <= 30:
            count = int(match["num"].replace(",", ""))
    elif isinstance(value, bool):
        pass
    elif isinstance(value, numbers.Integral):
        count = int(value)
    elif isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        count = int(value)
    if count is None:
        raise BadRowError(f"{name} must be a whole number, got {_show(value)}")
    if not 0 <= count <= _MAX_COUNT:
        raise BadRowError(f"{name} must be between 0 and {_MAX_COUNT:,}, got {_show(value)}")
    return count


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):  # e.g. a JSON object in a CSV cell
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise BadRowError(f"attributes must be a JSON object, got {_show(value)}") from None
    if not isinstance(value, Mapping):
        raise BadRowError(f"attributes must be an object, got {type(value).__name__}")
    return {str(k).strip(): _jsonable(v, str(k)) for k, v in value.items()}


def _jsonable(value: Any, name: str, depth: int = 0) -> Any:
    """``value`` as plain JSON data: strings cleaned, NaN -> None, dates as ISO strings."""
    if depth > _MAX_DEPTH:
        raise BadRowError(f"attribute {name!r} is nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real | Decimal):
        number = float(value) if math.isfinite(value) else math.nan
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, name, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, name, depth + 1) for v in value]
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
