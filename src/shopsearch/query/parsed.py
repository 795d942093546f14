"""What query analysis returns: the parsed query every later stage reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RELAXABLE", "ParsedQuery", "PriceConstraint"]

#: parts of the analysis a caller may switch off for one search (``relax``): a removable
#: constraint chip, or "search instead for" the query as typed
RELAXABLE = ("translation", "spelling", "price", "negation", "audience", "operators", "synonyms")


@dataclass(frozen=True)
class PriceConstraint:
    """A price range from the query text; ``None`` for an open end. ``text`` is what the
    shopper wrote ("under $50")."""

    min: float | None
    max: float | None
    text: str

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"price ${self.min:g}-${self.max:g}"
        if self.max is not None:
            return f"price <= ${self.max:g}"
        return f"price >= ${self.min:g}"


@dataclass(frozen=True)
class ParsedQuery:
    """The query as typed (``raw``) and as understood.

    ``text`` is what retrievers and rerankers match: the query without negated phrases,
    excluded words and price words. ``negated``: phrases the shopper does not want
    ("straw"), demoted when a product states them. ``excluded``: ``-word`` exclusions
    (products containing them are removed). ``phrases``: ``"quoted"`` phrases that must
    appear. ``price``: a price filter from the text. ``audience``: men / women / kids /
    toddler / baby / boys / girls, a soft boost. ``corrected``: the whole query with its
    spelling corrected ("Showing results for ..."), ``None`` when nothing was corrected;
    ``corrections``: ``(typed, corrected)`` words. ``expansions``: synonyms, compounds and
    other spellings of quantities that BM25 also matches ("tshirt" -> "t-shirt",
    "32 oz" -> "32 ounce"). ``language``: ``"en"``, ``"zh"`` or ``"other"``;
    ``translation``: the query in English words where it was not (the rules above then
    apply to it). ``category``: the predicted category path ("A > B") and its
    probability, when a dense retriever ran. ``relaxed``: the parts switched off for
    this search.
    """

    raw: str
    text: str
    negated: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    price: PriceConstraint | None = None
    audience: tuple[str, ...] = ()
    corrected: str | None = None
    corrections: tuple[tuple[str, str], ...] = ()
    expansions: tuple[str, ...] = ()
    language: str = "en"
    translation: str | None = None
    category: str | None = None
    category_probability: float | None = None
    relaxed: tuple[str, ...] = field(default=())

    @property
    def lexical_text(self) -> str:
        """What BM25 matches: the text and its expansions."""
        return " ".join((self.text, *self.expansions))

    @property
    def rewritten(self) -> bool:
        """Whether matching uses other text than the query as typed."""
        return self.text != " ".join(self.raw.split())

    @property
    def has_rules(self) -> bool:
        """Whether a result rule applies (negation, exclusion, phrase, audience)."""
        return bool(self.negated or self.excluded or self.phrases or self.audience)

    def constraints(self) -> list[dict[str, Any]]:
        """The removable constraints, as a storefront shows them (chips)."""
        out: list[dict[str, Any]] = []
        if self.price is not None:
            out.append({"kind": "price", "label": self.price.describe(), "text": self.price.text})
        for phrase in self.negated:
            out.append({"kind": "negation", "label": f"without {phrase}", "text": phrase})
        for word in self.excluded:
            out.append({"kind": "operators", "label": f"not {word}", "text": f"-{word}"})
        for phrase in self.phrases:
            out.append({"kind": "operators", "label": f'"{phrase}"', "text": phrase})
        for audience in self.audience:
            out.append({"kind": "audience", "label": f"for {audience}", "text": audience})
        return out

    def to_dict(self) -> dict[str, Any]:
        price = None
        if self.price is not None:
            price = {"min": self.price.min, "max": self.price.max, "text": self.price.text}
        return {
            "raw": self.raw,
            "text": self.text,
            "negated": list(self.negated),
            "excluded": list(self.excluded),
            "phrases": list(self.phrases),
            "price": price,
            "audience": list(self.audience),
            "corrected_query": self.corrected,
            "corrections": [{"typed": a, "corrected": b} for a, b in self.corrections],
            "expansions": list(self.expansions),
            "language": self.language,
            "translation": self.translation,
            "category": self.category,
            "category_probability": self.category_probability,
            "relaxed": list(self.relaxed),
            "constraints": self.constraints(),
        }
