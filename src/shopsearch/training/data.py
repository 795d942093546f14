"""Training data for the rankers: (query, product) pairs from judgments plus the catalog.

Each judgment becomes a :class:`PairExample` with two labels: its ESCI relevance class (for
the relevance head) and the product's category id (for the auxiliary category head). Queries,
never pairs, are split into train / validation / test, so that no query is seen in training
and scored in evaluation. Hard negatives are mined from retrieval for training queries only.

>>> config = TrainConfig()                                                   # doctest: +SKIP
>>> products, judgments = load_sources(config.data)                          # doctest: +SKIP
>>> data = prepare(config, products=products, judgments=judgments)           # doctest: +SKIP
>>> len(data.train), len(data.validation), len(data.test), len(data.vocab)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopsearch.catalog.schema import CATEGORY_SEPARATOR, Product
from shopsearch.evaluation.judgments import ESCI_GAINS, Judgment
from shopsearch.models.encoders import product_text
from shopsearch.models.scoring import standardize

if TYPE_CHECKING:
    from shopsearch.training.config import DataConfig, TrainConfig

__all__ = [
    "ESCI_LABELS",
    "IRRELEVANT",
    "OTHER_CATEGORY",
    "CategoryVocab",
    "PairExample",
    "PairsReport",
    "QuerySplit",
    "SourceData",
    "EncoderPrior",
    "TrainingData",
    "attach_priors",
    "build_pairs",
    "category_examples",
    "category_key",
    "kfold_by_query",
    "load_mixture",
    "load_sources",
    "mine_hard_negatives",
    "prepare",
    "prepare_mixture",
    "product_text",
    "query_category_labels",
    "relevance_class",
    "split_by_query",
]

#: Relevance class ids 0..3, most relevant first.
ESCI_LABELS: tuple[str, ...] = ("E", "S", "C", "I")
IRRELEVANT = ESCI_LABELS.index("I")
#: Label 0 of every :class:`CategoryVocab`: categories rarer than ``min_count``.
OTHER_CATEGORY = "other"

Search = Callable[[str, int], list[str]]
#: ``prior(query, product_ids) -> similarities``: the zero-shot dense score of each product.
Prior = Callable[[str, Sequence[str]], Sequence[float]]


def relevance_class(judgment: Judgment, exact_min_gain: float = 0.0) -> int:
    """ESCI class id of a judgment; a numeric gain maps to the class of the nearest ESCI gain.

    Ties go to the more relevant class. ``0.5`` is nearest to S (0.1), ``2.0`` to E (1.0).
    With ``exact_min_gain > 0`` (graded judgments such as Home Depot's 0..2, where most
    judged pairs are relevant), a gain of at least that is E, a gain of 0 is I and anything
    between is S: neither a positive nor a negative for the bi-encoder.

    >>> graded = [Judgment("q", "p", g, None) for g in (2.0, 1.0, 0.0)]
    >>> [relevance_class(j, exact_min_gain=1.67) for j in graded]
    [0, 1, 3]
    """
    if judgment.label in ESCI_LABELS:
        return ESCI_LABELS.index(judgment.label)
    if exact_min_gain > 0.0:
        if judgment.gain >= exact_min_gain - 1e-9:
            return 0
        return IRRELEVANT if judgment.gain <= 0.0 else 1
    distances = [abs(judgment.gain - ESCI_GAINS[label]) for label in ESCI_LABELS]
    return distances.index(min(distances))


def category_key(category: Sequence[str], depth: int) -> str:
    """The first ``depth`` levels of a category path joined by " > " ("" without a category)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return CATEGORY_SEPARATOR.join(category[:depth])


@dataclass(frozen=True)
class CategoryVocab:
    """Category labels at one depth of the path; id 0 is ``"other"`` (rare categories).

    >>> vocab = CategoryVocab(labels=("other", "Home & Kitchen > Bath"), depth=2)
    >>> vocab.encode(("Home & Kitchen", "Bath", "Towels")), vocab.encode(("Toys",))
    (1, 0)
    >>> vocab.decode(1)
    'Home & Kitchen > Bath'
    """

    labels: tuple[str, ...]
    depth: int = 2
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.labels or self.labels[0] != OTHER_CATEGORY:
            raise ValueError(f"label 0 of a category vocabulary must be {OTHER_CATEGORY!r}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("category labels must be distinct")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        object.__setattr__(self, "_ids", {label: i for i, label in enumerate(self.labels)})

    @classmethod
    def build(cls, products: Iterable[Product], depth: int, min_count: int) -> CategoryVocab:
        """Every category (cut at ``depth``) held by at least ``min_count`` products, sorted."""
        counts = Counter(category_key(p.category, depth) for p in products if p.category)
        kept = sorted(key for key, n in counts.items() if n >= min_count and key != OTHER_CATEGORY)
        return cls(labels=(OTHER_CATEGORY, *kept), depth=depth)

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, category: Sequence[str] | str) -> int:
        """Id of a category path (cut at this vocabulary's depth) or of a key string; 0 if rare."""
        key = category if isinstance(category, str) else category_key(category, self.depth)
        return self._ids.get(key, 0)

    def decode(self, label_id: int) -> str:
        if not 0 <= label_id < len(self.labels):
            raise IndexError(f"category id {label_id} is not in [0, {len(self.labels) - 1}]")
        return self.labels[label_id]

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoryVocab:
        return cls(labels=tuple(data["labels"]), depth=int(data["depth"]))


@dataclass(frozen=True)
class PairExample:
    """One training example.

    ``relevance`` is the ESCI class id (0 = E ... 3 = I), ``None`` for a product-only example
    (category task); ``category`` is the product's :class:`CategoryVocab` id, ``None`` when
    the product has no category; ``gain`` is the judged gain (0.0 for mined negatives);
    ``mined`` marks hard negatives taken from retrieval (unjudged, assumed irrelevant);
    ``prior`` is the zero-shot dense similarity standardized over the query's examples
    (0.0 until :func:`attach_priors`); ``weight`` multiplies its training loss.
    """

    query: str
    product_id: str
    text: str
    relevance: int | None
    category: int | None
    gain: float
    mined: bool = False
    prior: float = 0.0
    weight: float = 1.0  # multiplies its loss (the weight of its source in a mixture)


@dataclass(frozen=True)
class QuerySplit:
    """Disjoint query sets; construction fails if a query is in two of them."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        parts = (set(self.train), set(self.validation), set(self.test))
        if sum(map(len, parts)) != len(set().union(*parts)):
            shared = sorted((parts[0] & parts[1]) | (parts[0] & parts[2]) | (parts[1] & parts[2]))
            raise ValueError(f"a query split shares queries between parts: {shared[:5]}")

    def part_of(self, query: str) -> str | None:
        """``"train"``, ``"validation"``, ``"test"`` or ``None``."""
        for name in ("train", "validation", "test"):
            if query in getattr(self, name):
                return name
        return None

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
        }


def _rank(seed: int, query: str) -> bytes:
    return hashlib.sha256(f"shopsearch-train\x00{seed}\x00{query}".encode()).digest()


def _shuffled(queries: Iterable[str], seed: int) -> list[str]:
    """Distinct queries in a seeded order that depends only on the set and the seed."""
    return sorted(set(queries), key=lambda q: (_rank(seed, q), q))


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Part sizes for ``fractions`` of ``n`` items, leaving at least one for training.

    With ``n >= len(fractions) + 1`` every part with a positive fraction gets at least one.
    """
    sizes = [round(f * n) for f in fractions]
    if n >= len(fractions) + 1:
        sizes = [max(s, 1) if f > 0 else s for s, f in zip(sizes, fractions, strict=True)]
    floor = [1 if f > 0 and n >= len(fractions) + 1 else 0 for f in fractions]
    while n > 0 and sum(sizes) > n - 1:
        shrinkable = [i for i, s in enumerate(sizes) if s > floor[i]]
        if not shrinkable:
            break
        largest = max(shrinkable, key=lambda i: (sizes[i], -i))
        sizes[largest] -= 1
    return sizes


def split_by_query(
    queries: Iterable[str], *, validation_fraction: float, test_fraction: float, seed: int
) -> QuerySplit:
    """Split distinct queries into train / validation / test, deterministically.

    Queries are ordered by a SHA-256 hash of the seed and the query text, so the split
    depends only on the set of queries and the seed, never on their order. With 3 or more
    queries every part with a positive fraction is non-empty, and train always is. Each part
    is sorted. This split is independent of :func:`shopsearch.evaluation.split_queries`.
    """
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError("validation_fraction + test_fraction must be < 1")
    order = _shuffled(queries, seed)
    n_test, n_validation = _sizes(len(order), [test_fraction, validation_fraction])
    return QuerySplit(
        train=tuple(sorted(order[n_test + n_validation :])),
        validation=tuple(sorted(order[n_test : n_test + n_validation])),
        test=tuple(sorted(order[:n_test])),
    )


def kfold_by_query(
    queries: Iterable[str], *, folds: int, fold: int, validation_fraction: float, seed: int
) -> QuerySplit:
    """Fold ``fold`` of ``folds`` as the test part; validation is carved from the rest.

    Queries are dealt round-robin into folds in the seeded hash order (fold sizes differ by
    at most one), so the test parts of ``fold = 0 .. folds - 1`` partition the queries.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in [0, {folds - 1}], got {fold}")
    _check_fraction("validation_fraction", validation_fraction)
    order = _shuffled(queries, seed)
    if len(order) < folds:
        raise ValueError(f"{folds}-fold split needs at least {folds} queries, got {len(order)}")
    test = order[fold::folds]
    rest = [q for i, q in enumerate(order) if i % folds != fold]
    (n_validation,) = _sizes(len(rest), [validation_fraction])
    return QuerySplit(
        train=tuple(sorted(rest[n_validation:])),
        validation=tuple(sorted(rest[:n_validation])),
        test=tuple(sorted(test)),
    )


@dataclass(frozen=True)
class PairsReport:
    """What :func:`build_pairs` made, and how many judgments named an unknown product."""

    pairs: list[PairExample]
    missing: int
    missing_ids: tuple[str, ...] = ()  # distinct unknown product ids, sorted


def _category_id(product: Product, vocab: CategoryVocab, depth: int | None) -> int | None:
    if not product.category:
        return None
    if depth is None:
        return vocab.encode(product.category)
    return vocab.encode(category_key(product.category, depth))


def build_pairs(
    judgments: Iterable[Judgment],
    products_by_id: Mapping[str, Product],
    vocab: CategoryVocab,
    *,
    depth: int | None = None,
    fields: Sequence[str] = ("title", "brand", "color", "category"),
    exact_min_gain: float = 0.0,
) -> PairsReport:
    """One :class:`PairExample` per judgment whose product is in the catalog.

    ``depth`` defaults to the vocabulary's own depth. Judgments of unknown products are
    skipped and counted, never dropped silently.
    """
    pairs: list[PairExample] = []
    missing: list[str] = []
    for j in judgments:
        product = products_by_id.get(j.product_id)
        if product is None:
            missing.append(j.product_id)
            continue
        pairs.append(
            PairExample(
                query=j.query,
                product_id=j.product_id,
                text=product_text(product, fields),
                relevance=relevance_class(j, exact_min_gain),
                category=_category_id(product, vocab, depth),
                gain=j.gain,
            )
        )
    return PairsReport(pairs=pairs, missing=len(missing), missing_ids=tuple(sorted(set(missing))))


def mine_hard_negatives(
    queries: Iterable[str],
    judged: Mapping[str, set[str]],
    search: Search,
    *,
    per_query: int,
    depth: int = 50,
) -> dict[str, list[str]]:
    """The top ``per_query`` retrieved products of each query that were not judged for it.

    ``search(query, k)`` returns product ids, best first (e.g. a retriever's ``search``).
    Unjudged products ranked high by retrieval are likely, not certain, negatives: the caller
    labels them I with gain 0 and marks them ``mined``. At most ``depth`` hits are looked at.
    """
    if per_query < 0:
        raise ValueError(f"per_query must be >= 0, got {per_query}")
    mined: dict[str, list[str]] = {}
    for query in dict.fromkeys(queries):
        if per_query == 0:
            mined[query] = []
            continue
        seen = judged.get(query, set())
        picked: list[str] = []
        for product_id in search(query, depth):
            if product_id not in seen and product_id not in picked:
                picked.append(product_id)
                if len(picked) == per_query:
                    break
        mined[query] = picked
    return mined


def category_examples(
    products: Iterable[Product],
    vocab: CategoryVocab,
    depth: int | None = None,
    fields: Sequence[str] = ("title", "brand", "color", "category"),
) -> list[PairExample]:
    """Product-only examples (``query=""``, ``relevance=None``) for the category task.

    Products without a category are skipped: their label is unknown, not "other". Mind that
    ``"category"`` in ``fields`` puts the answer in the text; use title/brand/color here.
    """
    return [
        PairExample(
            query="",
            product_id=p.id,
            text=product_text(p, fields),
            relevance=None,
            category=_category_id(p, vocab, depth),
            gain=0.0,
        )
        for p in products
        if p.category
    ]


def attach_priors(examples: Sequence[PairExample], prior: Prior) -> list[PairExample]:
    """The examples with ``prior`` set: z-scores of ``prior(query, ids)`` within each query.

    Examples without a query (category task) are returned unchanged; order is kept.
    """
    by_query: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        if ex.query:
            by_query.setdefault(ex.query, []).append(i)
    out = list(examples)
    for query, rows in by_query.items():
        values = standardize(prior(query, [examples[i].product_id for i in rows]))
        for i, value in zip(rows, values.tolist(), strict=True):
            out[i] = dataclasses.replace(examples[i], prior=float(value))
    return out


class EncoderPrior:
    """A :data:`Prior` from a dense encoder: cosine of query and product vectors.

    Product vectors (text from ``fields``, the encoder's own product text) and query vectors
    are computed on first use and cached, so folds and runs can share one instance.
    """

    def __init__(
        self, encoder: Any, products: Iterable[Product], fields: Sequence[str] = ("title",)
    ) -> None:
        self.encoder = encoder
        self.fields = tuple(fields)
        self._products = {p.id: p for p in products}
        self._vectors: dict[str, Any] = {}
        self._queries: dict[str, Any] = {}

    def __call__(self, query: str, product_ids: Sequence[str]) -> list[float]:
        todo = [p for p in dict.fromkeys(product_ids) if p not in self._vectors]
        if todo:
            texts = [product_text(self._products[p], self.fields) for p in todo]
            self._vectors.update(zip(todo, self.encoder.encode_products(texts), strict=True))
        if query not in self._queries:
            self._queries[query] = self.encoder.encode_queries([query])[0]
        q = self._queries[query]
        return [float(self._vectors[p] @ q) for p in product_ids]


def _category_task_examples(
    catalog: Sequence[Product],
    vocab: CategoryVocab,
    train_queries: Iterable[str],
    query_categories: Mapping[str, int],
    *,
    count: int,
    fields: Sequence[str],
    seed: int,
) -> list[PairExample]:
    """``count`` sampled products without their category path, and the training queries."""
    fields = tuple(f for f in fields if f != "category") or ("title",)
    with_category = sorted((p for p in catalog if p.category), key=lambda p: p.id)
    sample = random.Random(seed).sample(with_category, min(count, len(with_category)))
    examples = category_examples(sample, vocab, fields=fields)
    examples.extend(
        PairExample(
            query="", product_id="", text=q, relevance=None, category=query_categories[q], gain=0.0
        )
        for q in train_queries
        if q in query_categories
    )
    return examples


def query_category_labels(
    judgments: Iterable[Judgment],
    products_by_id: Mapping[str, Product],
    vocab: CategoryVocab,
    depth: int | None = None,
) -> dict[str, int]:
    """``query -> category id``: the most common category of its E-labelled products.

    Each (query, product) counts once; ties go to the lowest id. Queries without an E
    product that has a category get no entry.
    """
    counts: dict[str, Counter[int]] = {}
    seen: set[tuple[str, str]] = set()
    for j in judgments:
        product = products_by_id.get(j.product_id)
        if relevance_class(j) != 0 or product is None or (j.query, j.product_id) in seen:
            continue
        seen.add((j.query, j.product_id))
        category = _category_id(product, vocab, depth)
        if category is not None:
            counts.setdefault(j.query, Counter())[category] += 1
    return {
        query: min(counter, key=lambda c: (-counter[c], c)) for query, counter in counts.items()
    }


@dataclass
class TrainingData:
    """Everything a trainer needs, split by query (checked on construction)."""

    split: QuerySplit
    vocab: CategoryVocab
    train: list[PairExample]
    validation: list[PairExample]
    test: list[PairExample]
    query_categories: dict[str, int]
    missing: int

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            allowed = set(getattr(self.split, name))
            leaked = {
                ex.query for ex in getattr(self, name) if ex.query and ex.query not in allowed
            }
            if leaked:
                raise ValueError(f"{name} examples use queries outside its split: {leaked}")

    def summary(self) -> dict[str, int]:
        """Counts worth logging at the start of a run."""
        return {
            "train_queries": len(self.split.train),
            "validation_queries": len(self.split.validation),
            "test_queries": len(self.split.test),
            "train_pairs": len(self.train),
            "train_mined_negatives": sum(ex.mined for ex in self.train),
            "validation_pairs": len(self.validation),
            "test_pairs": len(self.test),
            "categories": len(self.vocab),
            "missing_products": self.missing,
        }


def load_sources(data: DataConfig) -> tuple[list[Product], list[Judgment]]:
    """The catalog and judgments a config names ("" = the bundled ESCI-US sample)."""
    from shopsearch.catalog.loaders import load_catalog
    from shopsearch.datasets import esci_us_judgments, esci_us_products
    from shopsearch.evaluation.judgments import load_judgments

    report = load_catalog(data.catalog or esci_us_products())
    return list(report.products), load_judgments(data.judgments or esci_us_judgments())


def prepare(
    config: TrainConfig,
    *,
    products: Iterable[Product],
    judgments: Sequence[Judgment],
    search: Search | None = None,
    prior: Prior | None = None,
    vocab: CategoryVocab | None = None,
) -> TrainingData:
    """Split queries, build pairs, and mine hard negatives for training queries.

    ``search(query, k) -> product ids`` (e.g. a ``SearchPipeline`` with
    ``config.data.negatives_from``) enables mining when ``config.data.hard_negatives > 0``;
    ids it returns that are not in ``products`` are ignored. ``prior(query, ids)`` (the
    zero-shot dense scores) fills each pair's ``prior``. When the product text shows the
    category path, pairs carry no category label; ``data.category_products > 0`` adds
    product-only and query-only examples for the category task instead.
    """
    cfg = config.data
    catalog = list(products)
    products_by_id = {p.id: p for p in catalog}
    if vocab is None:
        vocab = CategoryVocab.build(catalog, cfg.category_depth, cfg.min_category_count)
    queries = list(dict.fromkeys(j.query for j in judgments))
    if cfg.folds > 1:
        split = kfold_by_query(
            queries,
            folds=cfg.folds,
            fold=cfg.fold,
            validation_fraction=cfg.validation_fraction,
            seed=config.seed,
        )
    else:
        split = split_by_query(
            queries,
            validation_fraction=cfg.validation_fraction,
            test_fraction=cfg.test_fraction,
            seed=config.seed,
        )
    if 0 < cfg.max_train_queries < len(split.train):
        kept = set(_shuffled(split.train, config.seed)[: cfg.max_train_queries])
        train_queries = tuple(q for q in split.train if q in kept)
        split = QuerySplit(train_queries, split.validation, split.test)
        judgments = [j for j in judgments if split.part_of(j.query) is not None]
    report = build_pairs(
        judgments,
        products_by_id,
        vocab,
        fields=cfg.product_fields,
        exact_min_gain=cfg.exact_min_gain,
    )
    shows_category = "category" in cfg.product_fields
    parts: dict[str, list[PairExample]] = {"train": [], "validation": [], "test": []}
    for pair in report.pairs:
        if shows_category:
            pair = dataclasses.replace(pair, category=None)
        part = split.part_of(pair.query)
        if part is not None:  # (None: a training query left out by max_train_queries)
            parts[part].append(pair)

    if search is not None and cfg.hard_negatives > 0:
        judged: dict[str, set[str]] = {}
        for j in judgments:
            judged.setdefault(j.query, set()).add(j.product_id)

        def known(query: str, k: int) -> list[str]:
            return [pid for pid in search(query, k) if pid in products_by_id]

        mined = mine_hard_negatives(
            split.train,
            judged,
            known,
            per_query=cfg.hard_negatives,
            depth=max(50, 2 * cfg.hard_negatives),
        )
        for query, ids in mined.items():
            for product_id in ids:
                product = products_by_id[product_id]
                parts["train"].append(
                    PairExample(
                        query=query,
                        product_id=product_id,
                        text=product_text(product, cfg.product_fields),
                        relevance=IRRELEVANT,
                        category=None if shows_category else _category_id(product, vocab, None),
                        gain=0.0,
                        mined=True,
                    )
                )

    if prior is not None:
        parts = {name: attach_priors(examples, prior) for name, examples in parts.items()}
    query_categories = query_category_labels(judgments, products_by_id, vocab)
    if cfg.category_products > 0:
        parts["train"].extend(
            _category_task_examples(
                catalog,
                vocab,
                split.train,
                query_categories,
                count=cfg.category_products,
                fields=cfg.product_fields,
                seed=config.seed,
            )
        )
    return TrainingData(
        split=split,
        vocab=vocab,
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        query_categories=query_categories,
        missing=report.missing,
    )


# --------------------------------------------------------------------------- mixtures


@dataclass(frozen=True)
class SourceData:
    """One source of a training mixture, loaded: its catalog and judgments, product ids
    prefixed with ``name:`` when the mixture has several sources."""

    name: str
    products: list[Product]
    judgments: list[Judgment]
    weight: float = 1.0
    exact_min_gain: float = 0.0
    max_train_queries: int = 0


def load_mixture(config: TrainConfig) -> list[SourceData]:
    """The sources a config names: its ``[[sources]]``, else ``data.catalog`` and
    ``data.judgments`` as one source (the bundled ESCI-US sample when empty)."""
    from shopsearch.catalog.loaders import load_catalog
    from shopsearch.datasets import esci_us_judgments, esci_us_products
    from shopsearch.evaluation.judgments import load_judgments

    if not config.sources:
        products, judgments = load_sources(config.data)
        data = config.data
        return [
            SourceData(
                "main", products, judgments, 1.0, data.exact_min_gain, data.max_train_queries
            )
        ]
    loaded = []
    prefix = len(config.sources) > 1
    for source in config.sources:
        catalog = source.catalog or esci_us_products()
        products = list(load_catalog(catalog).products)
        judgments = load_judgments(source.judgments or esci_us_judgments())
        if prefix:
            products = [dataclasses.replace(p, id=f"{source.name}:{p.id}") for p in products]
            judgments = [
                dataclasses.replace(j, product_id=f"{source.name}:{j.product_id}")
                for j in judgments
            ]
        loaded.append(
            SourceData(
                source.name,
                products,
                judgments,
                source.weight,
                source.exact_min_gain,
                source.max_train_queries,
            )
        )
    return loaded


def prepare_mixture(
    config: TrainConfig,
    sources: Sequence[SourceData],
    *,
    searches: Mapping[str, Search] | None = None,
    prior: Prior | None = None,
) -> tuple[TrainingData, dict[str, dict[str, int]]]:
    """:func:`prepare` each source (its own query split, its own negatives from
    ``searches[name]``), then merge: one category vocabulary over every catalog, each
    training example weighted by its source. A query string judged in several sources
    stays in the part the first source gave it; its examples in another part of a later
    source are left out and counted (``"dropped_shared_queries"``). Returns the data and a
    summary per source."""
    searches = searches or {}
    everything = [p for s in sources for p in s.products]
    vocab = CategoryVocab.build(
        everything, config.data.category_depth, config.data.min_category_count
    )
    parts: dict[str, dict[str, None]] = {"train": {}, "validation": {}, "test": {}}
    assigned: dict[str, str] = {}  # query -> the part its first source gave it
    examples: dict[str, list[PairExample]] = {"train": [], "validation": [], "test": []}
    query_categories: dict[str, int] = {}
    summaries: dict[str, dict[str, int]] = {}
    missing = 0
    for source in sources:
        data = prepare(
            _for_source(config, source),
            products=source.products,
            judgments=source.judgments,
            search=searches.get(source.name),
            prior=prior,
            vocab=vocab,
        )
        dropped = 0
        for part in ("train", "validation", "test"):
            for query in getattr(data.split, part):
                if assigned.setdefault(query, part) == part:
                    parts[part][query] = None
            for ex in getattr(data, part):
                if ex.query and assigned.get(ex.query) != part:
                    dropped += 1
                    continue
                if part == "train" and source.weight != 1.0:
                    ex = dataclasses.replace(ex, weight=source.weight)
                examples[part].append(ex)
        for query, category in data.query_categories.items():
            query_categories.setdefault(query, category)
        missing += data.missing
        summaries[source.name] = {**data.summary(), "dropped_shared_queries": dropped}
    merged = TrainingData(
        split=QuerySplit(tuple(parts["train"]), tuple(parts["validation"]), tuple(parts["test"])),
        vocab=vocab,
        train=examples["train"],
        validation=examples["validation"],
        test=examples["test"],
        query_categories=query_categories,
        missing=missing,
    )
    return merged, summaries


def _for_source(config: TrainConfig, source: SourceData) -> TrainConfig:
    data = dataclasses.replace(
        config.data,
        exact_min_gain=source.exact_min_gain,
        max_train_queries=source.max_train_queries,
    )
    return dataclasses.replace(config, data=data)
