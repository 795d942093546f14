"""Search and autocomplete (scope ``search``): ``POST /v1/search``, ``GET /v1/suggest``.

Both are CPU-bound: they run through the search gate (``Searches``), on its threads, with
the index generation leased there. A served search is queued for the query log as a UBI
query record (its ``query_id`` links the shopper's later events to it) and, counted by
shopper, for autocomplete.

(No ``from __future__ import annotations``: FastAPI reads the real annotations of the
routes, whose body models are this app's.)
"""

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from shopsearch.catalog.schema import Product
from shopsearch.context.profiles import SimpleEvent
from shopsearch.events.schema import QueryRecord
from shopsearch.index.filters import Filters
from shopsearch.pipeline import SearchResult
from shopsearch.serve import schemas
from shopsearch.serve.dependencies import Auth, Searches, SearchKey
from shopsearch.serve.middleware import LOG_FIELDS_SCOPE_KEY
from shopsearch.serve.responses import json_response
from shopsearch.serve.state import Generation, ServeState

__all__ = ["ANONYMOUS_CLIENT", "router"]

ANONYMOUS_CLIENT = "anonymous"  # the UBI client_id of a search without a user_id


def router(models: schemas.RequestModels, *, autocomplete: bool = True) -> APIRouter:
    """The routes with this server's request limits (``models``); ``autocomplete``: with
    ``/v1/suggest`` (``shopsearch.suggest`` is installed)."""
    routes = APIRouter(tags=["search"])

    @routes.post(
        "/v1/search",
        response_model=schemas.SearchResponse,
        responses=schemas.ERRORS,
        summary="Search the catalog",
    )
    async def search(
        request: Request,
        body: models.search,  # type: ignore[name-defined]  # (this app's model)
        key: SearchKey,
        auth: Auth,
        searches: Searches,
    ) -> Response:
        shopper = auth.shopper(request.scope, key, body.user_id, body.session_id)
        return await searches.run(run_search, searches.state, request, body, shopper)

    if autocomplete:

        @routes.get(
            "/v1/suggest",
            response_model=schemas.SuggestResponse,
            responses=schemas.ERRORS,
            summary="Autocomplete a query prefix",
        )
        async def suggest(
            q: models.prefix,  # type: ignore[name-defined]  # (this app's limits)
            key: SearchKey,
            searches: Searches,
            k: models.suggest_k = schemas.DEFAULT_SUGGEST_K,  # type: ignore[name-defined]
        ) -> Response:
            return await searches.run(run_suggest, q, k)

    return routes


def run_search(
    generation: Generation, state: ServeState, request: Request, body: Any, shopper: str
) -> Response:
    """(On the gate's thread.) One search on ``generation``, queued for the query log."""
    now = time.time()
    events = [
        SimpleEvent(e.action_name, e.object_id, now if e.timestamp is None else e.timestamp)
        for e in body.events
    ]
    result = generation.pipeline.search(
        body.query,
        body.k,
        filters=_filters(body.filters),
        pipeline=generation.check_pipeline(body.pipeline),
        facets=body.facets,
        explain=body.explain,
        user=body.user_id,
        session=body.session_id,
        session_events=events,
        relax=body.relax,
    )
    query_id = str(uuid.uuid4())
    request.scope[LOG_FIELDS_SCOPE_KEY] = {"query_id": query_id}
    state.log_query(_query_record(query_id, body, result, now), shopper)
    return json_response(_search_body(query_id, result, body.explain))


def run_suggest(generation: Generation, q: str, k: int) -> Response:
    """(On the gate's thread.)"""
    found = generation.suggest(q, k)
    suggestions = [{"text": s.text, "source": s.source, "score": float(s.score)} for s in found]
    return json_response({"suggestions": suggestions})


def _filters(filters: schemas.SearchFilters | None) -> Filters | None:
    if filters is None:
        return None
    return Filters(
        brands=tuple(filters.brands),
        colors=tuple(filters.colors),
        category=filters.category,
        price_min=filters.price_min,
        price_max=filters.price_max,
        rating_min=filters.rating_min,
    )


def _summary(product: Product | None) -> dict[str, Any] | None:
    if product is None:
        return None
    return {
        "id": product.id,
        "title": product.title,
        "brand": product.brand,
        "color": product.color,
        "price": product.price,
        "rating": product.rating,
        "rating_count": product.rating_count,
        "image": product.image,
        "category": list(product.category),
    }


def _search_body(query_id: str, result: SearchResult, explain: bool) -> dict[str, Any]:
    personal = result.personalized
    hits = []
    for hit in result.hits:
        scores = {k: float(v) for k, v in hit.scores.items() if "." not in k}
        explanation = None
        if explain:
            if personal:
                explanation = {
                    k[4:]: float(v) for k, v in hit.scores.items() if k.startswith("ltr.")
                }
            else:
                explanation = {k: float(v) for k, v in hit.scores.items()}
        hits.append(
            {
                "id": hit.product_id,
                "score": float(hit.score),
                "scores": scores,
                "product": _summary(hit.product),
                "explanation": explanation,
            }
        )
    return {
        "query_id": query_id,
        "query": result.query,
        "pipeline": result.pipeline,
        "took_ms": round(result.took_ms, 3),
        "candidates": int(result.candidates),
        "personalized": personal,
        "parsed": result.parsed.to_dict() if result.parsed is not None else None,
        "hits": hits,
        "facets": {
            name: [{"value": str(v), "count": int(n)} for v, n in values]
            for name, values in result.facets.items()
        },
    }


def _query_record(query_id: str, body: Any, result: SearchResult, now: float) -> QueryRecord:
    """The UBI query record of a served search (``query_id`` links later events to it)."""
    filters: dict[str, Any] = {}
    if body.filters is not None:
        filters = {k: v for k, v in body.filters.model_dump().items() if v is not None and v != []}
    return QueryRecord(
        query_id=query_id,
        client_id=body.user_id or ANONYMOUS_CLIENT,
        session_id=body.session_id,
        user_query=body.query,
        timestamp=now,
        filters=filters,
        extra={
            "application": "shopsearch-serve",
            "query_attributes": {"pipeline": result.pipeline, "k": body.k},
            "query_response_hit_ids": [h.product_id for h in result.hits],
        },
    )
