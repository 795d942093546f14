"""``shopsearch events``: ingest and info through the CLI, and crash safety of ingestion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from shopsearch.cli import main
from shopsearch.events import DB_NAME, EventStore

T0 = 1_795_860_000  # 2026-11-28T10:00:00Z


def _event(i: int, **fields: Any) -> dict[str, Any]:
    record = {
        "action_name": ("impression", "click", "add_to_cart", "purchase")[i % 4],
        "query_id": f"q{i // 4}",
        "client_id": f"u{i % 3}",
        "session_id": f"s{i % 5}",
        "timestamp": T0 + i,
        "event_attributes": {"object": {"object_id": f"B{i:03d}"}, "position": {"ordinal": i}},
    }
    record.update(fields)
    return record


def _query(n: int) -> dict[str, Any]:
    return {
        "query_id": f"q{n}",
        "client_id": f"u{n % 3}",
        "user_query": f"query {n}",
        "timestamp": "2026-11-28T10:00:00Z",
    }


@pytest.fixture
def log(tmp_path):
    """Good records with bad lines between them."""
    lines = [
        json.dumps(_query(0)),  # 1
        json.dumps(_event(0)),  # 2
        '{"action_name": "click", ',  # 3 malformed JSON
        json.dumps(_event(1)),  # 4
        json.dumps(_event(2, action_name="view")),  # 5 unknown action
        "",  # 6 blank: skipped
        json.dumps(_query(1)),  # 7
        json.dumps(_event(3, timestamp="tomorrow")),  # 8 bad timestamp
        json.dumps(_event(4)),  # 9
        json.dumps(_event(5, client_id=None)),  # 10 missing client_id
        json.dumps(_event(6, note="x" * 70_000)),  # 11 over 64 KB
        json.dumps(_event(7)),  # 12
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BAD_LINES = {
    3: "malformed JSON",
    5: "unknown action_name 'view'",
    8: "unparsable timestamp 'tomorrow'",
    10: "missing required field 'client_id'",
    11: "line is larger than 65,536 bytes",
}


def test_ingest_reports_counts_and_located_problems(log, tmp_path, capsys):
    index = tmp_path / "index"
    index.mkdir()
    errors = tmp_path / "rejected.jsonl"
    assert main(["events", "ingest", str(index), str(log), "--errors", str(errors)]) == 0
    captured = capsys.readouterr()
    assert (
        f"{log}: 11 lines read; 2 queries and 4 events stored, 0 duplicates, 5 rejected"
        in captured.out
    ), captured.out
    for line, reason in BAD_LINES.items():
        assert f"{log}:{line}: {reason}" in captured.err, captured.err
    rejected = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [r["line"] for r in rejected] == sorted(BAD_LINES)
    assert all(r["location"] == f"{log}:{r['line']}" for r in rejected)
    assert all(BAD_LINES[r["line"]] in r["reason"] for r in rejected)
    assert (index / DB_NAME).is_file()

    # Again: nothing new.
    assert main(["events", "ingest", str(index), str(log)]) == 0
    out = capsys.readouterr().out
    assert "0 queries and 0 events stored, 6 duplicates, 5 rejected" in out, out

    assert main(["events", "info", str(index), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["queries"] == 2 and info["events"] == 4
    # events 0, 1, 4 and 7: impression, click, impression, purchase
    actions = (info["impression"], info["click"], info["add_to_cart"], info["purchase"])
    assert actions == (2, 1, 0, 1)
    assert info["clients"] == 2  # u0 and u1
    assert main(["events", "info", str(index)]) == 0
    table = capsys.readouterr().out
    assert "queries" in table and "purchase" in table and "2026-11-28T10:00:00Z" in table


def test_ingest_strict_stops_at_the_first_bad_line(log, tmp_path, capsys):
    index = tmp_path / "index"
    index.mkdir()
    assert main(["events", "ingest", str(index), str(log), "--strict"]) == 1
    assert f"{log}:3: malformed JSON" in capsys.readouterr().err
    with EventStore.open(index) as store:
        assert store.counts()["events"] == 0 and store.counts()["queries"] == 0


def test_ingest_with_retention(tmp_path, capsys):
    index = tmp_path / "index"
    index.mkdir()
    path = tmp_path / "week.jsonl"
    path.write_text(
        "".join(json.dumps(_event(i, timestamp=T0 + i * 86_400)) + "\n" for i in range(7))
    )
    args = ["events", "ingest", str(index), str(path), "--max-age-days", "2.5", "--batch-size", "2"]
    assert main(args) == 0
    assert "Retention: 4 old events removed" in capsys.readouterr().out
    with EventStore.open(index) as store:
        assert [e.timestamp for e in store.iter_events()] == [T0 + i * 86_400 for i in (4, 5, 6)]
    assert main(["events", "ingest", str(index), str(path), "--max-events", "1"]) == 0
    with EventStore.open(index) as store:
        assert store.counts()["events"] == 1


def test_errors_are_clear(tmp_path, log, capsys):
    missing = tmp_path / "nowhere"
    assert main(["events", "ingest", str(missing), str(log)]) == 1
    assert "no such index directory" in capsys.readouterr().err
    assert not missing.exists()
    index = tmp_path / "index"
    index.mkdir()
    assert main(["events", "info", str(index)]) == 1
    assert "has no events yet" in capsys.readouterr().err
    assert not (index / DB_NAME).exists()
    assert main(["events", "ingest", str(index), str(tmp_path / "absent.jsonl")]) == 1
    assert "absent.jsonl: no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n[]\n")
    assert main(["events", "ingest", str(index), str(junk)]) == 1
    err = capsys.readouterr().err
    assert "junk.jsonl:1: malformed JSON" in err and "no usable query or event records" in err


# --------------------------------------------------------------------------- crash safety

CRASH_RECORDS = 200_000
CRASH_BATCH = 5_000
_INGEST = """
import sys
from shopsearch.events import EventStore

def acknowledge(report):
    print(f"ACK {report.events_stored}", flush=True)

with EventStore.open(sys.argv[1]) as store:
    store.ingest_file(sys.argv[2], batch_size=int(sys.argv[3]), on_commit=acknowledge)
print("DONE", flush=True)
"""


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    """A UBI log of CRASH_RECORDS lines: queries, events with derived and explicit ids, and
    repeated events; returns (path, number of distinct events)."""
    path = tmp_path_factory.mktemp("crash") / "big.jsonl"
    distinct = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(CRASH_RECORDS):
            if i % 20 == 0:
                record = _query(i)
            elif i % 50 == 7:
                record = _event(i - 1)  # the same line as the previous one: a duplicate
                if (i - 1) % 20 == 0:
                    record = _event(i)  # ... unless that one was a query
                    distinct += 1
            else:
                record = _event(i, event_id=f"e{i}") if i % 2 else _event(i)
                distinct += 1
            out.write(json.dumps(record) + "\n")
    return path, distinct


def test_sigkill_midway_loses_nothing_acknowledged(big_log, tmp_path):
    path, distinct = big_log
    index = tmp_path / "index"
    proc = subprocess.Popen(
        [sys.executable, "-c", _INGEST, str(index), str(path), str(CRASH_BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            assert not line.startswith("DONE"), "the ingest finished before it could be killed"
            if line.startswith("ACK "):
                acked.append(int(line.split()[1]))
                if len(acked) >= 2:
                    proc.send_signal(signal.SIGKILL)
                    break
        returncode = proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        proc.kill()
    assert len(acked) >= 2, proc.stderr.read() if proc.stderr else ""
    assert returncode == -signal.SIGKILL
    assert acked == sorted(acked) and acked[-1] > 0

    with EventStore.open(index) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = store.counts()["events"]
        assert acked[-1] <= stored < distinct
        # Resume by ingesting the whole file again: every event exactly once.
        report = store.ingest_file(path, batch_size=CRASH_BATCH)
        assert report.events_stored == distinct - stored
        assert not report.problems
        assert store.counts()["events"] == distinct
        distinct_ids = store._db.execute("SELECT COUNT(DISTINCT event_id) FROM events")
        assert distinct_ids.fetchone()[0] == distinct
