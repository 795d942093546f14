"""Which language a query is in, as far as search needs to know: English (Latin script),
Chinese (any CJK ideograph), or another script.

>>> detect("ugg slippers women"), detect("ugg 女士拖鞋"), detect("тапочки")
('en', 'zh', 'other')
"""

from __future__ import annotations

import re
import unicodedata

from shopsearch.text.tokenize import CJK_CHARS

__all__ = ["detect"]

_CJK_RE = re.compile(f"[{CJK_CHARS}]")


def detect(text: str) -> str:
    """``"zh"`` when ``text`` has a CJK ideograph, ``"other"`` when it has letters of a
    script other than Latin, else ``"en"``."""
    if _CJK_RE.search(text):
        return "zh"
    for ch in text:
        if ch.isalpha() and not ch.isascii() and "LATIN" not in unicodedata.name(ch, ""):
            return "other"
    return "en"
