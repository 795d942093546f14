"""The HTTP API: ``create_app(index_dir, settings) -> FastAPI``.

>>> app = create_app("indexes/esci-us", ServeSettings())        # doctest: +SKIP
>>> uvicorn.run(app, port=8080)                                # doctest: +SKIP

Routes (all but ``/healthz``, ``/`` and ``/static/*`` need a key, sent as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``):

========================  ======  ===================================================
route                     scope   what
========================  ======  ===================================================
POST /v1/search           search  search, personalized by user/session/inline events
GET  /v1/suggest          search  autocomplete (query log + catalog titles)
POST /v1/events           events  store UBI query/event records (durable on 200)
GET  /v1/products/{id}    search  one product
PUT  /v1/products/{id}    admin   add or replace a product (searchable on return)
DELETE /v1/products/{id}  admin   remove a product
POST /v1/products/bulk    admin   add or replace many products
POST /v1/admin/reload     admin   reopen the index directory (also SIGHUP)
DELETE /v1/admin/suggestions admin never suggest a query phrase again (all workers, kept)
GET  /metrics             admin   Prometheus metrics
GET  /openapi.json, /docs any     the API description
GET  /healthz (and HEAD)  none    liveness and sizes
GET  /, /static/*         none    the storefront page (with an ephemeral search+events key)
========================  ======  ===================================================

The key is checked (and rate limits applied, per client too for the storefront's public key)
before a request's body is read (:mod:`~shopsearch.serve.auth`); the connection layer
bounds request heads and how long a client may take to send a request
(:mod:`~shopsearch.serve.protocol`, used by ``shopsearch serve``). There are no redirects
(``/v1/search/`` is a 404), so no response is built from the ``Host`` header.

Searches (and autocomplete) run on at most ``search_concurrency`` threads per process
(:class:`~shopsearch.serve.gate.Gate`); beyond ``max_queued_searches`` waiting, 503
``overloaded``. With worker processes (``shared``: see :mod:`shopsearch.serve.shared`), the
rate limits, the reloads and the metrics are shared by the workers, and every request
first catches up with what the others wrote (:meth:`ServeState.refresh`). Every response
says which process answered it (``X-Worker: <pid>``).

(No ``from __future__ import annotations``: FastAPI reads the real annotations of the
routes, whose body models are built per app.)
"""

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.responses import HTMLResponse, Response

from shopsearch.catalog.loaders import normalize_row
from shopsearch.catalog.schema import Product
from shopsearch.context.profiles import SimpleEvent
from shopsearch.errors import BadRowError, EventRecordError, ShopSearchError
from shopsearch.events.schema import QueryRecord, format_timestamp, parse_record
from shopsearch.index.filters import Filters
from shopsearch.models.encoders import Encoder
from shopsearch.pipeline import SearchResult
from shopsearch.serve import schemas
from shopsearch.serve.auth import Authenticator, needs_key
from shopsearch.serve.errors import ApiError, install_error_handlers
from shopsearch.serve.gate import Gate
from shopsearch.serve.keys import STOREFRONT_KEY_NAME, ApiKey, KeyFile, Keyring
from shopsearch.serve.logs import ACCESS_LOGGER
from shopsearch.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from shopsearch.serve.middleware import (
    LOG_FIELDS_SCOPE_KEY,
    AuthMiddleware,
    BodyLimitMiddleware,
    CORSErrorMiddleware,
    ObservabilityMiddleware,
)
from shopsearch.serve.protocol import REFUSED_HOOK
from shopsearch.serve.ratelimit import ClientRateLimiter, RateLimiter, SharedRateLimiter
from shopsearch.serve.settings import ServeSettings
from shopsearch.serve.shared import SharedDir
from shopsearch.serve.state import Generation, ServeState
from shopsearch.serve.suggestions import Blocklist

__all__ = ["STATIC_DIR", "STOREFRONT_KEY_PLACEHOLDER", "create_app"]

logger = logging.getLogger("shopsearch.serve")

STATIC_DIR = Path(__file__).parent / "static"
STOREFRONT_KEY_PLACEHOLDER = "__SHOPSEARCH_STOREFRONT_KEY__"
ANONYMOUS_CLIENT = "anonymous"  # the UBI client_id of a search without a user_id
_MAX_PROBLEMS = 20  # bad records/products named in one error message
_SAMPLE_INTERVAL_S = 0.5  # how often a worker process writes its gauges (multi-process)
_PLACEHOLDER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shopsearch</title></head>
<body><h1>shopsearch</h1><p>The storefront page is not installed. The API is at
<code>/v1/search</code>; see <code>/docs</code> (needs a key).</p>
<script>window.SHOPSEARCH_KEY = "__SHOPSEARCH_STOREFRONT_KEY__";</script></body></html>
"""
#: The storefront page's Content-Security-Policy header: its <meta> policy, plus what only
#: a header can say (no framing: clickjacking).
STOREFRONT_CSP = (
    "default-src 'self'; img-src 'self' https: http: data:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
STOREFRONT_HEADERS = {
    "Cache-Control": "no-store",  # it carries a key that dies with the process
    "Content-Security-Policy": STOREFRONT_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
    )


def create_app(
    index_dir: str | Path,
    settings: ServeSettings | None = None,
    *,
    encoder: Encoder | None = None,
    storefront_key: str | None = None,
    shared: SharedDir | None = None,
) -> FastAPI:
    """The API over one index directory (opened now; closed at the app's shutdown).

    ``encoder``: reuse an already loaded encoder (tests); by default the index's own.
    ``storefront_key``: the storefront page's ephemeral key (default: a new one; worker
    processes get their parent's). ``shared``: the directory the worker processes of one
    server share (rate limits, reloads, metrics); ``None`` for a single process.
    The app's ``state`` holds ``shopsearch`` (:class:`ServeState`), ``keyring``,
    ``storefront_key``, ``metrics``, ``settings`` and ``search_gate``.
    """
    settings = settings or ServeSettings()
    keyring = Keyring(KeyFile(index_dir))
    storefront_key = keyring.add_ephemeral(
        STOREFRONT_KEY_NAME,
        settings.storefront_scopes,
        rate_limit=settings.storefront_rate_limit,
        burst=settings.storefront_burst,
        key=storefront_key,
    )
    metrics = Metrics(None if shared is None else shared.metrics)
    blocklist = Blocklist.load(settings.suggest_blocklist, settings.suggest_blocklist_file)

    def reloaded(generation: Generation) -> None:  # whoever asked (this process or another)
        keyring.reload()
        metrics.reloads.inc()

    state = ServeState(
        index_dir,
        encoder=encoder,
        query_cache_size=settings.query_cache_size,
        reload_marker=None if shared is None else shared.reload_marker,
        watch_interval_s=None if shared is None else 0.5,
        on_reload=reloaded,
        suggest_min_shoppers=settings.suggest_min_shoppers,
        suggest_blocklist=blocklist,
    )
    metrics.bind(
        products=lambda: len(state.current.pipeline),
        events=lambda: state.events_count,
        pending=lambda: state.query_log.pending,
        cache_hits=lambda: getattr(state.current.pipeline.encoder, "hits", 0),
        cache_misses=lambda: getattr(state.current.pipeline.encoder, "misses", 0),
    )
    authenticator = Authenticator(
        keyring,
        settings,
        metrics,
        keys=RateLimiter() if shared is None else SharedRateLimiter(shared.rate_limits),
        clients=ClientRateLimiter(
            None if shared is None else shared.client_limits, settings.client_table_slots
        ),
    )
    gate = Gate(settings.search_concurrency, settings.max_queued_searches)
    models = schemas.request_models(settings)
    storefront = _StorefrontPage(storefront_key)

    lifespans = [0]  # running lifespans: test clients may run more than one at a time

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        lifespans[0] += 1
        await anyio.to_thread.run_sync(state.start)  # already open, unless closed before
        sampler = None
        if shared is not None:
            sampler = asyncio.create_task(_sample_metrics(metrics))
        try:
            yield {REFUSED_HOOK: _refusal_recorder(metrics)}  # the connection layer's refusals
        finally:
            if sampler is not None:
                sampler.cancel()
            lifespans[0] -= 1
            if lifespans[0] == 0:  # graceful shutdown: flush the query log, close the index
                await anyio.to_thread.run_sync(state.close)
                metrics.process_exited()

    app = FastAPI(
        title="shopsearch",
        summary="Context-aware e-commerce product search",
        version=_version(),
        openapi_url=None,  # served below, behind a key
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would be built from the Host header
    )
    app.state.shopsearch = state
    app.state.keyring = keyring
    app.state.storefront_key = storefront_key
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.search_gate = gate
    app.state.authenticator = authenticator
    install_error_handlers(app)
    # (the last added runs first)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, authenticate=authenticator.authenticate, needs_key=needs_key)
    if settings.cors_origins:
        app.add_middleware(
            CORSErrorMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "X-Shopper-Id", "Content-Type"],
            expose_headers=["Retry-After"],
        )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, routes=app.router.routes)

    AnyKey = Annotated[ApiKey, Depends(authenticator.dependency(None))]
    SearchKey = Annotated[ApiKey, Depends(authenticator.dependency("search"))]
    EventsKey = Annotated[ApiKey, Depends(authenticator.dependency("events"))]
    AdminKey = Annotated[ApiKey, Depends(authenticator.dependency("admin"))]
    ProductId = Annotated[
        str,
        PathParam(min_length=1, max_length=schemas.MAX_ID_CHARS),
        AfterValidator(schemas.valid_id),
    ]

    errors = {
        status: {"model": schemas.ErrorResponse, "description": description}
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

    # ------------------------------------------------------------------ search

    @app.post(
        "/v1/search",
        response_model=schemas.SearchResponse,
        responses=errors,
        tags=["search"],
        summary="Search the catalog",
    )
    async def search(request: Request, body: models.search, key: SearchKey) -> Response:
        shopper = authenticator.shopper(request.scope, key, body.user_id, body.session_id)
        return await gate.run(run_search, request, body, shopper)

    def run_search(request: Request, body: Any, shopper: str) -> Response:
        now = time.time()
        filters = _filters(body.filters)
        events = [
            SimpleEvent(e.action_name, e.object_id, now if e.timestamp is None else e.timestamp)
            for e in body.events
        ]
        with state.lease() as generation:
            result = generation.pipeline.search(
                body.query,
                body.k,
                filters=filters,
                pipeline=generation.check_pipeline(body.pipeline),
                facets=body.facets,
                explain=body.explain,
                user=body.user_id,
                session=body.session_id,
                session_events=events,
            )
        query_id = str(uuid.uuid4())
        request.scope[LOG_FIELDS_SCOPE_KEY] = {"query_id": query_id}
        state.log_query(_query_record(query_id, body, result, now), shopper)
        return json_response(_search_body(query_id, result, body.explain))

    if state.suggest_available:

        @app.get(
            "/v1/suggest",
            response_model=schemas.SuggestResponse,
            responses=errors,
            tags=["search"],
            summary="Autocomplete a query prefix",
        )
        async def suggest(
            q: Annotated[
                str,
                Query(min_length=1, max_length=settings.max_query_chars, description="a prefix"),
                AfterValidator(schemas.valid_text),
            ],
            key: SearchKey,
            k: Annotated[int, Query(ge=1, le=settings.max_k)] = schemas.DEFAULT_SUGGEST_K,
        ) -> Response:
            return await gate.run(run_suggest, q, k)

        def run_suggest(q: str, k: int) -> Response:
            with state.lease() as generation:
                found = generation.suggest(q, k)
            return json_response(
                {
                    "suggestions": [
                        {"text": s.text, "source": s.source, "score": float(s.score)} for s in found
                    ]
                }
            )

    # ------------------------------------------------------------------ events

    @app.post(
        "/v1/events",
        response_model=schemas.EventsResponse,
        responses=errors,
        tags=["events"],
        summary="Store user-behaviour records (UBI); durable when answered",
    )
    def post_events(body: models.events, key: EventsKey) -> Response:
        records = []
        problems = []
        latest = time.time() + settings.max_event_future_s
        for i, obj in enumerate(body.records):
            try:
                records.append(parse_record(obj, f"records[{i}]"))
            except EventRecordError as exc:
                problems.append(str(exc))
                continue
            if records[-1].timestamp > latest:
                problems.append(_future_problem(f"records[{i}]", records[-1].timestamp, settings))
        if problems:
            raise ApiError(400, "invalid_record", _problems_message(problems, "records"))
        result = state.add_records(records)
        new = result.queries_new + result.events_new
        return json_response({"stored": new, "duplicates": result.duplicates})

    # ------------------------------------------------------------------ products

    @app.post(
        "/v1/products/bulk",
        response_model=schemas.UpsertedResponse,
        responses=errors,
        tags=["products"],
        summary="Add or replace many products (searchable and durable on return)",
    )
    def bulk_upsert(body: models.bulk, key: AdminKey) -> Response:
        products: list[Product] = []
        problems = []
        for i, row in enumerate(body.products):
            try:
                products.append(_product(row))
            except BadRowError as exc:
                problems.append(f"products[{i}]: {exc.reason}")
        if problems:
            raise ApiError(400, "invalid_product", _problems_message(problems, "products"))
        state.upsert(products)
        return json_response({"upserted": len({p.id for p in products})})

    @app.get(
        "/v1/products/{product_id:path}",
        response_model=schemas.Product,
        responses={**errors, 404: {"model": schemas.ErrorResponse}},
        tags=["products"],
        summary="One product",
    )
    def get_product(product_id: ProductId, key: SearchKey) -> Response:
        with state.lease() as generation:
            product = generation.pipeline.get(product_id)
        if product is None:
            raise ApiError(404, "not_found", f"no product {product_id!r}")
        return json_response(product.to_dict())

    @app.put(
        "/v1/products/{product_id:path}",
        response_model=schemas.Product,
        responses=errors,
        tags=["products"],
        summary="Add or replace a product (searchable and durable on return)",
    )
    def put_product(
        product_id: ProductId,
        body: Annotated[
            dict[str, Any],
            Body(description="a product in the catalog's format; its id, if given, must match"),
        ],
        key: AdminKey,
    ) -> Response:
        row = dict(body)
        row.setdefault("id", product_id)
        try:
            product = _product(row)
        except BadRowError as exc:
            raise ApiError(400, "invalid_product", f"product: {exc.reason}") from None
        if product.id != product_id:
            raise ApiError(
                400,
                "id_mismatch",
                f"the body's id {product.id!r} is not the path's {product_id!r}",
            )
        state.upsert([product])
        return json_response(product.to_dict())

    @app.delete(
        "/v1/products/{product_id:path}",
        response_model=schemas.DeletedResponse,
        responses={**errors, 404: {"model": schemas.ErrorResponse}},
        tags=["products"],
        summary="Remove a product",
    )
    def delete_product(product_id: ProductId, key: AdminKey) -> Response:
        if state.delete(product_id) == 0:
            raise ApiError(404, "not_found", f"no product {product_id!r}")
        return json_response({"deleted": 1})

    # ------------------------------------------------------------------ operations

    @app.post(
        "/v1/admin/reload",
        response_model=schemas.ReloadResponse,
        responses=errors,
        tags=["admin"],
        summary="Reopen the index directory (new snapshot, model, reranker) without downtime",
    )
    def reload(key: AdminKey) -> Response:
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
        pipeline = generation.pipeline
        return json_response(
            {
                "reloaded": True,
                "products": len(pipeline),
                "pipelines": list(generation.pipelines),
                "default_pipeline": generation.default_pipeline,
                "took_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )

    if state.suggest_available:

        @app.delete(
            "/v1/admin/suggestions",
            response_model=schemas.SuggestionRemovedResponse,
            responses=errors,
            tags=["admin"],
            summary="Never suggest a query phrase again (every worker; survives restarts)",
        )
        def remove_suggestion(
            phrase: Annotated[
                str,
                Query(
                    min_length=1,
                    max_length=settings.max_query_chars,
                    description="the query as shoppers typed it (case and spacing ignored)",
                ),
                AfterValidator(schemas.valid_text),
            ],
            key: AdminKey,
        ) -> Response:
            try:
                suggested = state.remove_suggestion(phrase)
            except ValueError:
                raise ApiError(400, "invalid_phrase", "query.phrase: must not be blank") from None
            return json_response({"removed": phrase, "was_suggested": suggested})

    @app.get("/healthz", response_model=schemas.HealthResponse, tags=["operations"])
    @app.head("/healthz", include_in_schema=False)  # (uvicorn sends no body for HEAD)
    async def healthz() -> Response:
        return json_response(
            {
                "status": "ok",
                "products": len(state.current.pipeline),
                "events": state.events_count,
                "pid": os.getpid(),
                "reloads": state.reloads,
            }
        )

    @app.get("/metrics", tags=["operations"], responses=errors, summary="Prometheus metrics")
    def prometheus(key: AdminKey) -> Response:
        if shared is not None:  # the other workers add events too: count them all
            state.refresh()
            state.count_events()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(key: AnyKey) -> Response:
        return json_response(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(key: AnyKey) -> Response:
        return HTMLResponse(_docs_page(app.openapi()))

    # ------------------------------------------------------------------ storefront

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def storefront_page() -> Response:
        return HTMLResponse(storefront.render(), headers=STOREFRONT_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app


# ---------------------------------------------------------------------- helpers


async def _sample_metrics(metrics: Metrics) -> None:
    """Write this worker's gauges for the others' scrapes, every half second."""
    while True:
        metrics.sample()
        await asyncio.sleep(_SAMPLE_INTERVAL_S)


def _version() -> str:
    from shopsearch import __version__

    return __version__


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


def _product(row: Any) -> Product:
    """A product from a request row, validated as the catalog loader validates file rows
    (the same bounds), with JSON types taken strictly (``"9.99"`` is not a price)."""
    return normalize_row(row, json_types=True)


def _future_problem(where: str, timestamp: float, settings: ServeSettings) -> str:
    return (
        f"{where}: timestamp {format_timestamp(timestamp)} is more than "
        f"{settings.max_event_future_s:,.0f} s in the future (the server's clock says "
        f"{format_timestamp(round(time.time()))}; allowed: clock skew of at most that much)"
    )


def _refusal_recorder(metrics: Metrics) -> Callable[[int, str], None]:
    """What the connection layer calls for a request it refused before the app saw it
    (head too large, head too slow, unparsable): counted under route "connection", logged."""
    access_log = logging.getLogger(ACCESS_LOGGER)

    def record(status: int, code: str) -> None:
        metrics.observe("-", "connection", status, 0.0)
        metrics.errors.labels("connection", code).inc()
        access_log.info(
            "request refused",
            extra={"fields": {"route": "connection", "status": status, "code": code}},
        )

    return record


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


def _problems_message(problems: Sequence[str], what: str) -> str:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
    return f"{len(problems)} invalid {what}, nothing stored: {shown}{more}"


def _docs_page(spec: dict[str, Any]) -> str:
    """A self-contained HTML page of the API: each route with its summary, parameters and
    body schema, then the whole OpenAPI document. Nothing is fetched from elsewhere (no CDN:
    the page must work offline, and /openapi.json itself needs a key)."""
    from html import escape

    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            params = ", ".join(f"{p['name']} ({p.get('in', '')})" for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td>"
                f"<td><code>{escape(path)}</code></td><td>{escape(op.get('summary', ''))}</td>"
                f"<td>{escape(params)}</td><td>{escape(ref)}</td></tr>"
            )
    document = escape(json.dumps(spec, indent=2))
    title = escape(spec.get("info", {}).get("title", "API"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:80em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>{title}</h1>
<p>Send the key as <code>Authorization: Bearer KEY</code> or <code>X-API-Key: KEY</code>.
Errors are <code>{{"message", "code", "type"}}</code>.</p>
<table><tr><th>method</th><th>route</th><th>what</th><th>parameters</th><th>body</th></tr>
{"".join(rows)}</table>
<h2>OpenAPI document</h2><pre>{document}</pre>
</body></html>"""


class _StorefrontPage:
    """``static/index.html`` with the storefront key filled in; re-read only when the file
    changes (one stat per page view)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.path = STATIC_DIR / "index.html"
        self._cached: tuple[int | None, str] | None = None

    def render(self) -> str:
        try:
            mtime: int | None = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._cached is None or self._cached[0] != mtime:
            template = _PLACEHOLDER_PAGE
            if mtime is not None:
                try:
                    template = self.path.read_text(encoding="utf-8")
                except OSError:
                    mtime = None
            self._cached = (mtime, template.replace(STOREFRONT_KEY_PLACEHOLDER, self.key))
        return self._cached[1]
