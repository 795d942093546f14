from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsearch.suggest import (
    MAX_K,
    MAX_PREFIX_CHARS,
    Suggester,
    Suggestion,
    normalize,
    title_phrase,
)

TITLES = [
    "UGG Women's Classic Short II Boot, Chestnut, 7",
    "UGG Women's Classic Short II Boot, Black, 8",
    "UGG Men's Scuff Slipper - Brown, 10",
    "Slipper Socks for Women, Non Slip, 2 Pairs",
    "Café Bustelo Espresso Style Dark Roast Ground Coffee, 10 Ounces",
    "Stanley Quencher H2.0 FlowState Tumbler 40 oz | Stainless Steel",
    "保温杯 316不锈钢 大容量，500ml",
]
QUERIES = [
    ("ugg slippers women", 40),
    ("ugg boots", 90),
    ("ugg slippers men", 15),
    ("stanley cup", 25),
    ("保温杯 water bottle", 3),
]


@pytest.fixture()
def suggester() -> Suggester:
    return Suggester.build(TITLES, QUERIES)


def texts(results: list[Suggestion]) -> list[str]:
    return [s.text for s in results]


def test_queries_ranked_by_popularity(suggester: Suggester) -> None:
    queries = [s for s in suggester.suggest("ugg") if s.source == "query"]
    assert texts(queries) == ["ugg boots", "ugg slippers women", "ugg slippers men"]


def test_queries_come_before_title_phrases_and_scores_decrease(suggester: Suggester) -> None:
    results = suggester.suggest("ugg", k=10)
    sources = [s.source for s in results]
    assert sources == ["query"] * 3 + ["title"] * (len(results) - 3)
    assert "UGG Women's Classic Short II" in texts(results)  # five words at most
    scores = [s.score for s in results]
    assert scores == sorted(scores, reverse=True)


def test_last_word_may_be_partial(suggester: Suggester) -> None:
    assert texts(suggester.suggest("ugg slip")) == ["ugg slippers women", "ugg slippers men"]
    assert texts(suggester.suggest("ugg slippers w")) == ["ugg slippers women"]


def test_trailing_space_completes_the_last_word() -> None:
    suggester = Suggester.build([], [("uggs", 9), ("ugg boots", 1)])
    assert texts(suggester.suggest("ugg")) == ["uggs", "ugg boots"]
    assert texts(suggester.suggest("ugg ")) == ["ugg boots"]


def test_match_at_a_word_start_inside_after_matches_at_the_start(suggester: Suggester) -> None:
    results = suggester.suggest("slip", k=10)
    assert texts(results) == [
        "ugg slippers women",  # queries first: both match at "slippers", more popular first
        "ugg slippers men",
        "Slipper Socks for Women",  # title phrase matching at its start
        "UGG Men's Scuff Slipper",  # title phrase matching at a later word
    ]
    assert suggester.suggest("lipper") == []  # never in the middle of a word


def test_case_accent_width_and_space_insensitive(suggester: Suggester) -> None:
    expected = texts(suggester.suggest("ugg slip"))
    for prefix in ("UGG SLIP", "  Ugg   sLiP", "ＵＧＧ ｓｌｉｐ", "úgg slíp", "ugg\tslip"):
        assert texts(suggester.suggest(prefix)) == expected, prefix
    assert texts(suggester.suggest("cafe bus")) == ["Café Bustelo Espresso Style Dark"]
    assert texts(suggester.suggest("CAFÉ")) == ["Café Bustelo Espresso Style Dark"]


def test_chinese_and_mixed_prefixes(suggester: Suggester) -> None:
    assert texts(suggester.suggest("保温")) == ["保温杯 water bottle", "保温杯 316不锈钢 大容量"]
    assert texts(suggester.suggest("保温杯 wa")) == ["保温杯 water bottle"]
    assert texts(suggester.suggest("316不锈")) == ["保温杯 316不锈钢 大容量"]  # word inside
    assert texts(suggester.suggest("water b")) == ["保温杯 water bottle"]


def test_duplicates_collapse_to_one_suggestion() -> None:
    suggester = Suggester.build(
        ["Kitchen Towels, 4 Pack", "KITCHEN  TOWELS - Cotton", "Kitchen Towels Set"],
        [("kitchen towels", 2), ("Kitchen Towels", 3), ("ｋｉｔｃｈｅｎ towels", 1)],
    )
    results = suggester.suggest("kitchen", k=10)
    assert [(s.text, s.source) for s in results] == [
        ("kitchen towels", "query"),  # hides the identical title phrase
        ("Kitchen Towels Set", "title"),
    ]
    assert results[0].score == pytest.approx(3 + 6 / 7)  # counts add up: 2 + 3 + 1


def test_blank_long_and_degenerate_requests(suggester: Suggester) -> None:
    assert suggester.suggest("") == []
    assert suggester.suggest("   \t ") == []
    assert suggester.suggest("\u0301") == []  # a lone accent normalises to nothing
    assert suggester.suggest("u" * (MAX_PREFIX_CHARS + 1)) == []
    assert suggester.suggest("ugg", k=0) == []
    assert suggester.suggest("ugg", k=-3) == []
    assert suggester.suggest("no such product") == []


def test_k_is_clipped() -> None:
    suggester = Suggester.build([], [(f"sock {i}", i + 1) for i in range(200)])
    assert len(suggester.suggest("sock", k=10_000)) == MAX_K
    assert texts(suggester.suggest("sock", k=2)) == ["sock 199", "sock 198"]


def test_add_query_updates_ranking(suggester: Suggester) -> None:
    suggester.add_query("UGG Slippers Men", 30)  # 15 + 30 = 45 overtakes 40
    assert texts(suggester.suggest("ugg slip")) == ["ugg slippers men", "ugg slippers women"]
    suggester.add_query("ugg slides")  # new query, least popular
    assert texts(suggester.suggest("ugg sl"))[-1] == "ugg slides"
    suggester.add_query("   ")  # ignored
    suggester.add_query("x" * 500)  # too long to be a suggestion: ignored
    assert suggester.suggest("xxx") == []
    with pytest.raises(ValueError):
        suggester.add_query("ugg", 0)
    with pytest.raises(ValueError):
        Suggester.build([], [("ugg", -1)])


def test_add_query_keeps_hot_prefix_lists_exact() -> None:
    # 400 queries under "s" make its range hot (precomputed top list); later adds must
    # still reorder it and new queries must enter it.
    suggester = Suggester.build([], [(f"shirt {i:03d}", 1) for i in range(400)])
    suggester.add_query("shirt 123", 5)
    suggester.add_query("socks", 3)
    suggester.add_query("sandals", 2)
    assert texts(suggester.suggest("s", k=4)) == ["shirt 123", "socks", "sandals", "shirt 000"]
    for i in range(400, 600):  # "sw" grows hot through add_query alone
        suggester.add_query(f"sweater {i}", 1 + i % 7)
    top = suggester.suggest("sw", k=3)
    assert [s.score for s in top] == [pytest.approx(3 + 7 / 8)] * 3
    suggester.add_query("sweater 401", 100)
    assert texts(suggester.suggest("sw", k=1)) == ["sweater 401"]


def test_matches_brute_force_reference_after_many_adds() -> None:
    """Hot (precomputed) and cold (scanned) prefixes against a brute-force ranking."""
    import random

    rng = random.Random(7)
    words = ["sa", "sab", "sock", "so", "b", "ba", "bag", "s"]

    def phrase() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))

    counts: dict[str, int] = {}
    initial = [(phrase(), rng.randint(1, 9)) for _ in range(300)]
    for text, count in initial:
        counts[text] = counts.get(text, 0) + count
    suggester = Suggester.build([], initial)
    prefixes = sorted({p[:n] for p in counts for n in range(1, 6)})
    for round_ in range(3):
        for _ in range(150):
            text, count = phrase(), rng.randint(1, 20)
            suggester.add_query(text, count)
            counts[text] = counts.get(text, 0) + count
        for prefix in prefixes:
            starts = {q: 0 if (q + " ").startswith(prefix) else 1 for q in counts}
            matching = [q for q in counts if any(w.startswith(prefix) for w in _suffixes(q))]
            ranked = sorted(matching, key=lambda q: (starts[q], -counts[q], len(q), q))
            assert texts(suggester.suggest(prefix, k=MAX_K)) == ranked[:MAX_K], (round_, prefix)


def _suffixes(text: str) -> list[str]:
    parts = text.split(" ")
    return [" ".join(parts[i:]) + " " for i in range(len(parts))]


def test_concurrent_add_query_and_suggest() -> None:
    suggester = Suggester.build(TITLES, QUERIES)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(seed: int) -> None:
        try:
            for i in range(1_500):
                suggester.add_query(f"ugg query {seed} {i % 300}", 1 + i % 3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                for prefix in ("u", "ugg", "ugg q", "ugg query 1", "slip", "保"):
                    results = suggester.suggest(prefix, k=20)
                    assert len({normalize(s.text) for s in results}) == len(results)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors
    assert len(suggester.suggest("ugg query", k=MAX_K)) == MAX_K


def test_title_phrases_are_short_leading_words() -> None:
    assert title_phrase("UGG Men's Scuff Slipper - Brown, 10") == "UGG Men's Scuff Slipper"
    assert title_phrase("Roku Ultra | Streaming Media Player") == "Roku Ultra"
    assert title_phrase("Mug w/ Lid and Straw") == "Mug"
    assert title_phrase("Gift Set for Kids and Teens") == "Gift Set for Kids"
    assert title_phrase("B0" + "X" * 80) == ""
    long_title = " ".join(["Extraordinarily"] * 40)
    assert len(title_phrase(long_title)) <= 48


def test_bundled_catalog() -> None:
    from shopsearch.catalog.loaders import load_catalog
    from shopsearch.datasets import esci_us_products

    products = load_catalog(esci_us_products()).products
    suggester = Suggester.build(p.title for p in products)
    results = suggester.suggest("ugg", k=8)
    assert len(results) == 8
    assert all(s.source == "title" and normalize(s.text).startswith("ugg") for s in results)
    assert all(len(s.text) <= 48 for s in results)
    towels = suggester.suggest("Kitchen Tow")
    assert towels and all(_matches(s.text, "kitchen tow") for s in towels)


# --- property: every suggestion matches, none repeats, at most k, popularity respected ---

_ALPHABET = "abcAB áÁéｂ-'保温杯 "
_texts = st.text(alphabet=_ALPHABET, max_size=12)


def _matches(text: str, prefix: str) -> bool:
    key = normalize(text)
    return any(
        key[i:].startswith(prefix) for i in range(len(key)) if i == 0 or not key[i - 1].isalnum()
    )


@settings(max_examples=200, deadline=None)
@given(
    titles=st.lists(_texts, max_size=12),
    queries=st.lists(st.tuples(_texts, st.integers(1, 5)), max_size=12),
    prefix=_texts.map(str.rstrip),
    k=st.integers(1, 12),
)
def test_suggestions_match_are_unique_and_ranked(
    titles: list[str], queries: list[tuple[str, int]], prefix: str, k: int
) -> None:
    results = Suggester.build(titles, queries).suggest(prefix, k=k)
    want = normalize(prefix)
    if not want:
        assert results == []
        return
    keys = [normalize(s.text) for s in results]
    assert len(results) <= k
    assert len(set(keys)) == len(keys)
    assert all(_matches(s.text, want) for s in results)
    assert [s.score for s in results] == sorted((s.score for s in results), reverse=True)
    # against a brute-force reference: queries matching at their start, most popular first
    counts: dict[str, int] = {}
    for text, count in queries:
        if normalize(text):
            counts[normalize(text)] = counts.get(normalize(text), 0) + count
    at_start = sorted((c for q, c in counts.items() if q.startswith(want)), reverse=True)
    got = [
        counts[key]
        for s, key in zip(results, keys, strict=True)
        if s.source == "query" and key.startswith(want)
    ]
    assert got[: len(at_start[:k])] == at_start[:k]


def test_removing_a_query_updates_hot_prefixes():
    """Prefixes shared by many texts keep precomputed top lists: a removal must leave them."""
    many = [(f"shoe model {i:03d}", 1 + i % 7) for i in range(200)]
    suggester = Suggester.build([], [*many, ("shoe cleaner", 1_000)])
    assert suggester.suggest("s", 1)[0].text == "shoe cleaner"
    assert suggester.remove_query("Shoe  CLEANER") and not suggester.remove_query("shoe cleaner")
    for prefix in ("s", "sh", "shoe", "shoe c", "cleaner"):
        assert "shoe cleaner" not in [s.text for s in suggester.suggest(prefix, MAX_K)]
    rebuilt = Suggester.build([], many)
    for prefix in ("s", "shoe m", "model 1"):
        assert suggester.suggest(prefix, 20) == rebuilt.suggest(prefix, 20)
    suggester.add_query("shoe cleaner", 2)  # may come back when logged again
    assert "shoe cleaner" in [s.text for s in suggester.suggest("shoe c", 5)]
