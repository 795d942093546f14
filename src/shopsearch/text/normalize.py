"""The one set of text-normalisation rules: every module that compares text uses these.

Three rules, always applied in this order:

1. :func:`fold` -- **NFKC, then casefold.** NFKC turns compatibility forms into their
   plain equivalents: full-width ASCII to half-width (``"Ｂｌｕｅ"`` -> ``"Blue"``), the
   ideographic and no-break spaces to a space, half-width katakana to full-width,
   ligatures (``"ﬁ"`` -> ``"fi"``), circled and super-/subscript digits, ``"½"`` ->
   ``"1⁄2"``. Casefolding is full Unicode case folding, stronger than ``lower()``:
   ``"ß"`` -> ``"ss"``, ``"ς"`` -> ``"σ"``. Chinese and other caseless scripts pass
   through unchanged.
2. :func:`strip_accents` -- **combining diacritics removed** (U+0300-U+036F after
   canonical decomposition: ``"é"`` -> ``"e"``, ``"ё"`` -> ``"е"``, ``"ά"`` -> ``"α"``),
   the rest recomposed (NFC), so Hangul syllables and kana with (semi-)voiced marks, whose
   marks lie outside that block, are unchanged.
3. :func:`collapse_spaces` -- **whitespace collapsed**: stripped at both ends, and every
   run of whitespace (tabs, newlines, any Unicode space) becomes one space.

Two variants, because two kinds of callers need different things:

* :func:`key` = all three rules: the form under which two texts *are the same value*.
  Filters (``color=blue`` matches ``"Blue"``, ``"BLUE"``, ``"ｂｌｕｅ"``), facet buckets
  (one bucket per key), autocomplete and the suggestion store, behaviour keys of queries
  (``"Ugg Slippers"`` and ``"ugg  slippers"`` are one query) and shopper-profile
  affinities. Accents are folded because a shopper typing ``"creme"`` means ``"crème"``
  and ``"Wüsthof"`` / ``"WUSTHOF"`` is one brand.
* :func:`fold` alone: the first step of the BM25 :class:`~shopsearch.text.Tokenizer`,
  which then splits words itself (so needs no whitespace rule) and keeps accents
  (``"café"`` and ``"cafe"`` are different terms). BM25 postings are built with it, so
  changing it changes every score and needs a reindex: it is deliberately the tokenizer's
  historical rule, unchanged, and :func:`key` is built on top of it.

:func:`key` is also what the suggestion store (``suggestions.sqlite``) keeps as a phrase
column, so its rules are fixed: a change would need those stores' keys recomputed.

>>> key("  Ｃafé   CRÈME\\tbrûlée ")
'cafe creme brulee'
>>> key("Straße"), fold("Straße")
('strasse', 'strasse')
>>> fold("Ｃafé ＣＲÈＭＥ")
'café crème'
>>> key("保温杯　 大容量")
'保温杯 大容量'
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["collapse_spaces", "fold", "key", "strip_accents"]

_MARKS_RE = re.compile("[\u0300-\u036f]+")  # combining diacritics (é -> e, ё -> е, ά -> α)


def fold(text: str) -> str:
    """NFKC, then casefold: width, compatibility forms and case folded; accents kept.

    The tokenizer's normalisation (see the module docstring).

    >>> fold("Ｎｉｋｅ　ＲＵＮＮＩＮＧ ﬁt Größe")
    'nike running fit grösse'
    """
    return unicodedata.normalize("NFKC", text).casefold()


def strip_accents(text: str) -> str:
    """``text`` without combining diacritics (U+0300-U+036F), recomposed to NFC.

    >>> strip_accents("crème brûlée, ёлка, ά, がぎ, 한국")
    'creme brulee, елка, α, がぎ, 한국'
    """
    if text.isascii():
        return text
    # NFD splits é into e + U+0301; the marks go; NFC recomposes what remains (Hangul, kana).
    return unicodedata.normalize("NFC", _MARKS_RE.sub("", unicodedata.normalize("NFD", text)))


def collapse_spaces(text: str) -> str:
    """``text`` stripped, with each run of whitespace made one space.

    >>> collapse_spaces("  ugg \\t slippers\\n")
    'ugg slippers'
    """
    return " ".join(text.split())


def key(text: str) -> str:
    """The matching and grouping key: :func:`fold`, :func:`strip_accents`,
    :func:`collapse_spaces`. Two texts with equal keys are the same value.

    >>> key("Ugg Slippers") == key("ugg  slippers") == key("ＵＧＧ ｓｌｉｐｐｅｒｓ")
    True
    >>> key("Rösle"), key("ROSLE")
    ('rosle', 'rosle')
    """
    return collapse_spaces(strip_accents(fold(text)))
