"""Negation: "without X", "w/o X", "no X", "not X", "X not included".

:func:`find_negations` finds what the shopper does *not* want and returns the query without
it, so that neither BM25 nor the dense model matches X. :func:`mention` then tells, for one
product's text, whether it states X positively ("with straw", "straw lid") -- to be demoted --
or states its absence ("no straw", "without straw", "straw-free", "straw not included") --
which is what the shopper asked for.

Words that look negative but describe the wanted product are left alone: "non-slip",
"non-stick", "no-show" socks, "BPA free", "sugar free", "no. 2 pencil", "no 5".

The scope of a negation is the words after it up to a boundary word ("and", "or", "with",
"for", "in", ...), another negation or the end, at most ``max_words`` words that are not
stopwords; "not included" takes the words after it, or (when none follow: "X not
included") the one word before it.

>>> find_negations("toddler water bottle without straw")
('toddler water bottle', ('straw',))
>>> find_negations("lights without wiring with switch")
('lights with switch', ('wiring',))
>>> find_negations("non-slip bath mat no-show socks BPA free")
('non-slip bath mat no-show socks BPA free', ())
>>> find_negations("remote control batteries not included")
('remote control', ('batteries',))
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from shopsearch.text.tokenize import ENGLISH_STOPWORDS, Tokenizer, TokenizerConfig

__all__ = ["DEFAULT_MAX_WORDS", "find_negations", "mention", "stems"]

DEFAULT_MAX_WORDS = 2
_WORD_RE = re.compile(r"w/o|[^\W_]+(?:['\u2019][^\W_]+)?", re.IGNORECASE)
_TRIGGERS = {"without", "w/o", "no", "not", "sans"}
_BOUNDARY = {
    "and", "or", "with", "for", "in", "on", "at", "to", "by", "from", "but", "under", "over",
    "below", "above", "less", "more", "than", "that", "which", "only",
}  # fmt: skip
# "no" + these is a product feature, not a negation ("no show socks", "no slip grip")
_POSITIVE_AFTER_NO = {"show", "slip", "bake", "tie", "pull", "iron", "fly", "fuss", "spill"}
_POSITIVE_AFTER_NOT = {"only", "just", "too", "so", "very", "included"}

# product-side context: the words that say a product lacks X
_LACKS_BEFORE = {"no", "without", "not", "sans", "o"}  # "o" of "w/o"
# right after X: "straw-free", "straw free", "straw excluded"; or two words: "straw not
# included", "straw sold separately" (a word further on, e.g. "straw, BPA free", is not)
_LACKS_NEXT = {"free", "less", "exclud"}
_LACKS_NEXT_TWO = {("not", "includ"), ("sold", "separ"), ("not", "contain")}

_tokenizer = Tokenizer(TokenizerConfig(stopwords=False))


def find_negations(text: str, max_words: int = DEFAULT_MAX_WORDS) -> tuple[str, tuple[str, ...]]:
    """``(text without the negations, the negated phrases)``; the text is returned unchanged
    when removing the negations would leave nothing."""
    matches = list(_WORD_RE.finditer(text))
    words = [m.group(0).lower().replace("\u2019", "'") for m in matches]
    drop: set[int] = set()
    phrases: list[str] = []
    i = 0
    while i < len(words):
        scope = _scope(text, matches, words, i, max_words)
        if scope is None:
            i += 1
            continue
        trigger, first, last = scope
        drop.update(trigger)
        drop.update(range(first, last + 1))
        phrases.append(" ".join(words[first : last + 1]))
        i = max(max(trigger), last) + 1
    if not phrases:
        return text, ()
    kept = [m.group(0) for j, m in enumerate(matches) if j not in drop]
    if not any(w.lower() not in ENGLISH_STOPWORDS for w in kept):
        return text, ()
    return _remove(text, [matches[j] for j in sorted(drop)]), tuple(phrases)


def _scope(
    text: str, matches: Sequence[re.Match[str]], words: list[str], i: int, max_words: int
) -> tuple[list[int], int, int] | None:
    """``(trigger word indices, first, last)`` of a negation starting at word ``i``."""
    word = words[i]
    if word not in _TRIGGERS:
        return None
    nxt = words[i + 1] if i + 1 < len(words) else ""
    glued = matches[i].end() < len(text) and text[matches[i].end()] in "-.\u2010\u2011#"
    if word in ("no", "not") and glued:  # "no-show", "no. 2", "not-so-...": not a negation
        return None
    if not nxt or nxt[0].isdigit():
        return None
    if word == "no" and nxt in _POSITIVE_AFTER_NO:
        return None
    if word == "not" and nxt == "included":  # "not included X", else "X not included"
        after = _span(words, i + 2, max_words)
        if after is not None:
            return [i, i + 1], *after
        before = _span_before(words, i - 1, 1)
        return ([i, i + 1], *before) if before is not None else None
    if word == "not" and nxt in _POSITIVE_AFTER_NOT:
        return None
    span = _span(words, i + 1, max_words)
    return ([i], *span) if span is not None else None


def _span(words: list[str], start: int, max_words: int) -> tuple[int, int] | None:
    last, content = None, 0
    for j in range(start, len(words)):
        w = words[j]
        if w in _BOUNDARY or w in _TRIGGERS or w[0].isdigit():  # sizes, prices: not negated
            break
        if w not in ENGLISH_STOPWORDS:
            content += 1
        if content > max_words:
            break
        last = j
    if last is None or content == 0:
        return None
    return start, last


def _span_before(words: list[str], end: int, max_words: int) -> tuple[int, int] | None:
    first, content = None, 0
    for j in range(end, -1, -1):
        w = words[j]
        if w in _BOUNDARY or w in _TRIGGERS or content == max_words:
            break
        content += w not in ENGLISH_STOPWORDS
        first = j
    return (first, end) if first is not None and content else None


def _remove(text: str, spans: Sequence[re.Match[str]]) -> str:
    out, pos = [], 0
    for m in spans:
        out.append(text[pos : m.start()])
        pos = m.end()
    out.append(text[pos:])
    return " ".join("".join(out).split())


@lru_cache(maxsize=65_536)
def _product_tokens(text: str) -> list[str]:
    """(Cached: the same products come back search after search; never modified.)"""
    return _tokenizer.tokenize(text)


def stems(text: str) -> list[str]:
    """The English stems of ``text``'s words that are not stopwords, in order."""
    return [t for t in _tokenizer.tokenize(text) if t not in ENGLISH_STOPWORDS]


def mention(product_text: str, phrase: str) -> str | None:
    """How ``product_text`` mentions the negated ``phrase``: ``"positive"`` (it has X, e.g.
    "with straw", "straw lid"), ``"lacks"`` (it says it has none: "no straw", "without
    straw", "straw-free", "straw not included"), or ``None`` (X is not mentioned). One
    positive mention outweighs any number of "lacks" ones.

    Words are compared by their English stems, so "straws" matches "straw" and "batteries"
    matches "battery"; a phrase of several words must appear in order.

    >>> mention("Kids Water Bottle with Straw Lid", "straw")
    'positive'
    >>> mention("Straw-Free Sippy Cup, no spill", "straws")
    'lacks'
    >>> mention("Steel Bottle, 32 oz", "straw")
    """
    wanted = stems(phrase)
    if not wanted:
        return None
    tokens = _product_tokens(product_text)
    n = len(wanted)
    found = None
    for p in range(len(tokens) - n + 1):
        if tokens[p : p + n] != wanted:
            continue
        before = tokens[max(0, p - 2) : p]
        after = tuple(tokens[p + n : p + n + 2])
        if (
            _LACKS_BEFORE.intersection(before)
            or after[:1]
            and after[0] in _LACKS_NEXT
            or after in _LACKS_NEXT_TWO
        ):
            found = found or "lacks"
        else:
            return "positive"
    return found
