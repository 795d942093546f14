"""Propose synonym rules for review: never applied by themselves.

Two sources:

* **the catalog**: a word that is also written as two words or hyphenated elsewhere in the
  catalog ("airpods" in some titles, "air pods" or "air-pods" in others) gives
  ``airpods, air pods``;
* **logged reformulations**: in one session, a query that got no click followed within
  ``window_s`` by another that did, sharing a word or close in spelling ("ear buds" ->
  "earbuds"), in at least ``min_sessions`` sessions, gives ``ear buds => earbuds``.

Each proposal comes with its evidence (how many products or sessions); a person copies the
good ones into ``DIR/synonyms.txt`` (re-read by searches, no re-indexing).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from shopsearch.catalog.schema import Product
from shopsearch.text.normalize import key
from shopsearch.text.vocabulary import words

__all__ = ["Proposal", "catalog_proposals", "reformulation_proposals"]

_PAIR_RE = re.compile(r"\b([^\W\d_]{2,})[\s-](?=([^\W\d_]{2,})\b)")  # overlapping pairs


@dataclass(frozen=True)
class Proposal:
    rule: str  # a line in the synonym file's format
    source: str  # "catalog" or "reformulations"
    evidence: int  # products (catalog) or sessions (reformulations)
    note: str


def catalog_proposals(products: Iterable[Product], min_count: int = 3) -> list[Proposal]:
    """``joined, two words`` where both spellings occur in ``min_count`` or more products."""
    joined: Counter[str] = Counter()
    split: Counter[str] = Counter()
    for product in products:
        title = key(product.title)
        joined.update(words(title))
        split.update({a + b for a, b in _PAIR_RE.findall(title)})
    out = []
    for word, n_split in split.items():
        n_joined = joined.get(word, 0)
        if len(word) >= 5 and n_joined >= min_count and n_split >= min_count:
            out.append(
                Proposal(
                    f"{word}, {_split_form(word, joined)}",
                    "catalog",
                    n_joined + n_split,
                    f"{n_joined} products write it as one word, {n_split} as two",
                )
            )
    return sorted(out, key=lambda p: (-p.evidence, p.rule))


def _split_form(word: str, joined: Counter[str]) -> str:
    """The two-word form: the split whose parts are most common as words."""
    splits = [(word[:i], word[i:]) for i in range(2, len(word) - 1)]
    a, b = max(splits, key=lambda ab: (min(joined[ab[0]], joined[ab[1]]), ab))
    return f"{a} {b}"


def reformulation_proposals(
    sessions: Iterable[tuple[str, float, str, bool]],
    window_s: float = 120.0,
    min_sessions: int = 2,
) -> list[Proposal]:
    """From ``(session, timestamp, query, engaged)`` rows ordered by session and time
    (:meth:`EventReads.session_queries`)."""
    pairs: Counter[tuple[str, str]] = Counter()
    previous: tuple[str, float, str, bool] | None = None
    for row in sessions:
        if previous is not None and previous[0] == row[0]:
            first, second = key(previous[2]), key(row[2])
            if (
                first != second
                and not previous[3]
                and row[3]
                and row[1] - previous[1] <= window_s
                and _related(first, second)
            ):
                pairs[(first, second)] += 1
        previous = row
    out = [
        Proposal(f"{a} => {b}", "reformulations", n, f"{n} sessions rewrote it and then clicked")
        for (a, b), n in pairs.items()
        if n >= min_sessions
    ]
    return sorted(out, key=lambda p: (-p.evidence, p.rule))


def _related(a: str, b: str) -> bool:
    """Share a word, or are the same letters spaced differently."""
    return bool(set(a.split()) & set(b.split())) or a.replace(" ", "") == b.replace(" ", "")
