"""What an identifier may hold: product ids, shopper (client) ids, session, query and event ids.

One rule for the catalog loader, the event log and the HTTP API, so that ``shopsearch index``,
``shopsearch events ingest`` and the API accept the same ids:

* 1 to :data:`MAX_ID_CHARS` (256) characters: a 100 KB "id" is an attack or a bug, and every
  id is stored, indexed and echoed in logs;
* no control characters (``\\x00``-``\\x1f``, ``\\x7f``-``\\x9f``: NUL truncates C strings,
  newlines forge log lines, escapes drive terminals);
* no bidirectional formatting characters (U+061C, U+200E/U+200F, U+202A-U+202E,
  U+2066-U+2069): they reorder how an id is *displayed* in an admin page, a log viewer or a
  terminal, so that two ids look alike ("Trojan Source", CVE-2021-42574);
* no lone surrogates (JSON escapes such as ``"\\ud800"``: not encodable as UTF-8).

>>> id_problem("B01-ABC"), id_problem("a\\u202eb")
(None, 'holds the invisible bidirectional control U+202E (it reorders how text is shown)')
"""

from __future__ import annotations

import re

__all__ = ["MAX_ID_CHARS", "id_problem"]

MAX_ID_CHARS = 256
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def id_problem(value: str, limit: int = MAX_ID_CHARS) -> str | None:
    """Why ``value`` is not a valid id (a phrase to follow the field's name), or ``None``.

    Blank ids are the caller's to reject (they have their own, older messages).
    """
    if len(value) > limit:
        return f"is {len(value):,} characters, limit {limit:,} (an id, not a document)"
    if value.isascii():
        if value.isprintable():  # the common case: one C-level scan
            return None
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "holds an invalid Unicode escape (lone surrogate)"
    found = _BAD.search(value)
    if found is None:
        return None
    char = found.group()
    if char in "\u061c\u200e\u200f" or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069":
        return (
            f"holds the invisible bidirectional control U+{ord(char):04X} "
            "(it reorders how text is shown)"
        )
    return f"holds the control character U+{ord(char):04X} (ids must be printable)"
