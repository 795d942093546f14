"""Tokenization for lexical retrieval: English stemming, stopwords and Chinese segmentation.

Text is NFKC-normalized and casefolded (:func:`shopsearch.text.normalize.fold`, the package's
shared rule; accents are kept, unlike the matching key), then split into runs:

* runs of CJK ideographs are segmented with jieba's search mode (words *and* their sub-words,
  e.g. ``连衣裙`` -> ``连衣``, ``衣裙``, ``连衣裙``), which favours recall;
* everything else is split into word tokens (``\\w`` without ``_``), so accented Latin,
  Cyrillic, Greek and digits all work. A number keeps its decimal part (``1.75``, ``2,5``);
  ``3x5`` stays one token; punctuation is dropped (``w/`` -> ``w``).

Latin-script words that are not pure numbers are Snowball-stemmed (English), and English
stopwords are dropped, except negations (``no``, ``not``, ``without``...) which change the
meaning of product queries such as "without straw".

>>> Tokenizer().tokenize("Running Shoes for Women")
['run', 'shoe', 'women']
>>> Tokenizer(TokenizerConfig(stem=False)).tokenize("Tumbler without straw, 1.75 L")
['tumbler', 'without', 'straw', '1.75', 'l']
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import Stemmer

from shopsearch.text.normalize import fold

__all__ = ["CJK_CHARS", "ENGLISH_STOPWORDS", "Tokenizer", "TokenizerConfig", "jieba_module"]

# Lucene's English stop set plus common pronouns, auxiliaries and possessive/contraction
# leftovers ("women's" -> "women", "s"). Negations ("no", "not", "nor", "without", "never",
# "none") are deliberately absent: they matter for product queries.
ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """
    a an and are as at be but by for if in into is it of on or such that the their then there
    these they this to was will with
    i me my we our ours you your yours he him his she her hers its them what which who whom
    am were been being have has had do does did from so than too very can just should would
    could also s t d ll m re ve
    """.split()
)

#: the CJK ideograph ranges, for a regular expression character class
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
_CJK_RUN_RE = re.compile(rf"([{CJK_CHARS}]+)")
# A word is a run of letters/digits (no "_", no CJK) and may continue with decimal groups
# after a digit ("1.75", "1,000").
_WORD_RE = re.compile(rf"[^\W_{CJK_CHARS}]+(?:(?<=[0-9])[.,][0-9]+)*")
# Latin script after casefolding: ASCII letters/digits, Latin-1 letters, Latin Extended-A/B
# and Latin Extended Additional (Vietnamese).
_LATIN_RE = re.compile(r"[0-9a-z\u00df-\u00f6\u00f8-\u024f\u1e00-\u1eff]+")

_CACHE_LIMIT = 200_000  # entries per cache; cleared when full (bounded memory in servers)

_jieba_lock = threading.Lock()
_jieba_module: Any = None


def jieba_module() -> Any:
    """Import jieba once, silencing its dictionary-loading messages on stderr."""
    global _jieba_module
    if _jieba_module is None:
        with _jieba_lock:
            if _jieba_module is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_module = jieba
    return _jieba_module


class _StemCache(dict[str, str]):
    """word -> index term ("" for a stopword), computed on first lookup."""

    def __init__(self, stemmer: Any, stopwords: frozenset[str]) -> None:
        super().__init__()
        self._stemmer = stemmer
        self._stopwords = stopwords

    def __missing__(self, word: str) -> str:
        if word in self._stopwords:
            term = ""
        elif self._stemmer is not None and _LATIN_RE.fullmatch(word) and not word.isdigit():
            term = self._stemmer.stemWord(word)
        else:
            term = word
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[word] = term
        return term


@dataclass(frozen=True)
class TokenizerConfig:
    """How text becomes tokens; saved beside every lexical index.

    ``stem``: English Snowball stemming of Latin-script words. ``stopwords``: drop English
    stopwords (negations kept). ``cjk``: segment Chinese with jieba; when false, each
    ideograph is its own token (no jieba needed).
    """

    stem: bool = True
    stopwords: bool = True
    cjk: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerConfig:
        return cls(**data)


class Tokenizer:
    """Turns product text and queries into index terms.

    The same tokenizer must be used to index and to query; :class:`BM25Index` saves its
    config. Instances cache stems and Chinese segmentations, and are safe to share between
    threads.

    >>> tok = Tokenizer()
    >>> tok.tokenize("耐克 running shoes 男款")
    ['耐克', 'run', 'shoe', '男款']
    >>> tok.tokenize("  ...  ")
    []
    """

    def __init__(self, config: TokenizerConfig = TokenizerConfig()) -> None:  # noqa: B008
        self.config = config
        self._stems = _StemCache(
            Stemmer.Stemmer("english") if config.stem else None,
            ENGLISH_STOPWORDS if config.stopwords else frozenset(),
        )
        self._segments: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"Tokenizer({self.config!r})"

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text`` in order (duplicates kept)."""
        if not text:
            return []
        text = fold(text)
        if text.isascii() or _CJK_RUN_RE.search(text) is None:
            return self._words(text)
        out: list[str] = []
        # split() with a capturing group alternates: non-CJK text, CJK run, non-CJK text...
        for i, part in enumerate(_CJK_RUN_RE.split(text)):
            if i % 2:
                out.extend(self._segment(part))
            elif part:
                out.extend(self._words(part))
        return out

    def tokenize_batch(self, texts: Iterable[str]) -> list[list[str]]:
        """:meth:`tokenize` for each text."""
        return [self.tokenize(text) for text in texts]

    def _words(self, text: str) -> list[str]:
        # the cache maps each word to its stem, or to "" for stopwords (filtered out here)
        return [t for t in map(self._stems.__getitem__, _WORD_RE.findall(text)) if t]

    def _segment(self, run: str) -> list[str]:
        if not self.config.cjk:
            return list(run)
        words = self._segments.get(run)
        if words is None:
            words = [w for w in jieba_module().lcut_for_search(run) if w.strip()]
            if len(self._segments) >= _CACHE_LIMIT:
                self._segments.clear()
            self._segments[run] = words
        return list(words)
