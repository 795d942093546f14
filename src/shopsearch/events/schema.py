"""User-behaviour records in the OpenSearch User Behavior Insights (UBI) format.

Two kinds of record, told apart by their fields:

* a **query record** has ``user_query`` and no ``action_name``: one search a user ran;
* an **event record** has ``action_name`` (``impression``, ``click``, ``add_to_cart`` or
  ``purchase``): what the user did with one product of that search's results.

>>> record = parse_record(
...     {
...         "action_name": "click",
...         "query_id": "q1",
...         "client_id": "u1",
...         "timestamp": "2026-11-28T10:00:00Z",
...         "event_attributes": {"object": {"object_id": "B01"}, "position": {"ordinal": 2}},
...     },
...     "events.jsonl:1",
... )
>>> record.object_id, record.position, record.timestamp
('B01', 2, 1795860000.0)

Fields the UBI schema allows but shopsearch does not use (``application``,
``query_response_id``, ``object_id_field``, ...) are kept in the record's ``extra`` dict, so
:func:`to_ubi` writes them back; they never make a record invalid. An event without an
``event_id`` gets a deterministic one (:func:`derive_event_id`), so ingesting the same line
twice stores it once.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from json.encoder import encode_basestring_ascii
from typing import Any, NoReturn

from shopsearch.errors import EventRecordError
from shopsearch.ids import MAX_ID_CHARS, id_problem

__all__ = [
    "ACTIONS",
    "EventRecord",
    "QueryRecord",
    "Record",
    "canonical_json",
    "compact_json",
    "derive_event_id",
    "format_timestamp",
    "parse_record",
    "parse_timestamp",
    "parse_values",
    "to_ubi",
]

ACTIONS = ("impression", "click", "add_to_cart", "purchase")
"""The event ``action_name`` values shopsearch accepts, from weakest to strongest signal."""

_ACTION_SET = frozenset(ACTIONS)
_sha256 = hashlib.sha256
_from_iso = _dt.datetime.fromisoformat
_QUERY_KEYS = frozenset(
    {"query_id", "client_id", "session_id", "user_query", "timestamp", "query_attributes"}
)
_EVENT_KEYS = frozenset(
    {
        "event_id",
        "action_name",
        "query_id",
        "client_id",
        "session_id",
        "timestamp",
        "event_attributes",
    }
)
# Epoch seconds of 9999-12-31T23:59:59Z: a larger number is most likely milliseconds.
_MAX_TIMESTAMP = 253_402_300_799.0
_JSON_KINDS = {
    list: "an array",
    dict: "an object",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One search: who ran it (``client_id``), when (epoch seconds) and with what filters.

    >>> QueryRecord("q1", "u1", None, "ugg slippers", 1795860000.0).filters
    {}
    """

    query_id: str
    client_id: str
    session_id: str | None
    user_query: str
    timestamp: float
    filters: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One user action on one product (``object_id``) shown for a query.

    ``position`` is the product's rank in the result list as the log gave it (0- or 1-based,
    stored as is), or ``None`` when unknown.

    >>> EventRecord("e1", "click", "q1", "u1", "s1", 1795860000.0, "B01", 3).action_name
    'click'
    """

    event_id: str
    action_name: str
    query_id: str
    client_id: str
    session_id: str | None
    timestamp: float
    object_id: str
    position: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Record = QueryRecord | EventRecord
"""Either kind of user-behaviour record."""


# --------------------------------------------------------------------------- parsing


def parse_record(obj: Mapping[str, Any], location: str = "") -> QueryRecord | EventRecord:
    """Validate one decoded UBI JSON object and turn it into a record.

    Raises :class:`~shopsearch.errors.EventRecordError` located at ``location`` (typically
    ``file:line``) when the object is neither kind of record or a field is missing or has the
    wrong type.

    >>> parse_record({"query_id": "q1", "client_id": "u1", "user_query": "mug",
    ...               "timestamp": 0, "application": "web"}).extra
    {'application': 'web'}
    >>> parse_record({"query_id": "q1"}, "log.jsonl:7")
    Traceback (most recent call last):
    ...
    shopsearch.errors.EventRecordError: log.jsonl:7: neither a query record (no 'user_query') \
nor an event record (no 'action_name')
    """
    is_event, values = parse_values(obj, location)
    return EventRecord(*values) if is_event else QueryRecord(*values)


def parse_values(obj: Mapping[str, Any], location: str = "") -> tuple[bool, tuple[Any, ...]]:
    """:func:`parse_record` without building the dataclass: ``(is_event, field values)``
    in the field order of :class:`EventRecord` or :class:`QueryRecord` (what bulk ingestion
    stores directly)."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise EventRecordError(location, f"record is {_kind(obj)}, not a JSON object")
    if "action_name" in obj:
        return True, _parse_event(obj, location)
    if "user_query" in obj:
        return False, _parse_query(obj, location)
    raise EventRecordError(
        location,
        "neither a query record (no 'user_query') nor an event record (no 'action_name')",
    )


def _parse_query(obj: Mapping[str, Any], location: str) -> tuple[Any, ...]:
    query_id = _required_id(obj, "query_id", location)
    client_id = _required_id(obj, "client_id", location)
    session_id = _optional_id(obj, "session_id", location)
    user_query = obj["user_query"]
    if type(user_query) is not str:
        raise EventRecordError(location, _wrong_type("user_query", user_query, "a string"))
    _check_unicode("user_query", user_query, location)
    timestamp = _timestamp(obj, location)
    extra = {k: v for k, v in obj.items() if k not in _QUERY_KEYS}
    filters: dict[str, Any] = {}
    attributes = obj.get("query_attributes")
    if attributes is not None:
        if type(attributes) is not dict:
            reason = _wrong_type("query_attributes", attributes, "an object")
            raise EventRecordError(location, reason)
        value = attributes.get("filters")
        if value is not None:
            if type(value) is not dict:
                reason = _wrong_type("query_attributes.filters", value, "an object")
                raise EventRecordError(location, reason)
            filters = value
        rest = {k: v for k, v in attributes.items() if k != "filters"}
        if rest:
            extra["query_attributes"] = rest
    return (query_id, client_id, session_id, user_query, timestamp, filters, extra)


def _parse_event(obj: Mapping[str, Any], location: str) -> tuple[Any, ...]:
    # The hot path of ingestion: common cases are checked inline, errors explained by helpers.
    get = obj.get
    action = obj["action_name"]
    if type(action) is not str or action not in _ACTION_SET:
        if type(action) is not str:
            raise EventRecordError(location, _wrong_type("action_name", action, "a string"))
        raise EventRecordError(
            location,
            f"unknown action_name {_show(action)} (expected one of {', '.join(ACTIONS)})",
        )
    query_id = get("query_id")
    if not _plain_id(query_id):
        query_id = _id_value("query_id", query_id, location)
    client_id = get("client_id")
    if not _plain_id(client_id):
        client_id = _id_value("client_id", client_id, location)
    session_id = get("session_id")
    if session_id is not None and not _plain_id(session_id):
        session_id = _id_value("session_id", session_id, location)
    value = get("timestamp")
    try:  # fast path: an ISO-8601 string with an offset
        parsed = _from_iso(value)  # type: ignore[arg-type]
        if parsed.tzinfo is None:
            raise ValueError
        timestamp = parsed.timestamp()
        if not 0.0 <= timestamp <= _MAX_TIMESTAMP:
            raise ValueError
    except (TypeError, ValueError):
        timestamp = _timestamp(obj, location)
    attributes: Any = get("event_attributes")
    target: Any = attributes.get("object") if type(attributes) is dict else None
    if type(target) is not dict:
        _bad_event_attributes(attributes, location)
    object_id = target.get("object_id")
    if not _plain_id(object_id):
        if type(object_id) is int:  # numeric catalog ids (not bool: type(True) is bool)
            object_id = str(object_id)
        else:
            object_id = _id_value("event_attributes.object.object_id", object_id, location)
    position = attributes.get("position")
    if position is not None:
        position = _position(position, location)
    event_id = get("event_id")
    if event_id is None:  # absent or null: derived, so re-ingesting the record is idempotent
        event_id = _sha256(canonical_json(obj).encode("ascii")).hexdigest()
    else:
        event_id = _id_value("event_id", event_id, location)
    extra = {k: v for k, v in obj.items() if k not in _EVENT_KEYS}
    if len(attributes) > 1 or len(target) > 1:
        rest = _event_attributes_rest(attributes, target)
        if rest:
            extra["event_attributes"] = rest
    return (
        event_id,
        action,
        query_id,
        client_id,
        session_id,
        timestamp,
        object_id,
        position,
        extra,
    )


def _bad_event_attributes(attributes: Any, location: str) -> NoReturn:
    """Raise the error for ``event_attributes`` without an ``object`` object."""
    if attributes is None:
        raise EventRecordError(
            location, "missing required field 'event_attributes.object.object_id'"
        )
    if type(attributes) is not dict:
        raise EventRecordError(location, _wrong_type("event_attributes", attributes, "an object"))
    target = attributes.get("object")
    if target is None:
        raise EventRecordError(
            location, "missing required field 'event_attributes.object.object_id'"
        )
    raise EventRecordError(location, _wrong_type("event_attributes.object", target, "an object"))


def _position(value: Any, location: str) -> int | None:
    if type(value) is not dict:
        raise EventRecordError(
            location, _wrong_type("event_attributes.position", value, "an object")
        )
    ordinal = value.get("ordinal")
    if ordinal is None:
        return None
    if type(ordinal) is not int:
        reason = _wrong_type("event_attributes.position.ordinal", ordinal, "an integer")
        raise EventRecordError(location, reason)
    if ordinal < 0:
        raise EventRecordError(
            location, f"event_attributes.position.ordinal must be >= 0, not {ordinal}"
        )
    return ordinal


def _event_attributes_rest(attributes: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """``event_attributes`` without the fields a record stores in its own attributes."""
    rest: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == "object":
            if len(target) > 1:
                rest[key] = {k: v for k, v in target.items() if k != "object_id"}
        elif key == "position":
            if type(value) is dict and (len(value) > 1 or (value and "ordinal" not in value)):
                rest[key] = {k: v for k, v in value.items() if k != "ordinal"}
        else:
            rest[key] = value
    return rest


def derive_event_id(obj: Mapping[str, Any]) -> str:
    """The id of an event that has none: the SHA-256 (hex) of its canonical JSON.

    Canonical JSON is ``json.dumps(obj, sort_keys=True, separators=(",", ":"))`` (ASCII
    escapes), so the id does not depend on key order or whitespace in the source line.

    >>> derive_event_id({"b": 1, "a": "x"}) == derive_event_id({"a": "x", "b": 1})
    True
    """
    return _sha256(canonical_json(obj).encode("ascii")).hexdigest()


def _json_encoder(sort_keys: bool) -> Callable[[Any], str]:
    """A compact (``separators=(",", ":")``, ASCII) JSON encoder whose output is exactly
    ``json.dumps``'s, minus its per-call set-up (which costs more than the encoding of a
    small record): the C encoder is built once. Falls back to ``json.dumps``."""
    dumps = partial(json.dumps, sort_keys=sort_keys, separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has _json
        return dumps

    def default(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    try:
        # No circular-reference markers (as check_circular=False): a cycle is a RecursionError.
        chunks = make(
            None, default, encode_basestring_ascii, None, ":", ",", sort_keys, False, True
        )
        probe = {"b": [1.5, None, True, "\u00e9"], "a": {"x": -0.0}}
        if "".join(chunks(probe, 0)) != dumps(probe):  # pragma: no cover - defensive
            return dumps
    except TypeError:  # pragma: no cover - another signature
        return dumps

    def encode(value: Any) -> str:
        if type(value) is not dict:
            value = dict(value)
        return "".join(chunks(value, 0))

    return encode


canonical_json = _json_encoder(sort_keys=True)
canonical_json.__doc__ = """``json.dumps(obj, sort_keys=True, separators=(",", ":"))``, faster."""
compact_json = _json_encoder(sort_keys=False)
compact_json.__doc__ = """``json.dumps(obj, separators=(",", ":"))``, faster."""


def parse_timestamp(value: Any) -> float:
    """Epoch seconds (UTC) from an ISO-8601 string or a number of epoch seconds.

    A string without an offset is taken as UTC. Raises :class:`ValueError` (with the reason)
    for anything else, for non-finite numbers and for times before 1970 or after year 9999
    (a number that large is usually epoch *milliseconds*).

    >>> parse_timestamp("2026-11-28T10:00:00Z"), parse_timestamp("2026-11-28T11:00:00+01:00")
    (1795860000.0, 1795860000.0)
    >>> parse_timestamp(1795860000)
    1795860000.0
    """
    if type(value) is str:
        try:
            parsed = _dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"unparsable timestamp {_show(value)} (expected ISO-8601)") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.UTC)
        seconds = parsed.timestamp()
    elif type(value) is int or type(value) is float:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"unparsable timestamp {value!r}")
    else:
        raise ValueError(_wrong_type("timestamp", value, "an ISO-8601 string or epoch seconds"))
    if not 0.0 <= seconds <= _MAX_TIMESTAMP:
        raise ValueError(
            f"timestamp {_show(value)} is out of range (expected epoch seconds between 1970 and "
            "9999; milliseconds?)"
        )
    return seconds


def format_timestamp(seconds: float) -> str:
    """ISO-8601 UTC with a ``Z`` suffix (microseconds only when not whole seconds).

    >>> format_timestamp(1795860000.0)
    '2026-11-28T10:00:00Z'
    """
    text = _dt.datetime.fromtimestamp(seconds, _dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _timestamp(obj: Mapping[str, Any], location: str) -> float:
    value = obj.get("timestamp")
    if value is None:
        raise EventRecordError(location, "missing required field 'timestamp'")
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise EventRecordError(location, str(exc)) from None


def _required_id(obj: Mapping[str, Any], name: str, location: str) -> str:
    value = obj.get(name)
    if _plain_id(value):
        return value  # fast path: the usual ASCII id
    return _id_value(name, value, location)


def _optional_id(obj: Mapping[str, Any], name: str, location: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    return _id_value(name, value, location)


def _id_value(name: str, value: Any, location: str) -> str:
    if value is None:
        raise EventRecordError(location, f"missing required field {name!r}")
    if type(value) is not str:
        raise EventRecordError(location, _wrong_type(name, value, "a string"))
    if not value.strip():
        raise EventRecordError(location, f"field {name!r} is empty")
    problem = id_problem(value)
    if problem is not None:
        raise EventRecordError(location, f"field {name!r} {problem}")
    return value


def _plain_id(value: Any) -> bool:
    """The usual id, checked inline on the hot path: a short, printable, non-blank ASCII
    string (anything else goes through :func:`_id_value` and :func:`~shopsearch.ids.id_problem`,
    which explain what is wrong)."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_CHARS
        and value.isascii()
        and value.isprintable()
        and not value.isspace()
    )


def _check_unicode(name: str, value: str, location: str) -> None:
    """Reject lone surrogates (valid in JSON escapes, not storable as UTF-8)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise EventRecordError(
                location, f"field {name!r} holds an invalid Unicode escape (lone surrogate)"
            ) from None


def _wrong_type(name: str, value: Any, expected: str) -> str:
    return f"field {name!r} must be {expected}, not {_kind(value)}"


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- writing


def to_ubi(record: QueryRecord | EventRecord) -> dict[str, Any]:
    """The record as a UBI JSON object (what :func:`parse_record` reads back).

    Timestamps are written as ISO-8601 UTC; an event always carries its ``event_id`` (derived
    or not), so writing and re-reading a record gives the same id.

    >>> to_ubi(QueryRecord("q1", "u1", None, "mug", 0.0, {"brand": "Acme"}))
    {'query_id': 'q1', 'client_id': 'u1', 'user_query': 'mug', \
'timestamp': '1970-01-01T00:00:00Z', 'query_attributes': {'filters': {'brand': 'Acme'}}}
    """
    if isinstance(record, QueryRecord):
        out: dict[str, Any] = {"query_id": record.query_id, "client_id": record.client_id}
        if record.session_id is not None:
            out["session_id"] = record.session_id
        out["user_query"] = record.user_query
        out["timestamp"] = format_timestamp(record.timestamp)
        extra = dict(record.extra)
        query_attributes = dict(extra.pop("query_attributes", None) or {})
        if record.filters:
            query_attributes["filters"] = dict(record.filters)
        if query_attributes:
            out["query_attributes"] = query_attributes
        out.update(extra)
        return out
    if isinstance(record, EventRecord):
        extra = dict(record.extra)
        rest = dict(extra.pop("event_attributes", None) or {})
        attributes: dict[str, Any] = {
            **rest,
            "object": {**(rest.get("object") or {}), "object_id": record.object_id},
        }
        if record.position is not None:
            attributes["position"] = {**(rest.get("position") or {}), "ordinal": record.position}
        out = {
            "event_id": record.event_id,
            "action_name": record.action_name,
            "query_id": record.query_id,
            "client_id": record.client_id,
        }
        if record.session_id is not None:
            out["session_id"] = record.session_id
        out["timestamp"] = format_timestamp(record.timestamp)
        out["event_attributes"] = attributes
        out.update(extra)
        return out
    raise TypeError(f"not a QueryRecord or EventRecord: {type(record).__name__}")
