"""The one rule for identifiers (shopsearch.ids), shared by catalog, event log and API."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopsearch.ids import MAX_ID_CHARS, id_problem


@pytest.mark.parametrize(
    "value", ["B01", "shopper-1", "a b", "Größe", "保温杯-1", "x" * MAX_ID_CHARS]
)
def test_ordinary_ids_are_fine(value: str) -> None:
    assert id_problem(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x" * (MAX_ID_CHARS + 1), "is 257 characters, limit 256 (an id, not a document)"),
        ("a\x00", "holds the control character U+0000 (ids must be printable)"),
        ("a\x1b[31m", "holds the control character U+001B"),
        ("a\x85", "holds the control character U+0085"),
        ("a\u202eb", "holds the invisible bidirectional control U+202E"),
        ("a\u2066b", "holds the invisible bidirectional control U+2066"),
        ("a\u200fb", "holds the invisible bidirectional control U+200F"),
        ("a\ud800", "holds an invalid Unicode escape (lone surrogate)"),
    ],
)
def test_bad_ids_are_explained(value: str, reason: str) -> None:
    problem = id_problem(value)
    assert problem is not None and problem.startswith(reason), problem


@given(st.text(max_size=40))
def test_a_valid_id_is_printable_utf8_without_bidi_controls(value: str) -> None:
    if id_problem(value) is None:
        value.encode("utf-8")
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
        assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in value)
