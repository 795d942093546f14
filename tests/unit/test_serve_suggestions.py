"""Which served queries become suggestions (shopsearch.serve.suggestions): distinct shoppers,
a blocklist, permanent removals, shared through one SQLite file by every process."""

from __future__ import annotations

import pytest

from shopsearch.serve.suggestions import Blocklist, Cursor, SuggestionStore
from shopsearch.suggest import Suggester


@pytest.fixture
def path(tmp_path):
    return tmp_path / "suggestions.sqlite"


def follow(store: SuggestionStore, suggester: Suggester, cursor: Cursor) -> Cursor:
    """What a server does: apply the store's changes until the cursor stops moving."""
    while True:
        changes = store.changes(cursor)
        for text in changes.remove:
            suggester.remove_query(text)
        for text, weight in changes.add:
            suggester.add_query(text, weight)
        if changes.cursor == cursor:
            return cursor
        cursor = changes.cursor


def queries(suggester: Suggester, prefix: str) -> list[tuple[str, float]]:
    return [(s.text, s.score) for s in suggester.suggest(prefix, 10) if s.source == "query"]


def test_a_phrase_needs_distinct_shoppers_not_searches(path):
    store = SuggestionStore(path, min_shoppers=3)
    suggester, cursor = Suggester.build([]), Cursor()
    # 25 searches by one shopper (the poisoning of the issue), in any spelling
    store.record(
        [("Free  MONEY", "address:6.6.6.6")] * 20 + [("free money", "address:6.6.6.6")] * 5
    )
    store.record([("free money", "address:6.6.6.7")])
    cursor = follow(store, suggester, cursor)
    assert queries(suggester, "fre") == [] and store.snapshot()[0] == []
    store.record([("free money", "address:6.6.6.8")])
    cursor = follow(store, suggester, cursor)
    assert [t for t, _ in queries(suggester, "fre")] == ["Free MONEY"]  # as first typed
    assert store.snapshot()[0] == [("Free  MONEY", 3)]


def test_admitted_phrases_rank_by_shoppers(path):
    store = SuggestionStore(path, min_shoppers=2)
    suggester, cursor = Suggester.build([]), Cursor()
    store.record([("shoes red", f"user:{i}") for i in range(5)])
    store.record([("shoes blue", "user:a")] * 50 + [("shoes blue", "user:b")])
    cursor = follow(store, suggester, cursor)
    assert [t for t, _ in queries(suggester, "shoes")] == ["shoes red", "shoes blue"]
    store.record([("shoes blue", f"user:new-{i}") for i in range(6)])
    follow(store, suggester, cursor)
    assert [t for t, _ in queries(suggester, "shoes")] == ["shoes blue", "shoes red"]
    # the suggester built afresh (a restart, a reload) agrees with the one that followed
    rebuilt = Suggester.build([], store.snapshot()[0])
    assert queries(rebuilt, "shoes") == queries(suggester, "shoes")


def test_another_process_sees_admissions_and_removals(path):
    writer, reader = SuggestionStore(path, min_shoppers=2), SuggestionStore(path, min_shoppers=2)
    ours = Suggester.build([], reader.snapshot()[0])
    cursor = reader.snapshot()[1]
    writer.record([("ugg boots", "address:1.1.1.1"), ("ugg boots", "address:2.2.2.2")])
    cursor = follow(reader, ours, cursor)
    assert [t for t, _ in queries(ours, "ugg")] == ["ugg boots"]
    assert writer.remove("UGG Boots") is True and writer.remove("ugg boots") is False
    cursor = follow(reader, ours, cursor)
    assert queries(ours, "ugg") == []
    # removal is permanent: more shoppers, a new process, a rebuilt suggester
    writer.record([("ugg boots", f"address:3.3.3.{i}") for i in range(5)])
    follow(reader, ours, cursor)
    assert queries(ours, "ugg") == []
    writer.close()
    assert SuggestionStore(path, min_shoppers=2).snapshot()[0] == []
    with pytest.raises(ValueError):
        reader.remove("   ")


def test_shoppers_are_stored_hashed(path):
    store = SuggestionStore(path, min_shoppers=1)
    store.record([("mug", "user:alice@example.com"), ("mug", "address:203.0.113.7")])
    store.close()
    data = path.read_bytes() + b"".join(
        p.read_bytes() for p in path.parent.glob("suggestions.sqlite*")
    )
    assert b"alice" not in data and b"203.0.113.7" not in data


def test_blocklisted_phrases_are_never_suggested(path, tmp_path):
    listing = tmp_path / "blocklist.txt"
    listing.write_text("# words nobody should be offered\nCasino\nfree   money  # a phrase\n")
    blocklist = Blocklist.load(["viagra"], listing)
    assert len(blocklist) == 3
    store = SuggestionStore(path, min_shoppers=1, blocklist=blocklist)
    suggester = Suggester.build([])
    texts = ["online CASINO!", "cheap viagra", "free money fast", "free moneybags", "casinos"]
    store.record([(text, "user:1") for text in texts])
    follow(store, suggester, Cursor())
    found = {s.text for p in ("o", "c", "f") for s in suggester.suggest(p, 10)}
    assert found == {"free moneybags", "casinos"}  # whole words only
    assert {t for t, _ in store.snapshot()[0]} == {"free moneybags", "casinos"}


def test_over_long_and_blank_queries_are_not_recorded(path):
    store = SuggestionStore(path, min_shoppers=1)
    assert store.record([("x" * 101, "user:1"), ("   ", "user:1"), ("ok", "user:1")]) == 1
