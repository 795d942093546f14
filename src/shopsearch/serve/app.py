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

The routes live in :mod:`shopsearch.serve.routes` (one module per resource) and take
what they need as dependencies (:mod:`shopsearch.serve.dependencies`); this module only
wires the settings, the state, the middleware, the error handlers and the routers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.routing import BaseRoute

from shopsearch.models.encoders import Encoder
from shopsearch.serve import schemas
from shopsearch.serve.auth import Authenticator, needs_key
from shopsearch.serve.errors import install_error_handlers
from shopsearch.serve.gate import Gate
from shopsearch.serve.keys import STOREFRONT_KEY_NAME, KeyFile, Keyring
from shopsearch.serve.logs import ACCESS_LOGGER
from shopsearch.serve.metrics import Metrics
from shopsearch.serve.middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    CORSErrorMiddleware,
    ObservabilityMiddleware,
)
from shopsearch.serve.protocol import REFUSED_HOOK
from shopsearch.serve.ratelimit import ClientRateLimiter, RateLimiter, SharedRateLimiter
from shopsearch.serve.routes import include_routes
from shopsearch.serve.settings import ServeSettings
from shopsearch.serve.shared import SharedDir
from shopsearch.serve.state import Generation, ServeState
from shopsearch.serve.storefront import STATIC_DIR, STOREFRONT_KEY_PLACEHOLDER, StorefrontPage
from shopsearch.serve.suggestions import Blocklist

__all__ = ["STATIC_DIR", "STOREFRONT_KEY_PLACEHOLDER", "create_app"]

logger = logging.getLogger("shopsearch.serve")

_SAMPLE_INTERVAL_S = 0.5  # how often a worker process writes its gauges (multi-process)


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
    ``storefront_key``, ``storefront`` (the page), ``metrics``, ``settings``,
    ``search_gate`` and ``authenticator``: what the routes' dependencies look up.
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
    state = _open_state(index_dir, settings, keyring, metrics, encoder, shared)
    authenticator = Authenticator(
        keyring,
        settings,
        metrics,
        keys=RateLimiter() if shared is None else SharedRateLimiter(shared.rate_limits),
        clients=ClientRateLimiter(
            None if shared is None else shared.client_limits, settings.client_table_slots
        ),
    )
    app = FastAPI(
        title="shopsearch",
        summary="Context-aware e-commerce product search",
        version=_version(),
        openapi_url=None,  # served by routes.site, behind a key
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
        redirect_slashes=False,  # a redirect would be built from the Host header
    )
    app.state.shopsearch = state
    app.state.keyring = keyring
    app.state.storefront_key = storefront_key
    app.state.storefront = StorefrontPage(storefront_key)
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.search_gate = Gate(settings.search_concurrency, settings.max_queued_searches)
    app.state.authenticator = authenticator
    app.state.lifespans = 0  # running lifespans: test clients may run more than one at once
    install_error_handlers(app)
    models = schemas.request_models(settings)
    routes = include_routes(app, models, autocomplete=state.suggest_available)
    _add_middleware(app, settings, authenticator, metrics, routes)
    return app


def _open_state(
    index_dir: str | Path,
    settings: ServeSettings,
    keyring: Keyring,
    metrics: Metrics,
    encoder: Encoder | None,
    shared: SharedDir | None,
) -> ServeState:
    """The index, event store and query log, with the metrics that sample them."""

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
        suggest_blocklist=Blocklist.load(
            settings.suggest_blocklist, settings.suggest_blocklist_file
        ),
    )
    metrics.bind(
        products=lambda: len(state.current.pipeline),
        events=lambda: state.events_count,
        pending=lambda: state.query_log.pending,
        cache_hits=lambda: getattr(state.current.pipeline.encoder, "hits", 0),
        cache_misses=lambda: getattr(state.current.pipeline.encoder, "misses", 0),
    )
    return state


def _add_middleware(
    app: FastAPI,
    settings: ServeSettings,
    authenticator: Authenticator,
    metrics: Metrics,
    routes: Sequence[BaseRoute],
) -> None:
    """(The last added runs first: observability, CORS, the key, the body limit.)
    ``routes``: to name the route of a request refused before routing."""
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
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, routes=routes)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Open the state (again, after a shutdown), sample the gauges for the other workers;
    at the last lifespan's end, flush the query log and close the index."""
    state: ServeState = app.state.shopsearch
    metrics: Metrics = app.state.metrics
    app.state.lifespans += 1
    await anyio.to_thread.run_sync(state.start)  # already open, unless closed before
    sampler = None
    if metrics.multiprocess_dir is not None:
        sampler = asyncio.create_task(_sample_metrics(metrics))
    try:
        yield {REFUSED_HOOK: _refusal_recorder(metrics)}  # the connection layer's refusals
    finally:
        if sampler is not None:
            sampler.cancel()
        app.state.lifespans -= 1
        if app.state.lifespans == 0:  # graceful shutdown: flush the query log, close the index
            await anyio.to_thread.run_sync(state.close)
            metrics.process_exited()


async def _sample_metrics(metrics: Metrics) -> None:
    """Write this worker's gauges for the others' scrapes, every half second."""
    while True:
        metrics.sample()
        await asyncio.sleep(_SAMPLE_INTERVAL_S)


def _version() -> str:
    from shopsearch import __version__

    return __version__


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
