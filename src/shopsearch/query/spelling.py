"""Spelling correction against the catalog's own words (SymSpell, ``symspellpy``).

A query word is corrected only when all of these hold:

* it is made of letters only, at least ``min_letters`` of them (numbers, sizes, model
  numbers and SKUs such as "rtx 3080", "airpods 2" or an ASIN are never touched);
* no product's brand contains it ("trp spyre" stays as typed when the catalog sells TRP);
* the catalog does not contain it -- or contains it in at most ``rare`` products while a
  word one edit away is in ``rare_ratio`` times as many (catalogs have typos too:
  "cleaing" in one title, "cleaning" in 122) -- and it is not a common English word
  (symspellpy's English frequency list, words seen at least ``common_english`` times);
* a catalog word lies within edit distance 1 (up to 8 letters) or 2 (9 letters or more),
  as Typesense and Meilisearch allow; of the closest ones, the one in most products wins.

The corrector follows the index's vocabulary as it changes (words added by writes are
added; words whose products are all gone are no longer proposed).

>>> from shopsearch.text.vocabulary import Vocabulary
>>> speller = Speller()
>>> vocab = Vocabulary({"water": 9, "bottle": 7, "stainless": 4, "spyre": 1}, {"spyre": 1})
>>> text, corrections = speller.correct("stainles watter bottel spyre 3080", vocab)
>>> text
'stainless water bottle spyre 3080'
>>> corrections
(('stainles', 'stainless'), ('watter', 'water'), ('bottel', 'bottle'))
"""

from __future__ import annotations

import importlib.resources
import re
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache

from shopsearch.text.normalize import key
from shopsearch.text.tokenize import ENGLISH_STOPWORDS
from shopsearch.text.vocabulary import Vocabulary

__all__ = ["Speller"]

MIN_LETTERS = 4
TWO_EDITS_FROM = 9
COMMON_ENGLISH = 1_000_000
RARE = 2
RARE_RATIO = 20
MAX_CANDIDATES = 10  # of the closest ones, checked against the query's other words
MAX_CONTEXT = 4  # other words of the query (catalog words) they are checked with

Together = Callable[[Sequence[str]], int]
#: words of the query language itself (negations, price words), known whatever the catalog
QUERY_WORDS = {"without": 1, "included": 1, "dollars": 1, "between": 1, "cheaper": 1}
_WORD_RE = re.compile(r"[^\W_]+")


@lru_cache(maxsize=4)
def _english_words(min_count: int) -> frozenset[str]:
    """English words seen at least ``min_count`` times (symspellpy's frequency list of
    82,765 words with their counts in a web corpus; it holds common misspellings too, with
    small counts)."""
    path = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    with path.open(encoding="utf-8") as lines:
        pairs = (line.split() for line in lines)
        return frozenset(p[0] for p in pairs if len(p) == 2 and int(p[1]) >= min_count)


class Speller:
    """Corrects query words against a :class:`Vocabulary` (see the module docstring)."""

    def __init__(
        self,
        min_letters: int = MIN_LETTERS,
        common_english: int = COMMON_ENGLISH,
        rare: int = RARE,
        rare_ratio: float = RARE_RATIO,
    ) -> None:
        self.min_letters = min_letters
        self.common_english = common_english
        self.rare = rare
        self.rare_ratio = rare_ratio
        self._lock = threading.Lock()
        self._symspell = None
        self._known: dict[str, int] = {}  # what the SymSpell dictionary holds
        self._vocabulary: Vocabulary | None = None

    def _sync(self, vocabulary: Vocabulary):  # noqa: ANN202 - symspellpy has no types
        """The SymSpell dictionary, with every word of ``vocabulary`` (added once)."""
        with self._lock:
            if self._vocabulary is vocabulary and self._symspell is not None:
                return self._symspell
            if self._symspell is None:
                from symspellpy import SymSpell

                self._symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
                for word, count in QUERY_WORDS.items():
                    self._symspell.create_dictionary_entry(word, count)
            for word, count in vocabulary.items():
                if word in QUERY_WORDS:
                    continue
                if len(word) >= 3 and self._known.get(word, 0) < count:
                    self._symspell.create_dictionary_entry(word, count - self._known.get(word, 0))
                    self._known[word] = count
            self._vocabulary = vocabulary
            return self._symspell

    def correct(
        self,
        text: str,
        vocabulary: Vocabulary,
        together: Together | None = None,
        known: frozenset[str] = frozenset(),
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        """``(text with corrected words, ((typed, correction), ...))``.

        ``together(words)``: how many products contain all ``words``. With it, of the
        closest candidates the one found most often with all the query's other catalog
        words wins, else the one found most often beside each of them ("audible bools"
        -> "books", not the more common "tools"); without it, or when none is found with
        them, the one in most products. ``known``: words never corrected (those of the
        synonym rules, e.g. "tshirt").
        """
        from symspellpy import Verbosity

        corrections: list[tuple[str, str]] = []
        symspell = None
        english = None
        out, pos = [], 0
        for m in _WORD_RE.finditer(text):
            word = m.group(0)
            folded = key(word)
            if len(folded) < self.min_letters or not folded.isalpha() or folded in known:
                continue
            count = vocabulary.count(folded)
            if count > self.rare or vocabulary.is_brand(folded):
                continue
            english = english if english is not None else _english_words(self.common_english)
            if folded in english:
                continue
            symspell = symspell if symspell is not None else self._sync(vocabulary)
            distance = 2 if len(folded) >= TWO_EDITS_FROM else 1
            if count:  # a rare catalog word: only a much more common one a letter away
                distance, least = 1, count * self.rare_ratio
            else:
                least = 1
            found = [
                s
                for s in symspell.lookup(folded, Verbosity.ALL, max_edit_distance=distance)
                if s.distance > 0
                and _count(vocabulary, s.term) >= least
                and s.term not in ENGLISH_STOPWORDS
            ]
            if not found:
                continue
            closest = min(s.distance for s in found)
            found = [s for s in found if s.distance == closest]
            best = max(found, key=lambda s: (_count(vocabulary, s.term), -len(s.term), s.term))
            if together is not None and len(found) > 1:
                others = [
                    k for k in map(key, _WORD_RE.findall(text)) if k != folded and k in vocabulary
                ][:MAX_CONTEXT]
                if others:
                    found.sort(key=lambda s: (-_count(vocabulary, s.term), s.term))
                    best = _in_context(found[:MAX_CANDIDATES], others, together) or best
            out.append(text[pos : m.start()])
            out.append(best.term)
            pos = m.end()
            corrections.append((word, best.term))
        if not corrections:
            return text, ()
        out.append(text[pos:])
        return "".join(out), tuple(corrections)


def _count(vocabulary: Vocabulary, word: str) -> int:
    return vocabulary.count(word) or QUERY_WORDS.get(word, 0)


def _in_context(found: list, others: list[str], together: Together):  # noqa: ANN202
    """The suggestion found most often with all ``others``, else beside each of them;
    ``None`` when none is found with any."""
    for score in (
        lambda s: together([*others, s.term]),
        lambda s: sum(together([o, s.term]) for o in others),
    ):
        scored = [(score(s), s) for s in found]
        n, best = max(scored, key=lambda pair: pair[0])
        if n > 0:
            return best
        if len(others) == 1:
            break
    return None
