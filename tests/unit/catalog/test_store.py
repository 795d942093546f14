from __future__ import annotations

import pytest

from shopsearch.catalog.schema import Product
from shopsearch.catalog.store import CatalogStore


def product(pid: str, title: str = "t") -> Product:
    return Product(pid, title, category=("A", "B"), price=1.5, attributes={"x": [1, "二"]})


def test_commit_roundtrip_and_wal(tmp_path):
    with CatalogStore(tmp_path / "c.sqlite") as store:
        store.commit(upserts=[product("1"), product("2")], meta={"snapshot": "00000001"})
        assert store.count() == 2
        assert store.get("1") == product("1")
        assert store.get("missing") is None
        assert store.meta("snapshot") == "00000001"
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upsert_replaces_and_delete_removes(tmp_path):
    with CatalogStore(tmp_path / "c.sqlite") as store:
        store.commit(upserts=[product("1"), product("2")])
        store.commit(upserts=[product("1", "new")], deletes=["2", "unknown"])
        assert [p.title for p in store.iter_products()] == ["new"]


def test_get_many_crosses_chunk_boundaries(tmp_path):
    with CatalogStore(tmp_path / "c.sqlite") as store:
        store.commit(upserts=[product(str(i)) for i in range(1_200)])
        found = store.get_many([str(i) for i in range(0, 1_200, 1)] + ["nope"])
        assert len(found) == 1_200


def test_failed_commit_changes_nothing(tmp_path):
    """All or nothing: an error halfway through a commit rolls every change back."""

    def upserts():
        yield product("3")
        raise RuntimeError("crash in the middle of a write")

    with CatalogStore(tmp_path / "c.sqlite") as store:
        store.commit(upserts=[product("1")], meta={"snapshot": "a"})
        with pytest.raises(RuntimeError):
            store.commit(upserts=upserts(), deletes=["1"], meta={"snapshot": "b"}, replace_all=True)
        assert [p.id for p in store.iter_products()] == ["1"]
        assert store.meta("snapshot") == "a"


def test_readonly_store_cannot_write(tmp_path):
    CatalogStore(tmp_path / "c.sqlite").close()
    with CatalogStore(tmp_path / "c.sqlite", readonly=True) as store:
        with pytest.raises(Exception, match="readonly"):
            store.commit(upserts=[product("1")])
