"""Which served queries autocomplete may offer: those that enough *distinct shoppers* searched,
minus a blocklist and the phrases an admin removed.

Autocomplete shows every shopper what other shoppers typed. Counting searches let anyone
holding the storefront's (public) key put a phrase into everybody's suggestions with 3
searches and make it the top one with 25. Here a phrase (compared normalised:
:func:`shopsearch.suggest.normalize`) is suggested only once ``min_shoppers`` different
shoppers searched it (and it found something), and admitted phrases rank by how many
shoppers searched them, not how often. Who counts as one shopper is the caller's
definition (:meth:`shopsearch.serve.auth.Authenticator.shopper`: for the public key, an
address). A phrase containing a blocklisted word or phrase (:class:`Blocklist`) is never
suggested, nor is one an admin removed (``DELETE /v1/admin/suggestions``; permanent).

Everything lives in ``DIR/suggestions.sqlite``, so it survives restarts and reloads, and
the worker processes of a server share it: each tails the tables (by rowid) and applies
what the others added or removed to its own suggester (:meth:`SuggestionStore.changes`)::

    shoppers(id, phrase, shopper, text, at)   one row per distinct (phrase, shopper)
    removed(id, phrase, text, at)             phrases an admin removed
    meta(name, value)                         the key shopper ids are hashed with

No address or user id is stored: a shopper is a keyed BLAKE2b hash (the key is random,
made with the file).

>>> store = SuggestionStore(":memory:", min_shoppers=2, blocklist=Blocklist(["casino"]))
>>> store.record([("Ugg boots", "address:10.0.0.1"), ("ugg  BOOTS", "address:10.0.0.1")])
1
>>> store.snapshot()[0]
[]
>>> store.record([("ugg boots", "address:10.0.0.2"), ("casino bonus", "address:10.0.0.3")])
2
>>> store.snapshot()[0]
[('Ugg boots', 2)]
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shopsearch.errors import ShopSearchError
from shopsearch.suggest import MAX_QUERY_CHARS, normalize

__all__ = ["SUGGESTIONS_FILE", "Blocklist", "Changes", "Cursor", "SuggestionStore"]

SUGGESTIONS_FILE = "suggestions.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shoppers (
    id      INTEGER PRIMARY KEY,
    phrase  TEXT NOT NULL,
    shopper TEXT NOT NULL,
    text    TEXT NOT NULL,
    at      REAL NOT NULL,
    UNIQUE (phrase, shopper)
);
CREATE TABLE IF NOT EXISTS removed (
    id      INTEGER PRIMARY KEY,
    phrase  TEXT NOT NULL UNIQUE,
    text    TEXT NOT NULL,
    at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_WORDS = re.compile(r"\w+")
_BATCH = 5_000  # shopper rows read per call of changes()


class Blocklist:
    """Words and phrases that keep a query out of suggestions, matched as whole words on
    normalised text (case, accents and punctuation do not matter).

    >>> Blocklist(["Free Money", "casino"]).blocks("FREE money now!")
    True
    >>> Blocklist(["casino"]).blocks("casinos near me")
    False
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries = tuple(sorted({w for w in map(_words, entries) if w.strip()}))

    @classmethod
    def load(cls, entries: Iterable[str], path: str | os.PathLike[str] | None) -> Blocklist:
        """``entries`` plus the lines of the file ``path`` (``#`` starts a comment)."""
        entries = list(entries)
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ShopSearchError(f"suggestion blocklist {path}: cannot read: {exc}") from None
            entries += [line.split("#", 1)[0] for line in text.splitlines()]
        return cls(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def blocks(self, text: str) -> bool:
        padded = _words(text)
        return any(entry in padded for entry in self.entries)


def _words(text: str) -> str:
    """`` word word `` (padded with spaces): normalised words only."""
    return " " + " ".join(_WORDS.findall(normalize(text))) + " "


@dataclass(frozen=True)
class Cursor:
    """How far a suggester has followed the store: the last rowids applied."""

    shoppers: int = 0
    removed: int = 0


@dataclass
class Changes:
    """What to apply to a suggester since a cursor: ``add`` (text, weight to add: the new
    shoppers of an admitted phrase, or all of them when it is admitted now), ``remove``
    (texts), and the new cursor."""

    cursor: Cursor
    add: list[tuple[str, int]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


class SuggestionStore:
    """``DIR/suggestions.sqlite`` (see the module docstring). Thread-safe; any number of
    processes may open the same file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        min_shoppers: int = 3,
        blocklist: Blocklist | None = None,
    ) -> None:
        if min_shoppers < 1:
            raise ValueError(f"min_shoppers must be >= 1, not {min_shoppers}")
        self.min_shoppers = min_shoppers
        self.blocklist = blocklist or Blocklist()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=30.0, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('shopper_key', ?)", (secrets.token_hex(16),)
        )
        (key,) = self._db.execute("SELECT value FROM meta WHERE name = 'shopper_key'").fetchone()
        self._key = bytes.fromhex(key)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _hash(self, shopper: str) -> str:
        data = shopper.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, key=self._key, digest_size=12).hexdigest()

    def record(self, searches: Iterable[tuple[str, str]]) -> int:
        """Note that each ``(query text, shopper)`` searched; the number of new distinct
        pairs. Blank and over-long texts (never suggested) are skipped."""
        now = time.time()
        rows = []
        for text, shopper in searches:
            phrase = normalize(text)
            if phrase and len(text) <= MAX_QUERY_CHARS:
                rows.append((phrase, self._hash(shopper), text, now))
        if not rows:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO shoppers (phrase, shopper, text, at) VALUES (?,?,?,?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def remove(self, text: str) -> bool:
        """Never suggest ``text`` (compared normalised) again; ``False`` if it was removed
        already. Raises ``ValueError`` for a text with nothing to compare."""
        phrase = normalize(text)
        if not phrase:
            raise ValueError("the phrase is blank")
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO removed (phrase, text, at) VALUES (?, ?, ?)",
                (phrase, text, time.time()),
            )
            return cursor.rowcount == 1

    def snapshot(self) -> tuple[list[tuple[str, int]], Cursor]:
        """Every admitted phrase ``(text, shoppers)``, most shoppers first, and the cursor
        to follow the store from (one consistent read)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                last_shopper, last_removed = self._db.execute(
                    "SELECT (SELECT COALESCE(MAX(id), 0) FROM shoppers), "
                    "(SELECT COALESCE(MAX(id), 0) FROM removed)"
                ).fetchone()
                rows = self._db.execute(
                    "SELECT s.phrase, s.text, MIN(s.id), COUNT(*) AS n FROM shoppers AS s "
                    "WHERE s.id <= ? AND s.phrase NOT IN (SELECT phrase FROM removed) "
                    "GROUP BY s.phrase HAVING n >= ? ORDER BY n DESC, s.phrase",
                    (last_shopper, self.min_shoppers),
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
        admitted = [(text, n) for phrase, text, _, n in rows if not self.blocklist.blocks(phrase)]
        return admitted, Cursor(last_shopper, last_removed)

    def changes(self, cursor: Cursor) -> Changes:
        """What was added and removed (by any process) since ``cursor``: see :class:`Changes`.
        Reads at most a few thousand rows per call (call again while the cursor moves)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                rows = self._db.execute(
                    "SELECT id, phrase FROM shoppers WHERE id > ? ORDER BY id LIMIT ?",
                    (cursor.shoppers, _BATCH),
                ).fetchall()
                removed = self._db.execute(
                    "SELECT id, phrase FROM removed WHERE id > ? ORDER BY id", (cursor.removed,)
                ).fetchall()
                last = rows[-1][0] if rows else cursor.shoppers
                result = Changes(Cursor(last, removed[-1][0] if removed else cursor.removed))
                result.remove = [phrase for _, phrase in removed]
                result.add = self._admitted(_counts(rows), last)
            finally:
                self._db.execute("COMMIT")
        return result

    def _admitted(self, new: dict[str, int], last: int) -> list[tuple[str, int]]:
        """(Under the lock, in a read transaction.)"""
        out = []
        for phrase, n_new in new.items():
            if self.blocklist.blocks(phrase):
                continue
            total, text, gone = self._db.execute(
                "SELECT COUNT(*), (SELECT text FROM shoppers WHERE phrase = ?1 ORDER BY id "
                "LIMIT 1), EXISTS (SELECT 1 FROM removed WHERE phrase = ?1) "
                "FROM shoppers WHERE phrase = ?1 AND id <= ?2",
                (phrase, last),
            ).fetchone()
            if gone or total < self.min_shoppers:
                continue
            admitted_before = total - n_new >= self.min_shoppers
            out.append((text, n_new if admitted_before else total))
        return out


def _counts(rows: Sequence[tuple[int, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, phrase in rows:
        counts[phrase] = counts.get(phrase, 0) + 1
    return counts
