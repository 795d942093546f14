"""Operations (scope ``admin``): ``POST /v1/admin/reload`` (reopen the index directory in
every worker), ``DELETE /v1/admin/suggestions`` (never suggest a query again, in every
worker, kept across restarts) and ``GET /metrics`` (Prometheus, summed over the workers).

(No ``from __future__ import annotations``: FastAPI reads the real annotations of the
routes, whose query parameters carry this app's limits.)
"""

import logging
import time

from fastapi import APIRouter
from starlette.responses import Response

from shopsearch.errors import ShopSearchError
from shopsearch.serve import schemas
from shopsearch.serve.dependencies import AdminKey, AppMetrics, State
from shopsearch.serve.errors import ApiError
from shopsearch.serve.metrics import CONTENT_TYPE_LATEST
from shopsearch.serve.responses import json_response

__all__ = ["router"]

logger = logging.getLogger("shopsearch.serve")


def router(models: schemas.RequestModels, *, autocomplete: bool = True) -> APIRouter:
    """The routes with this server's query limits (``models``); ``autocomplete``: with
    ``/v1/admin/suggestions`` (``shopsearch.suggest`` is installed)."""
    routes = APIRouter()
    routes.add_api_route(
        "/v1/admin/reload",
        reload,
        methods=["POST"],
        response_model=schemas.ReloadResponse,
        responses=schemas.ERRORS,
        tags=["admin"],
        summary="Reopen the index directory (new snapshot, model, reranker) without downtime",
    )
    if autocomplete:

        @routes.delete(
            "/v1/admin/suggestions",
            response_model=schemas.SuggestionRemovedResponse,
            responses=schemas.ERRORS,
            tags=["admin"],
            summary="Never suggest a query phrase again (every worker; survives restarts)",
        )
        def remove_suggestion(
            phrase: models.phrase,  # type: ignore[name-defined]  # (this app's limits)
            key: AdminKey,
            state: State,
        ) -> Response:
            try:
                suggested = state.remove_suggestion(phrase)
            except ValueError:
                raise ApiError(400, "invalid_phrase", "query.phrase: must not be blank") from None
            return json_response({"removed": phrase, "was_suggested": suggested})

    routes.add_api_route(
        "/metrics",
        prometheus,
        methods=["GET"],
        tags=["operations"],
        responses=schemas.ERRORS,
        summary="Prometheus metrics",
    )
    return routes


def reload(key: AdminKey, state: State) -> Response:
    started = time.perf_counter()
    try:
        generation = state.reload()
    except Exception as exc:
        logger.exception("reload failed; still serving the previous index")
        detail = str(exc) if isinstance(exc, ShopSearchError) else type(exc).__name__
        raise ApiError(
            503,
            "reload_failed",
            f"reload failed, still serving the previous index: {detail}",
            type="api_error",
        ) from None
    return json_response(
        {
            "reloaded": True,
            "products": len(generation.pipeline),
            "pipelines": list(generation.pipelines),
            "default_pipeline": generation.default_pipeline,
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
        }
    )


def prometheus(key: AdminKey, state: State, metrics: AppMetrics) -> Response:
    if metrics.multiprocess_dir is not None:  # the other workers add events too: count them all
        state.refresh()
        state.count_events()
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
