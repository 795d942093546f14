"""UBI record parsing (shopsearch.events.schema) and line reading (shopsearch.events.reader)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from shopsearch.errors import EventRecordError, ShopSearchError
from shopsearch.events import (
    EventProblem,
    EventRecord,
    QueryRecord,
    canonical_json,
    derive_event_id,
    iter_records,
    parse_record,
    parse_timestamp,
    to_ubi,
)

T0 = 1_795_860_000.0  # 2026-11-28T10:00:00Z


def _query(**fields: Any) -> dict[str, Any]:
    record = {
        "query_id": "q1",
        "client_id": "u1",
        "session_id": "s1",
        "user_query": "ugg slippers",
        "timestamp": "2026-11-28T10:00:00Z",
    }
    record.update(fields)
    return record


def _event(**fields: Any) -> dict[str, Any]:
    record = {
        "action_name": "click",
        "query_id": "q1",
        "client_id": "u1",
        "session_id": "s1",
        "timestamp": "2026-11-28T10:00:05Z",
        "event_attributes": {"object": {"object_id": "B01"}, "position": {"ordinal": 2}},
    }
    record.update(fields)
    return record


def _write(path: Path, lines: list[str | dict[str, Any]]) -> Path:
    text = "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00+00:00",
        "2026-11-28T11:00:00+01:00",
        "2026-11-28T05:30:00-04:30",
        "2026-11-28T10:00:00.000Z",
        "2026-11-28T10:00:00",  # no offset: UTC
        "2026-11-28 10:00:00Z",
        1_795_860_000,
        1_795_860_000.0,
    ],
)
def test_every_timestamp_format_gives_the_same_epoch_seconds(value):
    assert parse_timestamp(value) == T0
    assert parse_record(_event(timestamp=value), "x:1").timestamp == T0
    assert parse_record(_query(timestamp=value), "x:1").timestamp == T0


def test_fractional_timestamps_are_kept():
    assert parse_timestamp("2026-11-28T10:00:00.250Z") == T0 + 0.25
    assert parse_timestamp(T0 + 0.5) == T0 + 0.5


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "unparsable timestamp 'yesterday'"),
        ("2026-13-01T00:00:00Z", "unparsable timestamp"),
        ("1795860000", "unparsable timestamp"),  # a number in a string
        (True, "must be an ISO-8601 string or epoch seconds, not a boolean"),
        ([2026], "not an array"),
        (1_795_860_000_000, "out of range"),  # milliseconds
        (-5, "out of range"),
        (float("nan"), "unparsable timestamp"),
    ],
)
def test_bad_timestamps_are_explained(value, reason):
    with pytest.raises(EventRecordError, match="^log.jsonl:3: ") as info:
        parse_record(_event(timestamp=value), "log.jsonl:3")
    assert reason in info.value.reason
    with pytest.raises(ValueError):
        parse_timestamp(value)


# --------------------------------------------------------------------------- records


def test_a_query_record_keeps_filters_and_unknown_fields():
    record = parse_record(
        _query(
            query_attributes={"filters": {"price_max": 50}, "page": 2},
            application="web",
            query_response_id="r1",
        ),
        "x:1",
    )
    assert isinstance(record, QueryRecord)
    assert (record.query_id, record.client_id, record.session_id) == ("q1", "u1", "s1")
    assert record.user_query == "ugg slippers"
    assert record.filters == {"price_max": 50}
    assert record.extra == {
        "application": "web",
        "query_response_id": "r1",
        "query_attributes": {"page": 2},
    }


def test_an_event_record_reads_the_nested_ubi_fields():
    record = parse_record(
        _event(
            event_id="e1",
            application="web",
            event_attributes={
                "object": {"object_id": "B01", "object_id_field": "asin"},
                "position": {"ordinal": 0, "page_depth": 1},
                "browser": "firefox",
            },
        ),
        "x:1",
    )
    assert isinstance(record, EventRecord)
    assert (record.event_id, record.action_name, record.object_id) == ("e1", "click", "B01")
    assert record.position == 0
    assert record.timestamp == T0 + 5
    assert record.extra == {
        "application": "web",
        "event_attributes": {
            "object": {"object_id_field": "asin"},
            "position": {"page_depth": 1},
            "browser": "firefox",
        },
    }


def test_optional_fields_may_be_absent_or_null():
    event = parse_record(
        _event(session_id=None, event_attributes={"object": {"object_id": "B01"}}), "x:1"
    )
    assert event.session_id is None and event.position is None
    query = _query()
    del query["session_id"]
    assert parse_record(query, "x:1").session_id is None
    assert parse_record(_query(query_attributes=None), "x:1").filters == {}


def test_a_numeric_object_id_becomes_a_string():
    record = parse_record(_event(event_attributes={"object": {"object_id": 1234}}), "x:1")
    assert record.object_id == "1234"


def test_an_event_with_user_query_is_still_an_event():
    record = parse_record(_event(user_query="ugg"), "x:1")
    assert isinstance(record, EventRecord)
    assert record.extra == {"user_query": "ugg"}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"query_id": "q1", "client_id": "u1"}, "neither a query record"),
        (_query(query_id=None), "missing required field 'query_id'"),
        (_query(client_id=7), "field 'client_id' must be a string, not a number"),
        (_query(client_id="  "), "field 'client_id' is empty"),
        (_query(user_query=["ugg"]), "field 'user_query' must be a string, not an array"),
        (_query(query_attributes=[]), "field 'query_attributes' must be an object"),
        (_query(query_attributes={"filters": "cheap"}), "'query_attributes.filters' must be"),
        ({k: v for k, v in _query().items() if k != "timestamp"}, "missing required field"),
        (_event(action_name="view"), "unknown action_name 'view' (expected one of impression"),
        (_event(action_name=["click"]), "field 'action_name' must be a string"),
        (_event(query_id=""), "field 'query_id' is empty"),
        ({k: v for k, v in _event().items() if k != "client_id"}, "'client_id'"),
        (_event(session_id=5), "field 'session_id' must be a string"),
        (_event(event_id=17), "field 'event_id' must be a string"),
        (_event(event_attributes=None), "missing required field 'event_attributes.object"),
        (_event(event_attributes="B01"), "field 'event_attributes' must be an object"),
        (_event(event_attributes={"object": "B01"}), "'event_attributes.object' must be an"),
        (_event(event_attributes={"object": {}}), "'event_attributes.object.object_id'"),
        (
            _event(event_attributes={"object": {"object_id": True}}),
            "'event_attributes.object.object_id' must be a string, not a boolean",
        ),
        (
            _event(event_attributes={"object": {"object_id": "B01"}, "position": 3}),
            "'event_attributes.position' must be an object",
        ),
        (
            _event(event_attributes={"object": {"object_id": "B01"}, "position": {"ordinal": -1}}),
            "ordinal must be >= 0",
        ),
        (
            _event(event_attributes={"object": {"object_id": "B01"}, "position": {"ordinal": 1.5}}),
            "'event_attributes.position.ordinal' must be an integer",
        ),
        (_query(query_id="q\ud800"), "lone surrogate"),
        # ids are bounded and printable, as everywhere (shopsearch.ids)
        (_query(query_id="q" * 102_400), "field 'query_id' is 102,400 characters, limit 256"),
        (_event(query_id="q" * 257), "field 'query_id' is 257 characters, limit 256"),
        (_event(client_id="u\x00"), "field 'client_id' holds the control character U+0000"),
        (_query(session_id="s\n1"), "field 'session_id' holds the control character U+000A"),
        (_event(client_id="u\u202e1"), "field 'client_id' holds the invisible bidirectional"),
        (
            _event(event_attributes={"object": {"object_id": "B\u2066"}}),
            "'event_attributes.object.object_id' holds the invisible bidirectional control U+2066",
        ),
        (_event(event_id="e\x7f"), "field 'event_id' holds the control character U+007F"),
    ],
)
def test_bad_records_raise_a_located_error(record, reason):
    with pytest.raises(EventRecordError) as info:
        parse_record(record, "events.jsonl:12")
    error = info.value
    assert isinstance(error, ShopSearchError)
    assert error.location == "events.jsonl:12"
    assert reason in error.reason, error.reason
    assert str(error) == f"events.jsonl:12: {error.reason}"


def test_a_non_object_is_rejected():
    with pytest.raises(EventRecordError, match="record is an array, not a JSON object"):
        parse_record([1, 2], "x:1")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- event ids


def test_derived_event_ids_are_the_sha256_of_the_canonical_json():
    obj = _event(note="é ünïcode \u2603", score=1.5, flags=[True, None, -0.0])
    expected = hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ).hexdigest()
    assert derive_event_id(obj) == expected
    assert canonical_json(obj) == json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert parse_record(obj, "x:1").event_id == expected


def test_derived_event_ids_are_stable_and_distinct():
    a = _event()
    reordered = dict(reversed(list(a.items())))
    reparsed = json.loads(json.dumps(a, indent=4))
    ids = {parse_record(x, "x:1").event_id for x in (a, reordered, reparsed)}
    assert len(ids) == 1
    assert len(next(iter(ids))) == 64
    different = [
        _event(action_name="purchase"),
        _event(timestamp="2026-11-28T10:00:06Z"),
        _event(event_attributes={"object": {"object_id": "B02"}, "position": {"ordinal": 2}}),
        _event(client_id="u2"),
        _event(extra_field=1),
    ]
    all_ids = ids | {parse_record(x, "x:1").event_id for x in different}
    assert len(all_ids) == 1 + len(different)


def test_an_explicit_event_id_is_kept_and_a_null_one_is_derived():
    assert parse_record(_event(event_id="e-42"), "x:1").event_id == "e-42"
    assert parse_record(_event(event_id=None), "x:1").event_id == derive_event_id(
        _event(event_id=None)
    )


# --------------------------------------------------------------------------- to_ubi


@pytest.mark.parametrize(
    "obj",
    [
        _query(query_attributes={"filters": {"brand": "Acme"}, "page": 2}, application="web"),
        _query(session_id=None),
        _event(
            event_id="e1",
            event_attributes={
                "object": {"object_id": "B01", "object_id_field": "asin"},
                "position": {"ordinal": 0, "page_depth": 1},
                "browser": "firefox",
            },
            application="web",
        ),
        _event(),  # derived id
        _event(event_attributes={"object": {"object_id": "B01"}}),
    ],
)
def test_to_ubi_round_trips(obj):
    record = parse_record(obj, "x:1")
    written = to_ubi(record)
    assert json.loads(json.dumps(written)) == written
    assert parse_record(written, "x:1") == record


def test_to_ubi_writes_iso_timestamps():
    written = to_ubi(parse_record(_event(timestamp=T0 + 0.25), "x:1"))
    assert written["timestamp"] == "2026-11-28T10:00:00.250000Z"


# --------------------------------------------------------------------------- files


def test_every_bad_line_is_reported_with_its_line_number(tmp_path):
    lines: list[str | dict[str, Any]] = [
        _query(),  # 1
        _event(),  # 2
        '{"action_name": "click", "query_id": ',  # 3 malformed JSON
        "",  # 4 blank: skipped, not a problem
        "   ",  # 5 blank
        "[1, 2, 3]",  # 6 not an object
        _event(action_name="view"),  # 7 unknown action
        _event(timestamp="soon"),  # 8 bad timestamp
        {"query_id": "q9", "client_id": "u1"},  # 9 neither kind
        _event(client_id=None),  # 10 missing field
        _event(event_attributes={"object": {"object_id": "B01"}, "position": {"ordinal": "3"}}),
        _event(timestamp="2026-11-28T10:00:06Z"),  # 12 fine
        '{"a": 1} trailing',  # 13
        "42",  # 14
    ]
    path = _write(tmp_path / "log.jsonl", lines)
    items = list(iter_records(path))
    records = [(line, item) for line, item in items if not isinstance(item, EventProblem)]
    problems = {line: item for line, item in items if isinstance(item, EventProblem)}
    assert [line for line, _ in records] == [1, 2, 12]
    expected = {
        3: "malformed JSON",
        6: "line is an array, not a JSON object",
        7: "unknown action_name 'view'",
        8: "unparsable timestamp 'soon'",
        9: "neither a query record",
        10: "missing required field 'client_id'",
        11: "'event_attributes.position.ordinal' must be an integer, not a string",
        13: "malformed JSON: Extra data",
        14: "line is a number, not a JSON object",
    }
    assert sorted(problems) == sorted(expected)
    for line, reason in expected.items():
        problem = problems[line]
        assert problem.line == line and problem.source == str(path)
        assert problem.location == f"{path}:{line}"
        assert reason in problem.reason, (line, problem.reason)
        assert str(problem) == f"{path}:{line}: {problem.reason}"


def test_an_over_long_line_is_a_problem_and_never_read_whole(tmp_path):
    huge = json.dumps(_event(note="x" * 5_000_000))
    path = _write(tmp_path / "log.jsonl", [_query(), huge, _event()])
    items = list(iter_records(path, max_line_bytes=65_536))
    assert [line for line, _ in items] == [1, 2, 3]
    problem = items[1][1]
    assert isinstance(problem, EventProblem)
    assert "line is larger than 65,536 bytes" in problem.reason
    assert isinstance(items[2][1], EventRecord)
    # A line of exactly the limit is fine.
    exact = json.dumps(_event(note="")).encode()
    padded = json.dumps(_event(note="y" * (1_000 - len(exact))))
    assert len(padded.encode()) == 1_000
    path = _write(tmp_path / "exact.jsonl", [padded])
    assert isinstance(list(iter_records(path, max_line_bytes=1_000))[0][1], EventRecord)
    assert isinstance(list(iter_records(path, max_line_bytes=999))[0][1], EventProblem)


def test_invalid_utf8_and_a_bom_are_handled(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_query()).encode() + b"\n" + b'{"x": "\xff"}\n')
    items = list(iter_records(path))
    assert isinstance(items[0][1], QueryRecord)
    assert isinstance(items[1][1], EventProblem) and "invalid UTF-8" in items[1][1].reason


def test_gzipped_files_are_read(tmp_path):
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(_query()) + "\n\n" + json.dumps(_event()) + "\nnope\n")
    items = list(iter_records(path))
    assert [line for line, _ in items] == [1, 3, 4]
    assert isinstance(items[1][1], EventRecord)
    assert isinstance(items[2][1], EventProblem)


def test_a_truncated_gzip_ends_with_a_problem(tmp_path):
    whole = gzip.compress(
        "".join(json.dumps(_event(client_id=f"u{i}")) + "\n" for i in range(2_000)).encode()
    )
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    items = list(iter_records(path))
    *records, (line, last) = items
    assert all(isinstance(item, EventRecord) for _, item in records)
    assert isinstance(last, EventProblem)
    assert "cannot read the rest of the file" in last.reason
    assert line == len(records) + 1


def test_a_missing_file_raises(tmp_path):
    with pytest.raises(EventRecordError, match="no such file"):
        iter_records(tmp_path / "absent.jsonl")
    with pytest.raises(EventRecordError, match="not a file"):
        iter_records(tmp_path)
