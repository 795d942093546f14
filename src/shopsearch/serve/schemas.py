"""Request and response bodies of the HTTP API (pydantic models).

Request models forbid unknown fields and take JSON types strictly (``true`` is not an
integer, ``"5"`` not a number: a client that sends them has a bug worth hearing about);
ids follow :mod:`shopsearch.ids` (bounded, no control or bidirectional characters). Their
limits come from :class:`ServeSettings`, so they are built per app by
:func:`request_models` (and the OpenAPI schema shows the real limits). Response models
document the responses; routes return pre-serialized JSON.

(No ``from __future__ import annotations`` here: pydantic must see the real types of
models built inside a function.)
"""

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shopsearch.events.schema import ACTIONS
from shopsearch.ids import MAX_ID_CHARS, id_problem
from shopsearch.query.clean import has_searchable
from shopsearch.query.parsed import RELAXABLE
from shopsearch.serve.settings import ServeSettings

__all__ = [
    "ERRORS",
    "ERRORS_AND_NOT_FOUND",
    "RequestModels",
    "request_models",
    "valid_id",
    "valid_text",
]

DEFAULT_K = 10
DEFAULT_SUGGEST_K = 8


def valid_text(value: str) -> str:
    """Reject lone surrogates (JSON escapes like ``\\ud800``): not encodable as UTF-8."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "invalid_text", "holds an invalid Unicode escape (lone surrogate)"
            ) from None
    return value


def valid_id(value: str) -> str:
    """An id as :func:`shopsearch.ids.id_problem` defines it (the catalog and the event log
    agree), with the reason in the error."""
    problem = id_problem(value)
    if problem is not None:
        raise PydanticCustomError("invalid_id", "{problem}", {"problem": problem})
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    if not has_searchable(value):
        raise PydanticCustomError(
            "nothing_searchable",
            "has no letters or digits (only spaces, punctuation or invisible characters)",
        )
    return value


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise PydanticCustomError("not_finite", "must be a finite number")
    return value


Text = Annotated[str, AfterValidator(valid_text)]
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(valid_id),
]
Number = Annotated[float | None, AfterValidator(_finite)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchFilters(_Strict):
    """Structured filters (all must hold); empty lists and nulls filter nothing."""

    brands: list[Text] = Field(default_factory=list, max_length=100)
    colors: list[Text] = Field(default_factory=list, max_length=100)
    category: Text | None = Field(None, max_length=1000, description="a path prefix: 'A > B'")
    price_min: Number = None
    price_max: Number = None
    rating_min: Number = None


class InlineEvent(_Strict):
    """A recent event of this session that is not stored yet (personalizes this search)."""

    action_name: Literal["click", "add_to_cart", "purchase", "impression"]
    object_id: Id
    timestamp: Number = Field(
        None, ge=0, description="epoch seconds; default: now; not far in the future"
    )


assert set(ACTIONS) == {"click", "add_to_cart", "purchase", "impression"}


# ---------------------------------------------------------------------- responses


class ProductSummary(BaseModel):
    id: str
    title: str
    brand: str
    color: str
    price: float | None
    rating: float | None
    rating_count: int | None
    image: str
    category: list[str]


class SearchHit(BaseModel):
    id: str
    score: float
    scores: dict[str, float]
    product: ProductSummary | None
    explanation: dict[str, float] | None = Field(
        None,
        description="with explain: the feature groups' contributions (personal pipeline; "
        "they sum to the score) or the component scores and BM25 per field",
    )


class FacetValue(BaseModel):
    value: str
    count: int


class PriceConstraintBody(BaseModel):
    min: float | None
    max: float | None
    text: str = Field(description="as the shopper wrote it, e.g. 'under $50'")


class Constraint(BaseModel):
    kind: Literal["price", "negation", "audience", "operators"] = Field(
        description="send it in the request's `relax` to remove the constraint"
    )
    label: str
    text: str


class ParsedQueryBody(BaseModel):
    raw: str
    text: str = Field(description="what the retrievers matched")
    negated: list[str] = Field(description="phrases not wanted ('without straw')")
    excluded: list[str] = Field(description="-word exclusions")
    phrases: list[str] = Field(description='"quoted" phrases that must appear')
    price: PriceConstraintBody | None = Field(description="a price filter from the text")
    audience: list[str]
    corrected_query: str | None = Field(description="the query with its spelling corrected")
    corrections: list[dict[str, str]] = Field(description="{typed, corrected} words")
    expansions: list[str] = Field(description="synonyms and other spellings BM25 matched")
    language: str = Field(description="'en', 'zh' or 'other'")
    translation: str | None = Field(description="a Chinese query in English words")
    category: str | None = Field(description="the predicted category path")
    category_probability: float | None = None
    relaxed: list[str]
    constraints: list[Constraint] = Field(description="removable constraints (chips)")


class SearchResponse(BaseModel):
    query_id: str
    query: str
    pipeline: str
    took_ms: float
    candidates: int
    hits: list[SearchHit]
    facets: dict[str, list[FacetValue]]
    personalized: bool = Field(description="whether a stage read the shopper's context")
    parsed: ParsedQueryBody | None = Field(description="what query analysis understood")


class EventsResponse(BaseModel):
    stored: int
    duplicates: int


class Product(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    title: str
    description: str = ""
    bullet_points: str = ""
    brand: str = ""
    color: str = ""
    price: float | None = None
    category: list[str] = Field(default_factory=list)
    rating: float | None = None
    rating_count: int | None = None
    image: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)


class DeletedResponse(BaseModel):
    deleted: int


class UpsertedResponse(BaseModel):
    upserted: int


class Suggestion(BaseModel):
    text: str
    source: Literal["query", "title"]
    score: float


class SuggestResponse(BaseModel):
    suggestions: list[Suggestion]


class HealthResponse(BaseModel):
    status: str
    products: int
    events: int  # as this worker process knows it (others add events too)
    pid: int  # the worker process that answered
    reloads: int  # reloads this worker process made since it started
    pipelines: list[str]  # what POST /v1/search takes as "pipeline"
    default_pipeline: str  # what it runs without one


class ReloadResponse(BaseModel):
    reloaded: bool
    products: int
    pipelines: list[str]
    default_pipeline: str
    took_ms: float


class SuggestionRemovedResponse(BaseModel):
    removed: str
    was_suggested: bool  # by the worker process that answered


class ErrorResponse(BaseModel):
    message: str
    code: str
    type: str


#: The error responses every keyed route documents (all in the ErrorResponse shape).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "invalid request"),
        (401, "missing or invalid API key (checked before the body is read)"),
        (403, "the key lacks the scope"),
        (413, "body too large"),
        (422, "validation failed"),
        (429, "rate limited (see Retry-After)"),
        (503, "overloaded: too many searches waiting (see Retry-After)"),
    )
}
ERRORS_AND_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorResponse},
}


# ---------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestModels:
    """The request bodies, and the query parameters with limits, of one server: route
    modules declare their routes with them (``routes.search.router(models)``)."""

    search: type[BaseModel]
    events: type[BaseModel]
    bulk: type[BaseModel]
    prefix: Any  # GET /v1/suggest?q=
    suggest_k: Any  # GET /v1/suggest?k=
    phrase: Any  # DELETE /v1/admin/suggestions?phrase=


def request_models(settings: ServeSettings) -> RequestModels:
    """The request bodies and query parameters with this server's limits."""

    class Event(InlineEvent):
        @field_validator("timestamp")
        @classmethod
        def not_far_future(cls, value: float | None) -> float | None:
            limit = settings.max_event_future_s
            if value is not None and value > time.time() + limit:
                raise PydanticCustomError(
                    "future_timestamp",
                    f"{value:.0f} (epoch seconds) is more than {limit:,.0f} s in the future: "
                    "clients' clocks may be off by that much, no more",
                )
            return value

    class SearchRequest(_Strict):
        query: Annotated[
            str,
            StringConstraints(min_length=1, max_length=settings.max_query_chars),
            AfterValidator(_not_blank),
            AfterValidator(valid_text),
        ]
        k: int = Field(DEFAULT_K, ge=1, le=settings.max_k)
        filters: SearchFilters | None = None
        facets: bool = True
        pipeline: Text | None = Field(None, description="default: the index's default pipeline")
        user_id: Id | None = Field(None, description="the shopper (UBI client_id)")
        session_id: Id | None = None
        events: list[Event] = Field(default_factory=list, max_length=settings.max_inline_events)
        explain: bool = False
        relax: list[Literal[RELAXABLE]] = Field(  # type: ignore[valid-type]
            default_factory=list,
            max_length=len(RELAXABLE),
            description="parts of the query analysis to switch off for this search",
        )

    class EventsRequest(_Strict):
        records: list[Any] = Field(
            min_length=1,
            max_length=settings.max_batch,
            description="UBI query and event records (the JSONL format of `events ingest`)",
        )

    class BulkRequest(_Strict):
        products: list[Any] = Field(
            min_length=1,
            max_length=settings.max_batch,
            description="product objects (the catalog's JSONL format)",
        )

    prefix = Annotated[
        str,
        Query(min_length=1, max_length=settings.max_query_chars, description="a prefix"),
        AfterValidator(valid_text),
    ]
    suggest_k = Annotated[int, Query(ge=1, le=settings.max_k)]
    phrase = Annotated[
        str,
        Query(
            min_length=1,
            max_length=settings.max_query_chars,
            description="the query as shoppers typed it (case and spacing ignored)",
        ),
        AfterValidator(valid_text),
    ]
    return RequestModels(SearchRequest, EventsRequest, BulkRequest, prefix, suggest_k, phrase)
