"""Result rules from the parsed query, applied to the fused candidates before any second
stage: what the retrievers cannot express.

* **Negation**: a product whose title states a negated phrase ("with straw", "straw lid")
  loses ``negation_demote`` x the spread of the candidates' scores; one that states its
  absence ("no straw", "straw-free") gains ``lacks_boost`` x the spread.
* **Audience**: a product whose title or category names the query's audience gains
  ``audience_boost`` x the spread; one that names only audiences the query's does not
  suit (women's for "mens", not kids' for "toddler") loses as much.
* **Category**: when the query's predicted category (:mod:`shopsearch.search.category`) is
  confident enough, products filed in another category lose ``category_boost`` x the
  spread (products without a category, e.g. just added, are left alone).
* **Quoted phrases**: candidates whose title, brand, colour, category or bullets do not
  contain the phrase (after normalisation) are dropped (the retrievers already kept only
  rows with all its words).

The spread (best minus worst score among the candidates) keeps the rules on the scale of
any fusion or retriever; each hit's change is recorded as its ``rules`` score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from shopsearch.catalog.schema import Product
from shopsearch.index.config import AnalysisConfig
from shopsearch.query import ParsedQuery
from shopsearch.query.audience import compatible, product_audiences
from shopsearch.query.negation import mention
from shopsearch.query.negation import stems as _tokens
from shopsearch.search.category import CategoryPrediction, predictor_for
from shopsearch.search.shaping import attach_documents
from shopsearch.search.state import QueryState
from shopsearch.search.types import Hit
from shopsearch.text.normalize import key

__all__ = ["ResultRules"]

Documents = Callable[[Sequence[str]], Mapping[str, Product]]


def _phrase_text(product: Product) -> str:
    parts = (product.title, product.brand, product.color, product.category_path)
    return key(" ".join([*parts, product.bullet_points or ""]))


def _suits(audiences: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(compatible(a) for a in audiences))


class ResultRules:
    """The parsed query's rules over fused hits (see the module docstring)."""

    name = "rules"

    def __init__(self, config: AnalysisConfig, documents: Documents) -> None:
        self.config = config
        self.documents = documents

    def applies(self, parsed: ParsedQuery, category: CategoryPrediction | None = None) -> bool:
        config = self.config
        return bool(
            (parsed.negated and (config.negation_demote or config.lacks_boost))
            or (parsed.audience and config.audience_boost)
            or parsed.phrases
            or (category is not None and self._confident(category))
        )

    def _confident(self, category: CategoryPrediction) -> bool:
        config = self.config
        return bool(config.category_boost) and (
            category.probability >= config.category_min_probability
        )

    def predict_category(self, state: QueryState) -> CategoryPrediction | None:
        """The query's category when a dense retriever embedded the query (else ``None``:
        a BM25-only search does not pay for an embedding); recorded in ``state.parsed``."""
        if not self.config.enabled or not state.has_query_vector:
            return None
        prediction = predictor_for(state.snapshot).predict(state.query_vector())
        if prediction is not None:
            state.parsed = replace(
                state.parsed,
                category=prediction.label,
                category_probability=round(prediction.probability, 4),
            )
        return prediction

    def apply(self, state: QueryState, hits: list[Hit]) -> list[Hit]:
        """The hits with the rules applied, best first (ties keep their order)."""
        parsed = state.parsed
        category = self.predict_category(state)
        if not hits or not self.applies(parsed, category):
            return hits
        hits = attach_documents(hits, self.documents)
        if parsed.phrases:
            wanted = [key(p) for p in parsed.phrases]
            hits = [
                h
                for h in hits
                if h.product is not None and all(p in _phrase_text(h.product) for p in wanted)
            ]
            if not hits:
                return hits
        scores = [h.score for h in hits]
        spread = (max(scores) - min(scores)) or 1.0
        wanted = self._wanted(parsed)
        elsewhere = set()  # products in another (known) category than the predicted one
        if category is not None and self._confident(category):
            predictor, id_to_row = predictor_for(state.snapshot), state.snapshot.id_to_row
            elsewhere = {
                h.product_id
                for h in hits
                if predictor.elsewhere(id_to_row.get(h.product_id, -1), category)
            }
        out = []
        for h in hits:
            change = self._change(parsed, wanted, h.product)
            if h.product_id in elsewhere:
                change -= self.config.category_boost
            change *= spread
            if change:
                h = Hit(h.product_id, h.score + change, {**h.scores, "rules": change}, h.product)
            out.append(h)
        order = sorted(range(len(out)), key=lambda i: -out[i].score)
        return [out[i] for i in order]

    @staticmethod
    def _wanted(parsed: ParsedQuery) -> tuple[str, ...]:
        """Negated phrases whose words the query also asks for ("silverware box without
        silverware"): a product that has them is not demoted."""
        kept = set(_tokens(parsed.text))
        return tuple(p for p in parsed.negated if set(_tokens(p)) <= kept)

    def _change(
        self, parsed: ParsedQuery, wanted: tuple[str, ...], product: Product | None
    ) -> float:
        if product is None:
            return 0.0
        config = self.config
        change = 0.0
        for phrase in parsed.negated:
            found = mention(product.title, phrase)
            if found == "positive" and phrase not in wanted:
                change -= config.negation_demote
            elif found == "lacks":
                change += config.lacks_boost
        if parsed.audience and config.audience_boost:
            named = product_audiences(f"{product.title} {product.category_path}")
            if named & set(parsed.audience):
                change += config.audience_boost
            elif named and not named & _suits(parsed.audience):  # for someone else
                change -= config.audience_boost
        return change
