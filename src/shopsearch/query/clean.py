"""Invisible characters out; a query with nothing left to search is an error.

Zero-width spaces and joiners, the byte-order mark, soft hyphens, bidi marks, NUL and other
control or format characters (Unicode categories Cc, Cf) are removed; whitespace runs become
one space. A query with no letter or digit left (only spaces, invisible characters or
punctuation) cannot match anything meaningful and is rejected with a clear message instead
of returning unrelated products.

>>> clean("water\\u200b bottle\\x00 ")
'water bottle'
>>> has_searchable("\\u200b\\u200c ...!")
False
"""

from __future__ import annotations

import unicodedata

from shopsearch.errors import InvalidQueryError

__all__ = ["check_searchable", "clean", "has_searchable"]


def clean(text: str) -> str:
    """``text`` without control and format characters, whitespace collapsed."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    return " ".join(kept.split())


def has_searchable(text: str) -> bool:
    """Whether ``text`` has a letter or a digit (in any script)."""
    return any(ch.isalnum() for ch in clean(text))


def check_searchable(text: str) -> str:
    """The cleaned query; :class:`InvalidQueryError` when nothing searchable is left."""
    cleaned = clean(text)
    if not any(ch.isalnum() for ch in cleaned):
        shown = ascii(text[:40])
        raise InvalidQueryError(
            f"the query {shown} has no letters or digits (only spaces, punctuation or "
            "invisible characters): type what you are looking for"
        )
    return cleaned
