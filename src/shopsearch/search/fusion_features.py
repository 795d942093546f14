"""What learned fusion reads about each candidate: the retrievers' scores, put on scales that
mean the same in every query and every catalog, and how much of the query it covers.

One function, :func:`fusion_features`, computes them both when a model is trained
(:mod:`shopsearch.training.fusion`) and when it ranks (:class:`~.fusion.LearnedFusion`), so
training and serving can never disagree. Per candidate, over the union of the retrievers'
runs:

- ``bm25``, ``dense``, ``mdense``: the raw scores (a retriever the pipeline lacks: missing);
- ``*_rel`` / ``*_gap``: BM25 over the best BM25 of the query's candidates (BM25 scores
  grow with the query's length and the catalog's statistics), cosine minus the best cosine;
- ``*_rr``: 1 / (1 + rank) among the candidates by that score (0 where BM25 does not match);
- ``rrf``: what equal-weight reciprocal-rank fusion gives it (the fallback's own view);
- ``title_share``: the part of the BM25 score that comes from the title;
- ``coverage``, ``idf_coverage``: the share of the query's words the product contains,
  plain and weighted by rarity (a product matching "pvc" but not "elbow" covers half);
- ``title_terms``: log(1 + the title's length in tokens) (a short title that matches
  is more likely the product itself than an accessory listing it);
- ``trigram_jaccard``, ``trigram_containment``: character trigrams shared by the query and
  the title, over both and over the query's (survive typos and split or joined words:
  "colerful", "2x4" / "2 x 4");
- ``number_match``: the share of the query's words with a digit the title contains
  (sizes, model numbers; missing when the query has none); ``bigram_match``: the share of
  the query's adjacent word pairs adjacent in the title (missing for one word);
- ``query_terms``, ``bm25_matches``: how long the query is and how many candidates BM25
  matched at all (lets the model trust the retrievers differently per query).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from shopsearch.catalog.schema import Product
from shopsearch.index.fusion import DEFAULT_RRF_K, reciprocal_rank_fusion
from shopsearch.search.state import QueryState

__all__ = ["FUSION_FEATURES", "fusion_features"]

FUSION_FEATURES: tuple[str, ...] = (
    "bm25",
    "bm25_rel",
    "bm25_rr",
    "dense",
    "dense_gap",
    "dense_rr",
    "mdense",
    "mdense_gap",
    "mdense_rr",
    "rrf",
    "title_share",
    "coverage",
    "idf_coverage",
    "title_terms",
    "trigram_jaccard",
    "trigram_containment",
    "number_match",
    "bigram_match",
    "query_terms",
    "bm25_matches",
)
_COLUMN = {name: i for i, name in enumerate(FUSION_FEATURES)}
#: Retrievers whose score needs a positive value to count as a match.
_POSITIVE_ONLY = ("bm25",)


def _reciprocal_ranks(values: np.ndarray, positive_only: bool) -> np.ndarray:
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = np.arange(values.shape[0])
    out = 1.0 / (1.0 + ranks)
    if positive_only:
        out[values <= 0.0] = 0.0
    return out


_SPACES = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")


@functools.lru_cache(maxsize=65536)
def _trigrams(text: str) -> frozenset[str]:
    padded = " " + _SPACES.sub(" ", text.casefold()).strip() + " "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


@functools.lru_cache(maxsize=65536)
def _title_words(title: str, tokenize: Callable[[str], list[str]]) -> tuple[frozenset, frozenset]:
    words = tokenize(title)
    return frozenset(words), frozenset(zip(words, words[1:], strict=False))


def _text_matches(
    query: str, titles: Sequence[str], tokenize: Callable[[str], list[str]]
) -> np.ndarray:
    """``len(titles) x 4``: trigram Jaccard, trigram containment, number and bigram match."""
    out = np.full((len(titles), 4), np.nan, dtype=np.float64)
    query_trigrams = _trigrams(query)
    words = tokenize(query)
    numbers = [w for w in words if _DIGIT.search(w)]
    bigrams = set(zip(words, words[1:], strict=False))
    for i, title in enumerate(titles):
        title_trigrams = _trigrams(title)
        shared = len(query_trigrams & title_trigrams)
        union = len(query_trigrams | title_trigrams)
        out[i, 0] = shared / union if union else 0.0
        out[i, 1] = shared / len(query_trigrams) if query_trigrams else 0.0
        title_words, title_bigrams = _title_words(title, tokenize)
        if numbers:
            out[i, 2] = sum(n in title_words for n in numbers) / len(numbers)
        if bigrams:
            out[i, 3] = len(bigrams & title_bigrams) / len(bigrams)
    return out


def fusion_features(
    state: QueryState,
    rows: Sequence[int],
    components: Mapping[str, Sequence[float]],
    documents: Callable[[Sequence[str]], Mapping[str, Product]],
) -> np.ndarray:
    """A ``len(rows) x len(FUSION_FEATURES)`` float32 matrix. ``components`` maps each
    retriever's name to its scores, aligned with ``rows``; ``documents(ids)`` returns the
    products (their titles)."""
    n = len(rows)
    out = np.full((n, len(FUSION_FEATURES)), np.nan, dtype=np.float64)
    if n == 0:
        return out.astype(np.float32)
    row_array = np.asarray(rows, dtype=np.int64)
    for name, raw in components.items():
        if name not in ("bm25", "dense", "mdense"):
            continue
        values = np.asarray(raw, dtype=np.float64)
        out[:, _COLUMN[name]] = values
        out[:, _COLUMN[f"{name}_rr"]] = _reciprocal_ranks(values, name in _POSITIVE_ONLY)
        best = float(values.max())
        if name == "bm25":
            out[:, _COLUMN["bm25_rel"]] = values / best if best > 0 else 0.0
        else:
            out[:, _COLUMN[f"{name}_gap"]] = values - best
    runs = {
        name: {
            row: score
            for row, score in zip(rows, values, strict=True)
            if name not in _POSITIVE_ONLY or score > 0
        }
        for name, values in components.items()
    }
    fused = reciprocal_rank_fusion(runs, {}, DEFAULT_RRF_K)
    out[:, _COLUMN["rrf"]] = [fused.get(r, 0.0) for r in rows]

    bm25_index = state.snapshot.bm25
    text = state.parsed.lexical_text
    bm25 = np.asarray(components.get("bm25", bm25_index.scores(text, row_array)), dtype=float)
    title = bm25_index.field_score("title", text, row_array).astype(np.float64)
    out[:, _COLUMN["title_share"]] = np.where(bm25 > 0, title / np.maximum(bm25, 1e-9), 0.0)
    share, weighted = bm25_index.term_coverage(text, row_array)
    out[:, _COLUMN["coverage"]] = share
    out[:, _COLUMN["idf_coverage"]] = weighted
    out[:, _COLUMN["title_terms"]] = np.log1p(bm25_index.field_lengths("title", row_array))
    ids = [state.snapshot.row_ids[r] for r in rows]
    products = documents(ids)
    titles = [products[i].title if i in products else "" for i in ids]
    first = _COLUMN["trigram_jaccard"]
    out[:, first : first + 4] = _text_matches(state.text, titles, bm25_index.tokenizer.tokenize)
    out[:, _COLUMN["query_terms"]] = len(bm25_index.query_terms(text))
    out[:, _COLUMN["bm25_matches"]] = np.log1p(float((bm25 > 0).sum()))
    return out.astype(np.float32)
