"""Prefix autocomplete from logged queries and catalog titles.

Matching is insensitive to case, accents, character width and spacing: the prefix and every
candidate are compared by their key (:func:`shopsearch.text.normalize.key`, re-exported here
as :func:`normalize`: NFKC, casefolded, stripped of Latin/Greek/Cyrillic diacritics and
whitespace-collapsed), the one rule that filters, facets and behaviour keys use too. The
suggestion store keeps these keys on disk, so the rule is fixed. A prefix matches a candidate
at its start or at the start of any word inside it, by *characters*, so the last typed word
may be partial (``"ugg slip"`` -> ``"ugg slippers women"``) and Chinese needs no segmentation
(``"保温"`` -> ``"保温杯 water bottle"``). A prefix that ends in a space asks for whole words
(``"ugg "`` does not suggest ``"uggs"``).

Ranking: logged queries before title phrases; within each, matches at the start before
matches at a later word, then the more popular first (a query's logged count; for a title
phrase, the number of titles that yield it), then the shorter. Title phrases are the leading
words of a title, cut at the first punctuation that ends a clause and capped at a few words,
so a shopper is offered "UGG Women's Classic Slipper", not a 200-character title. One
suggestion per normalised text; a query hides an identical title phrase.

>>> suggester = Suggester.build(
...     ["UGG Women's Classic Slipper, Chestnut, Size 7", "Slipper Socks for Women"],
...     [("ugg slippers women", 12), ("ugg boots", 30)],
... )
>>> [s.text for s in suggester.suggest("Ugg Slip")]
['ugg slippers women']
>>> for s in suggester.suggest("slip"):
...     print(s.source, s.text)
query ugg slippers women
title Slipper Socks for Women
title UGG Women's Classic Slipper
>>> suggester.add_query("UGG slippers women", 20)
>>> [s.text for s in suggester.suggest("ugg")]
['ugg slippers women', 'ugg boots', "UGG Women's Classic Slipper"]
"""

from __future__ import annotations

import heapq
import re
import threading
import unicodedata
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from shopsearch.text.normalize import collapse_spaces, fold, strip_accents
from shopsearch.text.normalize import key as normalize
from shopsearch.text.tokenize import ENGLISH_STOPWORDS

__all__ = [
    "MAX_K",
    "MAX_PREFIX_CHARS",
    "MAX_QUERY_CHARS",
    "Suggester",
    "Suggestion",
    "normalize",
    "title_phrase",
]

MAX_K = 50  # suggest() returns at most this many, whatever k asks for
MAX_PREFIX_CHARS = 200  # a longer prefix is not something a shopper typed: no suggestions
MAX_QUERY_CHARS = 100  # longer logged queries are not offered as suggestions
MAX_PHRASE_WORDS = 5  # a title phrase keeps at most this many leading words...
MAX_PHRASE_CHARS = 48  # ...and at most this many characters (whole words)
MAX_CJK_PHRASE_CHARS = 12  # a title that starts with a long unspaced CJK run is cut here

# A prefix shared by more than this many word-start entries keeps its best MAX_K candidates
# precomputed (and updated on add_query), so short prefixes ("s", "wo") do not scan thousands.
_HOT = 32
_MAX_CHAR = "\U0010ffff"  # sorts after every other code point: p + _MAX_CHAR bounds p's range
_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# Where a title's leading clause ends: most punctuation (ASCII, full-width and CJK), or a
# dash or slash with a space beside it ("Powder - 38", "Charge 3/ Charge 4").
_CLAUSE_END_RE = re.compile(
    r"[,;:|()\[\]{}<>!?\"“”–—•·、。，；：｜（）［］｛｝！？【】「」『』]|\s[-/]|[-/]\s"
)
_TRAILING_JUNK = ENGLISH_STOPWORDS | {"&", "+", "-", "/", "w", "w/", "x", "without", "no", "not"}
_INNER_WORD = "'’"  # "women's" is one word: no word starts at "s"


def _prefix_key(prefix: str) -> str:
    """Normalised prefix; a trailing space survives (the last word is complete) unless CJK."""
    folded = strip_accents(fold(prefix))
    key = collapse_spaces(folded)
    if key and folded[-1].isspace() and not _CJK_RE.match(key[-1]):
        key += " "
    return key


def _word_starts(key: str) -> Iterator[int]:
    """Offsets in a normalised text where matching may begin: 0 and every word start."""
    yield 0
    for i in range(1, len(key)):
        before = key[i - 1]
        if (
            key[i].isalnum()
            and not before.isalnum()
            and before not in _INNER_WORD
            # "1.75" and "1,000" are one number
            and not (before in ".," and key[i].isdigit() and key[i - 2 : i - 1].isdigit())
        ):
            yield i


def title_phrase(title: str) -> str:
    """The short phrase a title suggests: its leading words, cut at clause punctuation.

    >>> title_phrase("Roku Ultra | Streaming Media Player 4K/HD/HDR with Premium Headphones")
    'Roku Ultra'
    >>> title_phrase("Kids Winter Heated Vest Windproof Jacket for Boys Girls")
    'Kids Winter Heated Vest Windproof'
    >>> title_phrase("Christmas Plush Santa Hat with Faux Fur Trim")
    'Christmas Plush Santa Hat'
    >>> title_phrase("保温杯大容量316不锈钢男女学生便携水杯，500ml")
    '保温杯大容量316不锈钢'
    """
    text = unicodedata.normalize("NFC", title)
    match = _CLAUSE_END_RE.search(text)
    words = (text[: match.start()] if match else text).split()[:MAX_PHRASE_WORDS]
    for i, word in enumerate(words):
        if _CJK_RE.match(word) and len(word) > MAX_CJK_PHRASE_CHARS:
            # unspaced Chinese/Japanese: keep the head of the run and end the phrase there
            words[i:] = [word[:MAX_CJK_PHRASE_CHARS]]
            break
    if words and len(words[0]) > MAX_PHRASE_CHARS:
        return ""  # one endless "word" (a part number, a URL): no phrase
    while words and len(" ".join(words)) > MAX_PHRASE_CHARS:
        words.pop()
    while words and (
        words[-1].casefold() in _TRAILING_JUNK or not any(c.isalnum() for c in words[-1])
    ):
        words.pop()
    return " ".join(words)


@dataclass(frozen=True)
class Suggestion:
    """One completion for a typed prefix.

    ``source`` is ``"query"`` (a logged query) or ``"title"`` (a phrase from a product title).
    ``score`` is higher for better suggestions and decreases down a result list: its integer
    part is the tier (3 query matched at its start, 2 query matched at a later word, 1 title
    phrase at its start, 0 title phrase at a later word) and its fraction ``w / (w + 1)``
    grows with popularity ``w`` (the query's count, or the number of titles with the phrase).
    """

    text: str
    source: str
    score: float


class _PrefixIndex:
    """Texts findable by any prefix of their word-start suffixes, best first.

    Every normalised text contributes one entry per word start (``"ugg slippers women"`` ->
    ``"ugg slippers women "``, ``"slippers women "``, ``"women "``; the trailing space marks
    the end) to one sorted list, so the entries a prefix matches are a contiguous range found
    with :func:`bisect`. Small ranges are ranked on the fly; ranges of more than ``_HOT``
    entries keep their best ``MAX_K`` texts in ``_top``, updated exactly on :meth:`add`
    (weights only grow, so a text outside a top list can only enter it when its own weight
    grows). Not thread-safe: :class:`Suggester` locks around it.
    """

    def __init__(self) -> None:
        self.texts: list[str] = []  # display text, by item id
        self.keys: list[str] = []  # normalised text, by item id
        self.weights: list[int] = []  # popularity, by item id
        self._ids: dict[str, int] = {}  # normalised text -> item id
        self._entries: list[str] = []  # sorted word-start suffixes, each ending in " "
        self._owners: list[int] = []  # item id of each entry
        self._top: dict[str, list[int]] = {}  # hot prefix -> its best item ids, best first

    @classmethod
    def bulk(cls, items: Iterable[tuple[str, int]]) -> _PrefixIndex:
        """An index over ``(display text, weight)`` pairs; equal normalised texts add up."""
        index = cls()
        for text, weight in items:
            index._upsert(text, normalize(text), weight)
        pairs = sorted(
            (key[i:] + " ", item) for item, key in enumerate(index.keys) for i in _word_starts(key)
        )
        index._entries = [entry for entry, _ in pairs]
        index._owners = [item for _, item in pairs]
        index._warm()
        return index

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, text: str, weight: int) -> None:
        """Add ``weight`` to a text's popularity, inserting the text if it is new."""
        key = normalize(text)
        if not key:
            return
        n = len(self.keys)
        item = self._upsert(text, key, weight)
        if item == n:  # new: O(log n) search + one list insert per word start
            for i in _word_starts(key):
                at = bisect_right(self._entries, key[i:] + " ")
                self._entries.insert(at, key[i:] + " ")
                self._owners.insert(at, item)
        for prefix in self._hot_prefixes(key):
            top = self._top[prefix]
            if item in top:
                top.remove(item)
            insort(top, item, key=partial(self._rank, prefix))
            del top[MAX_K:]

    def remove(self, text: str) -> bool:
        """Forget a text (whatever its weight); ``False`` if it was not there. O(n) list
        deletions and a recount of the top lists it was in: for rare, admin-driven use."""
        key = normalize(text)
        item = self._ids.pop(key, None)
        if item is None:
            return False
        for i in _word_starts(key):
            entry = key[i:] + " "
            lo = bisect_left(self._entries, entry)
            hi = bisect_right(self._entries, entry, lo)
            for j in range(lo, hi):
                if self._owners[j] == item:
                    del self._entries[j], self._owners[j]
                    break
        self.weights[item] = 0
        for prefix in self._hot_prefixes(key):
            if item in self._top[prefix]:
                lo = bisect_left(self._entries, prefix)
                hi = bisect_left(self._entries, prefix + _MAX_CHAR, lo)
                self._top[prefix] = self._best(prefix, lo, hi, MAX_K)
        return True

    def search(self, prefix: str, k: int) -> list[tuple[int, int]]:
        """Up to ``k`` (``k <= MAX_K``) best ``(item id, tier)`` for a normalised prefix."""
        lo = bisect_left(self._entries, prefix)
        hi = bisect_left(self._entries, prefix + _MAX_CHAR, lo)
        if hi - lo > _HOT:
            top = self._top.get(prefix)
            if top is None:  # only for prefixes that grew hot through add()
                top = self._top[prefix] = self._best(prefix, lo, hi, MAX_K)
        else:
            top = self._best(prefix, lo, hi, k)
        return [(item, self._tier(prefix, item)) for item in top[:k]]

    def _upsert(self, text: str, key: str, weight: int) -> int:
        if not key:  # e.g. a lone combining accent
            return -1
        item = self._ids.get(key)
        if item is None:
            item = self._ids[key] = len(self.keys)
            # shown as given (NFC, spaces collapsed): "Air Force 1 ´07" keeps its accent
            self.texts.append(collapse_spaces(unicodedata.normalize("NFC", text)))
            self.keys.append(key)
            self.weights.append(weight)
        else:
            self.weights[item] += weight
        return item

    def _tier(self, prefix: str, item: int) -> int:
        """0 when ``prefix`` matches at the start of the text, else 1 (at a later word)."""
        key = self.keys[item]
        return 0 if key.startswith(prefix) or key + " " == prefix else 1

    def _rank(self, prefix: str, item: int) -> tuple[int, int, int, str]:
        key = self.keys[item]
        return (self._tier(prefix, item), -self.weights[item], len(key), key)

    def _best(self, prefix: str, lo: int, hi: int, k: int) -> list[int]:
        items = set(self._owners[lo:hi])
        return heapq.nsmallest(k, items, key=lambda item: self._rank(prefix, item))

    def _hot_prefixes(self, key: str) -> set[str]:
        """The hot prefixes that match ``key`` (their top lists may need it)."""
        if not self._top:
            return set()
        found: set[str] = set()
        for i in _word_starts(key):
            suffix = key[i:] + " "
            found.update(suffix[:d] for d in range(1, len(suffix) + 1) if suffix[:d] in self._top)
        return found

    def _warm(self) -> None:
        """Precompute the top list of every prefix whose range exceeds ``_HOT`` entries."""
        entries = self._entries
        stack = [("", 0, len(entries))]
        while stack:
            parent, lo, hi = stack.pop()
            depth = len(parent) + 1
            i = lo
            while i < hi:
                prefix = entries[i][:depth]
                if len(prefix) < depth:  # entries equal to the parent prefix itself
                    i = bisect_right(entries, prefix, i, hi)
                    continue
                j = bisect_left(entries, prefix + _MAX_CHAR, i, hi)
                if j - i > _HOT:
                    self._top[prefix] = self._best(prefix, i, j, MAX_K)
                    stack.append((prefix, i, j))
                i = j


class Suggester:
    """Autocomplete over logged queries and catalog title phrases; see the module docstring.

    Build once from the catalog and the query log, then :meth:`suggest` per keystroke and
    :meth:`add_query` per search. Safe to share between threads: one lock guards both calls
    (a suggest takes tens of microseconds on a 6,764-product catalog).

    >>> suggester = Suggester.build(["Stanley Quencher Tumbler 40 oz"], [("stanley cup", 3)])
    >>> suggester.suggest("STAN", k=1)
    [Suggestion(text='stanley cup', source='query', score=3.75)]
    """

    def __init__(self, titles: _PrefixIndex, queries: _PrefixIndex) -> None:
        self._titles = titles
        self._queries = queries
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Suggester({len(self._queries):,} queries, {len(self._titles):,} title phrases)"

    @classmethod
    def build(cls, titles: Iterable[str], queries: Iterable[tuple[str, int]] = ()) -> Suggester:
        """Index the phrases of ``titles`` and the ``(query, count)`` pairs of a query log.

        Blank texts and queries over ``MAX_QUERY_CHARS`` characters are skipped; counts of
        equal (normalised) queries add up. Raises ``ValueError`` for a count below 1.
        """
        logged = []
        for text, count in queries:
            _check_count(count)
            if _suggestable(text):
                logged.append((text, count))
        phrases = (title_phrase(t) for t in titles if t)
        return cls(
            _PrefixIndex.bulk((phrase, 1) for phrase in phrases if phrase.strip()),
            _PrefixIndex.bulk(logged),
        )

    def suggest(self, prefix: str, k: int = 8) -> list[Suggestion]:
        """The best ``k`` (at most ``MAX_K``) completions of ``prefix``, best first.

        A blank prefix, one over ``MAX_PREFIX_CHARS`` characters, or ``k < 1`` gives ``[]``.
        """
        if k < 1 or len(prefix) > MAX_PREFIX_CHARS:
            return []
        k = min(k, MAX_K)
        key = _prefix_key(prefix)
        if not key:
            return []
        with self._lock:
            queries = self._queries.search(key, k)
            out = [_suggestion(self._queries, item, "query", 3 - tier) for item, tier in queries]
            if len(out) < k:
                # a query hides the identical title phrase; k candidates always suffice
                seen = {self._queries.keys[item] for item, _ in queries}
                for item, tier in self._titles.search(key, k):
                    if self._titles.keys[item] not in seen:
                        out.append(_suggestion(self._titles, item, "title", 1 - tier))
                        if len(out) == k:
                            break
        return out

    def add_query(self, text: str, count: int = 1) -> None:
        """Log ``count`` more searches for ``text`` (blank or over-long texts are ignored).

        O(log n) search plus a list insert per word of a new query, and an O(``MAX_K``)
        update of each precomputed top list the query belongs to. Raises ``ValueError`` for
        a count below 1.
        """
        _check_count(count)
        if _suggestable(text):
            with self._lock:
                self._queries.add(text, count)

    def remove_query(self, text: str) -> bool:
        """Stop suggesting the logged query ``text`` (compared normalised); ``False`` if it
        was not suggested. Title phrases stay.

        >>> suggester = Suggester.build([], [("free money", 40), ("free shipping mug", 2)])
        >>> suggester.remove_query("FREE  Money")
        True
        >>> [s.text for s in suggester.suggest("free")]
        ['free shipping mug']
        """
        with self._lock:
            return self._queries.remove(text)


def _check_count(count: int) -> None:
    if count < 1:
        raise ValueError(f"a query count must be at least 1, got {count!r}")


def _suggestable(text: str) -> bool:
    return len(text) <= MAX_QUERY_CHARS  # blank texts are dropped by the index


def _suggestion(index: _PrefixIndex, item: int, source: str, tier: int) -> Suggestion:
    weight = index.weights[item]
    return Suggestion(index.texts[item], source, tier + weight / (weight + 1))
