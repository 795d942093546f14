"""The catalog's words: for spelling correction, which must know what the catalog contains.

A :class:`Vocabulary` counts, for each word (its :func:`~shopsearch.text.normalize.key`),
the products whose title, brand, colour or category contain it, and separately the
products whose brand contains it (brand words are never corrected). Words are runs of letters
(any script) of at least 3 characters; words with digits (model numbers, sizes, SKUs) are
not counted, since they are never corrected. It is kept with each index snapshot
(``words.json``) and updated on every write: the products written are added, the ones they
replace or delete are subtracted.

>>> from shopsearch.catalog.schema import Product
>>> vocab = Vocabulary()
>>> vocab.add([Product(id="1", title="Steel Water Bottle", brand="Hydro Flask")])
>>> vocab.count("bottle"), vocab.count("flask"), "steel" in vocab, "straw" in vocab
(1, 1, True, False)
>>> vocab.is_brand("hydro"), vocab.is_brand("bottle")
(True, False)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from shopsearch.catalog.schema import Product
from shopsearch.text.normalize import key

__all__ = ["Vocabulary", "brand_words", "product_words", "words"]

FILE = "words.json"
_WORD_RE = re.compile(r"[^\W\d_]{3,}")


def words(text: str) -> set[str]:
    """The distinct words of ``text`` a vocabulary counts (keys, 3+ letters, no digits)."""
    return set(_WORD_RE.findall(key(text)))


def product_words(product: Product) -> set[str]:
    """The distinct words of a product's title, brand, colour and category."""
    return words(" ".join((product.title, product.brand, product.color, *product.category)))


def brand_words(product: Product) -> set[str]:
    return words(product.brand)


def _add(counts: dict[str, int], words: Iterable[str], step: int) -> None:
    for word in words:
        left = counts.get(word, 0) + step
        if left > 0:
            counts[word] = left
        else:
            counts.pop(word, None)


class Vocabulary:
    """word -> number of products that contain it (see the module docstring)."""

    def __init__(
        self, counts: dict[str, int] | None = None, brands: dict[str, int] | None = None
    ) -> None:
        self._counts: dict[str, int] = dict(counts or {})
        self._brands: dict[str, int] = dict(brands or {})

    def __contains__(self, word: str) -> bool:
        return self._counts.get(word, 0) > 0

    def __len__(self) -> int:
        return len(self._counts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def items(self) -> Iterable[tuple[str, int]]:
        return self._counts.items()

    def count(self, word: str) -> int:
        return self._counts.get(word, 0)

    def is_brand(self, word: str) -> bool:
        """Whether some product's brand contains ``word``."""
        return self._brands.get(word, 0) > 0

    def copy(self) -> Vocabulary:
        return Vocabulary(self._counts, self._brands)

    def add(self, products: Iterable[Product]) -> None:
        for product in products:
            _add(self._counts, product_words(product), 1)
            _add(self._brands, brand_words(product), 1)

    def remove(self, products: Iterable[Product]) -> None:
        for product in products:
            _add(self._counts, product_words(product), -1)
            _add(self._brands, brand_words(product), -1)

    def save(self, directory: Path) -> None:
        data = {"words": self._counts, "brands": self._brands}
        (directory / FILE).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Vocabulary | None:
        """The saved vocabulary; ``None`` for an index written before vocabularies were."""
        path = directory / FILE
        if not os.path.exists(path):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["words"], data["brands"])
