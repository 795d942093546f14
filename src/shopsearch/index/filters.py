"""Structured filters and facet counts over per-row product attributes.

Filters are parsed from short strings (CLI ``--filter``) or built directly::

    Filters.parse(["brand=UGG,Koolaburra", "category=Clothing > Women", "price=10..50"])

:class:`FilterColumns` keeps the attributes of every index row in memory so that a filter
becomes a boolean row mask and facets are counted without touching the database.

Values are compared by their key (:func:`shopsearch.text.normalize.key`: NFKC, casefold,
accents and runs of whitespace folded), so ``color=blue`` matches ``"Blue"``, ``"BLUE"`` and
``"ｂｌｕｅ"``, and ``brand=wusthof`` matches ``"Wüsthof"``; category levels likewise. Facets
count one value per key (brand, color, category level), shown in its most common spelling
among the counted rows; between equally common spellings, the first in code-point order
(``"BLUE"`` < ``"Blue"`` < ``"blue"``), so the label does not depend on the rows' order. A
brand or colour the request filters on is shown as the filter spells it, so that a client
which filtered by a facet value finds that value again (however the filtered rows spell it).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.catalog.schema import CATEGORY_SEPARATOR, Product
from shopsearch.errors import InvalidQueryError
from shopsearch.text.normalize import key as _norm

FILTER_FIELDS = ("brand", "category", "color", "price", "rating")
PRICE_BANDS: tuple[tuple[float, float], ...] = (
    (0, 10),
    (10, 25),
    (25, 50),
    (50, 100),
    (100, 200),
    (200, math.inf),
)
RATING_THRESHOLDS = (4.5, 4.0, 3.0)
DEFAULT_FACET_SIZE = 10

_SPEC = re.compile(r"^\s*(?P<field>[a-z_]+)\s*(?P<op><=|>=|=|<|>)\s*(?P<value>.*?)\s*$", re.I)


def _path_key(levels: Iterable[str]) -> str:
    return CATEGORY_SEPARATOR.join(_norm(level) for level in levels if level.strip())


def _number(field: str, text: str) -> float:
    try:
        value = float(text.replace("$", "").replace(",", ""))
    except ValueError:
        raise InvalidQueryError(f"filter {field}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidQueryError(f"filter {field}: {text!r} is not a finite number")
    return value


@dataclass(frozen=True)
class Filters:
    """Conjunction of attribute filters; an empty ``Filters()`` allows everything."""

    brands: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    category: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    rating_min: float | None = None

    def __post_init__(self) -> None:
        for name in ("price_min", "price_max", "rating_min"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InvalidQueryError(f"filter {name} must be a finite number")
        if (
            self.price_min is not None
            and self.price_max is not None
            and self.price_min > self.price_max
        ):
            raise InvalidQueryError(
                f"filter price: minimum {self.price_min} is above maximum {self.price_max}"
            )

    @property
    def is_empty(self) -> bool:
        return self == Filters()

    @classmethod
    def parse(cls, specs: Sequence[str]) -> Filters:
        """Parse ``field=value`` / ``field>=n`` specs (see the module docstring)."""
        values: dict[str, Any] = {}
        for spec in specs:
            match = _SPEC.match(spec)
            if not match or not match["value"]:
                raise InvalidQueryError(
                    f"bad filter {spec!r}: expected FIELD=VALUE, FIELD>=N or FIELD<=N "
                    f"with FIELD one of {', '.join(FILTER_FIELDS)}"
                )
            field, op, value = match["field"].lower(), match["op"], match["value"]
            if field in ("brand", "color") and op == "=":
                key = "brands" if field == "brand" else "colors"
                values[key] = values.get(key, ()) + tuple(
                    v.strip() for v in value.split(",") if v.strip()
                )
            elif field == "category" and op == "=":
                values["category"] = value
            elif field == "price" and op == "=" and ".." in value:
                low, _, high = value.partition("..")
                if low.strip():
                    values["price_min"] = _number(field, low)
                if high.strip():
                    values["price_max"] = _number(field, high)
            elif field == "price" and op in (">=", ">"):
                values["price_min"] = _number(field, value)
            elif field == "price" and op in ("<=", "<"):
                values["price_max"] = _number(field, value)
            elif field == "rating" and op in (">=", ">", "="):
                values["rating_min"] = _number(field, value)
            else:
                raise InvalidQueryError(
                    f"bad filter {spec!r}: supported are brand=A,B color=A,B category=A > B "
                    "price=LOW..HIGH price>=N price<=N rating>=N"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Filters:
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InvalidQueryError(f"unknown filter fields: {', '.join(sorted(unknown))}")
        data = dict(data)
        for key in ("brands", "colors"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def _merged(
    pair_counts: Iterable[tuple[tuple[str, str], int]], chosen: Iterable[str] = ()
) -> Counter[str]:
    """Counts per key of ``((key, spelling), count)`` items, labelled with each key's most
    common spelling (ties: the first in code-point order), or with the first of the
    ``chosen`` spellings that has that key; keys in first-seen order, so ``most_common``
    breaks ties between counts as a plain count of spellings would. Empty keys (blank
    values) are not counted.

    >>> _merged([(("blue", "Blue"), 2), (("blue", "blue"), 1), (("red", "Red"), 1)])
    Counter({'Blue': 3, 'Red': 1})
    >>> _merged([(("blue", "Blue"), 2), (("blue", "blue"), 1)], chosen=["BLUE"])
    Counter({'BLUE': 3})
    """
    labels: dict[str, str] = {}
    for spelling in chosen:
        labels.setdefault(_norm(spelling), spelling)
    spellings: dict[str, dict[str, int]] = {}
    for (k, spelling), n in pair_counts:
        if k:
            counts = spellings.get(k)
            if counts is None:
                spellings[k] = {spelling: n}
            else:
                counts[spelling] = counts.get(spelling, 0) + n
    out: Counter[str] = Counter()
    for k, counts in spellings.items():
        label = labels.get(k)
        if label is None:
            if len(counts) == 1:  # the usual case: one spelling per key
                (label,) = counts
            else:
                label = min(counts, key=lambda s: (-counts[s], s))
        out[label] = sum(counts.values())
    return out


class _PairCodes:
    """Each row's ``(key, spelling)`` as an integer code, and each code's key as an integer,
    so that facets count with numpy instead of strings in Python."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self._code: dict[tuple[str, str], int] = {}
        self._key_code: dict[str, int] = {}
        self._pairs_of_key: list[list[int]] = []  # per key code: its pair codes (spellings)
        self._key_of_pair = np.empty(0, dtype=np.int32)
        self._blank_key = -1  # the key code of "" (blank values are not counted)
        self.rows = np.empty(0, dtype=np.int32)

    def extend(self, pairs: Iterable[tuple[str, str]]) -> None:
        codes, new_keys = [], []
        for pair in pairs:
            code = self._code.get(pair)
            if code is None:
                code = self._code[pair] = len(self.pairs)
                self.pairs.append(pair)
                key_code = self._key_code.get(pair[0])
                if key_code is None:
                    key_code = self._key_code[pair[0]] = len(self._pairs_of_key)
                    self._pairs_of_key.append([])
                    if not pair[0]:
                        self._blank_key = key_code
                self._pairs_of_key[key_code].append(code)
                new_keys.append(key_code)
            codes.append(code)
        self._key_of_pair = np.concatenate(
            [self._key_of_pair, np.asarray(new_keys, dtype=np.int32)]
        )
        self.rows = np.concatenate([self.rows, np.asarray(codes, dtype=np.int32)])

    def top(self, rows: np.ndarray, chosen: Iterable[str], size: int) -> list[tuple[str, int]]:
        """The ``size`` most common keys over ``rows`` with their counts, most common first
        (ties: the key seen first among ``rows``), each labelled with its most common
        spelling among ``rows`` (ties: the first in code-point order) or with the first of
        the ``chosen`` spellings that has that key. Blank values are not counted."""
        codes = self.rows[rows]
        keys = self._key_of_pair[codes]
        counted = keys != self._blank_key
        codes, keys = codes[counted], keys[counted]
        if keys.size == 0:
            return []
        unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
        best = np.lexsort((first, -counts))[:size]
        labels: dict[str, str] = {}
        for spelling in chosen:
            labels.setdefault(_norm(spelling), spelling)
        out = []
        pair_counts = None
        for key_code, n in zip(unique[best].tolist(), counts[best].tolist(), strict=True):
            pair_codes = self._pairs_of_key[key_code]
            key, spelling = self.pairs[pair_codes[0]]
            if key in labels:
                spelling = labels[key]
            elif len(pair_codes) > 1:  # the catalog spells this key several ways
                if pair_counts is None:
                    pair_counts = np.bincount(codes, minlength=len(self.pairs)).tolist()
                n_of = {self.pairs[c][1]: pair_counts[c] for c in pair_codes if pair_counts[c]}
                spelling = min(n_of, key=lambda s: (-n_of[s], s))
            out.append((spelling, n))
        return out


def price_band(price: float) -> str:
    for low, high in PRICE_BANDS:
        if low <= price < high:
            return f"{low:g}+" if math.isinf(high) else f"{low:g}-{high:g}"
    return "unknown"


class FilterColumns:
    """Filterable attributes of every index row (deleted rows included, masked elsewhere)."""

    def __init__(self) -> None:
        self.brand: list[str] = []
        self.color: list[str] = []
        self.category: list[tuple[str, ...]] = []
        self.price = np.empty(0, dtype=np.float64)
        self.rating = np.empty(0, dtype=np.float64)
        self._brand_key = np.empty(0, dtype=object)
        self._color_key = np.empty(0, dtype=object)
        # facets: each row's (key, spelling) of brand and colour as a small integer code
        self._brand_codes = _PairCodes()
        self._color_codes = _PairCodes()
        self._path_key = np.empty(0, dtype=object)

    def __len__(self) -> int:
        return len(self.brand)

    def add(self, products: Sequence[Product]) -> None:
        self._extend(
            [p.brand for p in products],
            [p.color for p in products],
            [list(p.category) for p in products],
            [math.nan if p.price is None else p.price for p in products],
            [math.nan if p.rating is None else p.rating for p in products],
        )

    def _extend(self, brand, color, category, price, rating) -> None:  # type: ignore[no-untyped-def]
        """Append rows; only the new rows' filter keys are normalised."""
        brand, color = list(brand), list(color)
        category = [tuple(c) for c in category]
        self.brand += brand
        self.color += color
        self.category += category
        self.price = np.concatenate([self.price, np.asarray(price, dtype=np.float64)])
        self.rating = np.concatenate([self.rating, np.asarray(rating, dtype=np.float64)])

        def keys(values: list[str]) -> np.ndarray:
            # an object array of strings, one per row (never a 2-D array)
            return np.fromiter(values, dtype=object, count=len(values))

        brand_keys = [_norm(b) for b in brand]
        color_keys = [_norm(c) for c in color]
        self._brand_key = np.concatenate([self._brand_key, keys(brand_keys)])
        self._color_key = np.concatenate([self._color_key, keys(color_keys)])
        self._brand_codes.extend(zip(brand_keys, brand, strict=True))
        self._color_codes.extend(zip(color_keys, color, strict=True))
        self._path_key = np.concatenate([self._path_key, keys([_path_key(c) for c in category])])

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Boolean mask of rows passing ``filters``; None when nothing is filtered."""
        if filters.is_empty:
            return None
        mask = np.ones(len(self), dtype=bool)
        if filters.brands:
            mask &= np.isin(self._brand_key, [_norm(b) for b in filters.brands])
        if filters.colors:
            mask &= np.isin(self._color_key, [_norm(c) for c in filters.colors])
        if filters.category:
            prefix = _path_key(re.split(r"\s*>\s*", filters.category))
            mask &= np.fromiter(
                (p == prefix or p.startswith(prefix + CATEGORY_SEPARATOR) for p in self._path_key),
                dtype=bool,
                count=len(self),
            )
        with np.errstate(invalid="ignore"):
            if filters.price_min is not None:
                mask &= self.price >= filters.price_min
            if filters.price_max is not None:
                mask &= self.price <= filters.price_max
            if filters.rating_min is not None:
                mask &= self.rating >= filters.rating_min
        return mask

    def facets(
        self, rows: np.ndarray, filters: Filters | None = None, size: int = DEFAULT_FACET_SIZE
    ) -> dict[str, list[tuple[str, int]]]:
        """Value counts over ``rows`` for brand, color, category (one level below the
        category filter, or the top level), price band and minimum rating."""
        rows = np.asarray(rows, dtype=np.int64)
        depth = 0
        if filters is not None and filters.category:
            depth = len([c for c in re.split(r"\s*>\s*", filters.category) if c.strip()])
        brands, colors = (filters.brands, filters.colors) if filters is not None else ((), ())
        brand = self._brand_codes.top(rows, brands, size)
        color = self._color_codes.top(rows, colors, size)
        levels = [self.category[r][depth] for r in rows if len(self.category[r]) > depth]
        level_counts = Counter(levels)  # in order of first appearance
        category = _merged(((_norm(v), v), n) for v, n in level_counts.items())
        prices = self.price[rows]
        price = Counter(price_band(p) for p in prices[~np.isnan(prices)])
        ratings = self.rating[rows]
        rating = [(f"{t:g}+", int(np.sum(ratings >= t))) for t in RATING_THRESHOLDS]
        order = {price_band(low): i for i, (low, _) in enumerate(PRICE_BANDS)}
        return {
            "brand": brand,
            "color": color,
            "category": category.most_common(size),
            "price": sorted(price.items(), key=lambda item: order.get(item[0], 99)),
            "rating": [(label, n) for label, n in rating if n],
        }

    def compact(self, mapping: np.ndarray) -> None:
        keep = np.flatnonzero(mapping >= 0)
        columns = FilterColumns()
        columns._extend(
            [self.brand[i] for i in keep],
            [self.color[i] for i in keep],
            [self.category[i] for i in keep],
            self.price[keep],
            self.rating[keep],
        )
        self.__dict__.update(columns.__dict__)

    def save(self, directory: Path) -> None:
        data = {
            "brand": self.brand,
            "color": self.color,
            "category": [list(c) for c in self.category],
            "price": [None if math.isnan(p) else p for p in self.price.tolist()],
            "rating": [None if math.isnan(r) else r for r in self.rating.tolist()],
        }
        (directory / "columns.json").write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> FilterColumns:
        data = json.loads((directory / "columns.json").read_text(encoding="utf-8"))
        columns = cls()
        columns._extend(
            data["brand"],
            data["color"],
            data["category"],
            [math.nan if p is None else p for p in data["price"]],
            [math.nan if r is None else r for r in data["rating"]],
        )
        return columns
