"""What a search takes and gives: the request, the shopper, hits and the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopsearch.catalog.schema import Product
from shopsearch.index.filters import Filters
from shopsearch.query import ParsedQuery

__all__ = ["Hit", "SearchRequest", "SearchResult", "Shopper"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One result: its id, final score, and every component score that produced it."""

    product_id: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)
    product: Product | None = None


@dataclass(frozen=True)
class SearchResult:
    query: str
    pipeline: str
    hits: list[Hit]
    facets: dict[str, list[tuple[str, int]]]
    candidates: int  # rows considered (after filters) before the top k were cut
    took_ms: float
    stages: tuple[str, ...] = ()  # the stages that ran, in order
    parsed: ParsedQuery | None = None  # what query analysis understood

    @property
    def personalized(self) -> bool:
        """Whether a stage that reads the shopper's context (the personal stage) ran."""
        return "personal" in self.stages or self.pipeline == "personal"


@dataclass(frozen=True)
class Shopper:
    """Who is searching: a shopper id (``client_id``), a session and the session's recent
    events not stored yet (e.g. ``SimpleEvent``). Only stages that declare ``needs_shopper``
    read it."""

    user: str | None = None
    session: str | None = None
    events: Sequence[Any] = ()


@dataclass(frozen=True)
class SearchRequest:
    """One search as asked: ``k`` results for ``query`` under ``filters``, and what to return."""

    query: str
    k: int
    filters: Filters = field(default_factory=Filters)
    shopper: Shopper = field(default_factory=Shopper)
    explain: bool = False
    facets: bool = True
    products: bool = True
