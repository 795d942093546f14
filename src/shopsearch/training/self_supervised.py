"""Learning without judgments: pseudo-queries made from the catalog itself.

A shop without judged queries still has its catalog. Each sampled product yields a
pseudo-query written the way shoppers write (short, lower case, the product type last,
sometimes misspelt), paired with the product's text, for the bi-encoder's contrastive loss
(in-batch negatives: every other product of the batch). The product *type* is the last
words of the title's main clause ("Samsung 7.2 cu. ft. Electric **Dryer** in White"); the
templates, drawn at random per product:

- ``type``: the type alone, or with one other word of the title ("electric dryer");
- ``brand``: the brand (or the title's first word) and the type ("samsung dryer");
- ``span``: 2-4 consecutive words of the main clause ("7.2 cu. ft. electric");
- ``category``: the category's leaf, with the colour when known ("dryers white");
- ``bullets``: 3-6 consecutive words of the bullet points or description, when present.

Then augmentation: each word dropped with ``word_dropout`` (never all of them), and one
typo (two letters swapped, one dropped or doubled) in a word of 5+ letters with
``typo_rate``. Validation: pseudo-queries of held-out products, each with its own
product (Exact) and 9 random others (Irrelevant) to rank: ``val_ndcg`` for early stopping.

>>> rng = random.Random(0)
>>> sorted(pseudo_queries(Product(id="1", title="Samsung 7.2 cu. ft. Electric Dryer in White"),
...                       rng, n=3, word_dropout=0.0, typo_rate=0.0))   # doctest: +SKIP
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from shopsearch.catalog.schema import Product
from shopsearch.models.encoders import product_text
from shopsearch.training.data import (
    IRRELEVANT,
    CategoryVocab,
    PairExample,
    QuerySplit,
    TrainingData,
)

__all__ = ["TEMPLATES", "main_clause", "pseudo_queries", "self_supervised_data"]

TEMPLATES = ("type", "brand", "span", "category", "bullets")
_CLAUSE_END = re.compile(r"\s+(?:-|–|\||with|for|in|by|featuring)\s+|[,(\[:;]", re.IGNORECASE)
_WORD = re.compile(r"[^\s]+")
_VALIDATION_NEGATIVES = 9


def main_clause(title: str) -> list[str]:
    """The title's words before its first clause break (" - ", ",", " with ", " in ", ...)."""
    head = _CLAUSE_END.split(title, maxsplit=1)[0]
    words = _WORD.findall(head)
    return words if words else _WORD.findall(title)


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _augment(words: list[str], rng: random.Random, word_dropout: float, typo_rate: float) -> str:
    kept = [w for w in words if rng.random() >= word_dropout] or [words[-1]]
    if rng.random() < typo_rate:
        long = [i for i, w in enumerate(kept) if len(w) >= 5 and w.isalpha()]
        if long:
            i = rng.choice(long)
            kept[i] = _typo(kept[i], rng)
    return " ".join(kept).lower()


def _template_words(product: Product, template: str, rng: random.Random) -> list[str] | None:
    clause = main_clause(product.title)
    if not clause:
        return None
    type_words = clause[-rng.choice((1, 2)) :] if len(clause) > 1 else clause
    if template == "type":
        others = [w for w in clause[: -len(type_words)] if w.isalpha()]
        extra = [rng.choice(others)] if others and rng.random() < 0.7 else []
        return extra + type_words
    if template == "brand":
        brand = _WORD.findall(product.brand or "") or clause[:1]
        return (brand + clause[-1:]) if brand != clause[-1:] else None
    if template == "span":
        if len(clause) < 2:
            return None
        size = rng.randint(2, min(4, len(clause)))
        start = rng.randrange(0, len(clause) - size + 1)
        return clause[start : start + size]
    if template == "category":
        if not product.category:
            return None
        leaf = _WORD.findall(product.category[-1])
        color = _WORD.findall(product.color or "")[:1]
        return leaf + color if leaf else None
    text = product.bullet_points or product.description or ""
    words = _WORD.findall(text)
    if len(words) < 3:
        return None
    size = rng.randint(3, min(6, len(words)))
    start = rng.randrange(0, len(words) - size + 1)
    return words[start : start + size]


def pseudo_queries(
    product: Product,
    rng: random.Random,
    *,
    n: int = 1,
    word_dropout: float = 0.1,
    typo_rate: float = 0.05,
) -> list[str]:
    """Up to ``n`` distinct pseudo-queries of ``product`` (fewer when its text is short)."""
    templates = [
        t
        for t in TEMPLATES
        if (t != "category" or product.category)
        and (t != "bullets" or product.bullet_points or product.description)
    ]
    out: list[str] = []
    for _ in range(5 * n):
        words = _template_words(product, rng.choice(templates), rng)
        if not words:
            continue
        query = _augment(words, rng, word_dropout, typo_rate)
        if query and query not in out:
            out.append(query)
        if len(out) == n:
            break
    return out


@dataclass(frozen=True)
class SelfSupervisedReport:
    products: int
    train_pairs: int
    validation_queries: int


def self_supervised_data(
    products: Sequence[Product],
    *,
    fields: Sequence[str],
    max_products: int,
    queries_per_product: int,
    word_dropout: float,
    typo_rate: float,
    seed: int,
    validation_products: int = 500,
) -> TrainingData:
    """Training pairs (pseudo-query, product) from a seeded sample of ``products``, and a
    validation set from other products (see the module docstring)."""
    rng = random.Random(seed)
    pool = [p for p in products if p.title.strip()]
    rng.shuffle(pool)
    n_valid = min(validation_products, max(1, len(pool) // 10))
    valid_products, train_products = pool[:n_valid], pool[n_valid:]
    if max_products > 0:
        train_products = train_products[:max_products]

    def example(query: str, product: Product, relevance: int) -> PairExample:
        gain = 1.0 if relevance == 0 else 0.0
        return PairExample(
            query=query,
            product_id=product.id,
            text=product_text(product, fields),
            relevance=relevance,
            category=None,
            gain=gain,
        )

    train: list[PairExample] = []
    train_queries: dict[str, None] = {}
    for product in train_products:
        for query in pseudo_queries(
            product, rng, n=queries_per_product, word_dropout=word_dropout, typo_rate=typo_rate
        ):
            train.append(example(query, product, 0))
            train_queries[query] = None
    validation: list[PairExample] = []
    valid_queries: dict[str, None] = {}
    for product in valid_products:
        queries = pseudo_queries(product, rng, n=1, word_dropout=0.0, typo_rate=0.0)
        if not queries or queries[0] in train_queries or queries[0] in valid_queries:
            continue
        query = queries[0]
        valid_queries[query] = None
        validation.append(example(query, product, 0))
        for other in rng.sample(pool, _VALIDATION_NEGATIVES + 1):
            if other.id != product.id and len(validation) and other.title != product.title:
                validation.append(example(query, other, IRRELEVANT))
    return TrainingData(
        split=QuerySplit(tuple(train_queries), tuple(valid_queries), ()),
        vocab=CategoryVocab(labels=("other",)),
        train=train,
        validation=validation,
        test=[],
        query_categories={},
        missing=0,
    )
