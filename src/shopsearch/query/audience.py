"""Audience: who the product is for, in its usual spellings.

>>> find_audience("Mens running shoes")
('men',)
>>> find_audience("women's  tankini for girls 7-16")
('women', 'girls')
>>> find_audience("baby boy blue suit")
('baby', 'boys')
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["AUDIENCES", "compatible", "find_audience", "product_audiences"]

#: canonical audience -> the words that name it (apostrophes removed before lookup)
AUDIENCES: dict[str, tuple[str, ...]] = {
    "men": ("men", "mens", "man", "male", "males", "gentlemen", "guys"),
    "women": ("women", "womens", "woman", "ladies", "lady", "female", "females", "womans"),
    "kids": ("kids", "kid", "kiddos", "children", "childrens", "child", "youth", "juniors"),
    "toddler": ("toddler", "toddlers"),
    "baby": ("baby", "babies", "babys", "infant", "infants", "newborn", "newborns"),
    "boys": ("boys", "boy", "boyss"),
    "girls": ("girls", "girl"),
}
_WORD_TO_AUDIENCE = {w: a for a, words in AUDIENCES.items() for w in words}
_WORD_RE = re.compile(r"[^\W\d_]+(?:['\u2019]s?)?")


def _words(text: str) -> list[str]:
    return [w.lower().replace("'", "").replace("\u2019", "") for w in _WORD_RE.findall(text)]


_CHILDREN = frozenset({"kids", "toddler", "baby", "boys", "girls"})


def compatible(audience: str) -> frozenset[str]:
    """The audiences a product may name and still suit ``audience`` ("kids" suits a
    toddler; "women" does not suit men, nor "girls" boys).

    >>> sorted(compatible("toddler")), sorted(compatible("men"))
    (['kids', 'toddler'], ['men'])
    """
    if audience == "kids":
        return _CHILDREN
    if audience in _CHILDREN:
        return frozenset({audience, "kids"})
    return frozenset({audience})


def find_audience(text: str) -> tuple[str, ...]:
    """The audiences named in a query, in order of first mention."""
    found = (_WORD_TO_AUDIENCE.get(w) for w in _words(text))
    return tuple(dict.fromkeys(a for a in found if a))


@lru_cache(maxsize=65_536)
def product_audiences(text: str) -> frozenset[str]:
    """The audiences a product's title or category names (cached: the same products come
    back search after search)."""
    return frozenset(a for a in map(_WORD_TO_AUDIENCE.get, _words(text)) if a)
