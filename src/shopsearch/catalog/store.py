"""The catalog's embedded database: SQLite in WAL mode.

The store is the index directory's single commit point. Product rows and the name of the
index snapshot that matches them change in one transaction (:meth:`CatalogStore.commit`), so
a crash at any moment leaves either the old catalog with the old snapshot or the new catalog
with the new snapshot, never a mix.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from shopsearch.catalog.schema import Product

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id   TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
_CHUNK = 500  # ids per IN (...) query, below SQLite's variable limit


class CatalogStore:
    """Products by id, plus string metadata, in one SQLite file.

    >>> store = CatalogStore(tmp_path / "catalog.sqlite")   # doctest: +SKIP
    >>> store.commit(upserts=[product], meta={"snapshot": "000001"})  # doctest: +SKIP
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        # FULL: a commit is on disk (not only in the OS cache) before it returns.
        self._db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CatalogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # reads
    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    def get(self, product_id: str) -> Product | None:
        row = self._db.execute("SELECT doc FROM products WHERE id = ?", (product_id,)).fetchone()
        return None if row is None else Product.from_dict(json.loads(row[0]))

    def get_many(self, ids: Sequence[str]) -> dict[str, Product]:
        found: dict[str, Product] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            for pid, doc in self._db.execute(
                f"SELECT id, doc FROM products WHERE id IN ({marks})", chunk
            ):
                found[pid] = Product.from_dict(json.loads(doc))
        return found

    def iter_products(self) -> Iterator[Product]:
        for (doc,) in self._db.execute("SELECT doc FROM products ORDER BY id"):
            yield Product.from_dict(json.loads(doc))

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    # writes
    def commit(
        self,
        *,
        upserts: Iterable[Product] = (),
        deletes: Iterable[str] = (),
        meta: Mapping[str, str] | None = None,
        replace_all: bool = False,
    ) -> None:
        """Apply upserts, deletes and metadata in one transaction (all or nothing)."""
        with self._db:  # BEGIN ... COMMIT, or ROLLBACK on any exception
            if replace_all:
                self._db.execute("DELETE FROM products")
            self._db.executemany(
                "INSERT INTO products (id, doc) VALUES (?, ?) "
                "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                ((p.id, json.dumps(p.to_dict(), ensure_ascii=False)) for p in upserts),
            )
            self._db.executemany("DELETE FROM products WHERE id = ?", ((i,) for i in deletes))
            if meta:
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    meta.items(),
                )


class DocumentCache:
    """Products read from a :class:`CatalogStore`, kept while the index snapshot they belong
    to is current (any other ``generation`` object empties the cache), at most ``size``."""

    def __init__(self, store: CatalogStore, size: int) -> None:
        self.store = store
        self.size = size
        self._cache: dict[str, Product] = {}
        self._generation: object = None

    def get(self, product_ids: Sequence[str], generation: object) -> dict[str, Product]:
        if self._generation is not generation or len(self._cache) > self.size:
            self._cache, self._generation = {}, generation
        cache = self._cache
        missing = [p for p in product_ids if p not in cache]
        if missing:
            cache.update(self.store.get_many(missing))
        return {p: cache[p] for p in product_ids if p in cache}
