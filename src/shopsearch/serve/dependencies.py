"""What a route needs, declared as FastAPI dependencies (``Annotated`` aliases) and looked
up on the app that serves the request (:func:`~shopsearch.serve.app.create_app` leaves the
server's objects in ``app.state``), so route modules hold no server of their own.

>>> @router.delete("/v1/products/{product_id:path}")
... def delete_product(product_id: str, key: AdminKey, state: State) -> Response:
...     ...                                                        # doctest: +SKIP

* **The caller**: ``AnyKey``, ``SearchKey``, ``EventsKey``, ``AdminKey``: the request's key,
  which must hold that scope (else 403). The key and the rate limits (the key's, and per
  client for a public key) are checked earlier, from the headers, before anything reads the
  body (:class:`~shopsearch.serve.middleware.AuthMiddleware`); a request that middleware
  did not check is authenticated, limits included, here. They also document the key in
  the OpenAPI description (``HTTPBearer``, ``APIKeyHeader``). ``Auth``: the
  :class:`~shopsearch.serve.auth.Authenticator` (who counts as a shopper).
* **The index**: ``State`` (:class:`~shopsearch.serve.state.ServeState`: writes, events,
  reloads); the current generation through an :class:`IndexRunner`, whose ``run(function,
  ...)`` calls ``function(generation, ...)`` on a worker thread with the generation leased
  there (caught up with what other processes wrote, kept open until the function returns):
  ``Reads`` on the thread pool, ``Searches`` through the search gate (at most
  ``search_concurrency`` at once per process, 503 beyond ``max_queued_searches`` waiting).
* ``Settings``, ``AppMetrics``, ``Storefront`` (the storefront page with its key).

The getters are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency on its
thread pool, a thread hop per request for an attribute lookup. For the same reason the
generation is leased by a runner, on the thread that uses it, rather than by a generator
dependency (FastAPI would enter and leave it on two more threads: measured, +0.4 ms of
CPU per product read).

(No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations.)
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from shopsearch.serve.auth import API_KEY_HEADER, BEARER, Authenticator
from shopsearch.serve.gate import Gate
from shopsearch.serve.keys import ApiKey
from shopsearch.serve.metrics import Metrics
from shopsearch.serve.settings import ServeSettings
from shopsearch.serve.state import ServeState
from shopsearch.serve.storefront import StorefrontPage

__all__ = [
    "AdminKey",
    "AnyKey",
    "AppMetrics",
    "Auth",
    "EventsKey",
    "IndexRunner",
    "Reads",
    "SearchKey",
    "Searches",
    "Settings",
    "State",
    "Storefront",
    "require_scope",
]

T = TypeVar("T")


async def get_state(request: Request) -> ServeState:
    return request.app.state.shopsearch  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


async def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator  # type: ignore[no-any-return]


async def get_storefront(request: Request) -> StorefrontPage:
    return request.app.state.storefront  # type: ignore[no-any-return]


State = Annotated[ServeState, Depends(get_state)]
Settings = Annotated[ServeSettings, Depends(get_settings)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
Auth = Annotated[Authenticator, Depends(get_authenticator)]
Storefront = Annotated[StorefrontPage, Depends(get_storefront)]


# ---------------------------------------------------------------------- the caller


def require_scope(needed: str | None) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency: the request's key, holding the scope ``needed`` (any key: ``None``)."""

    async def api_key(
        request: Request,
        auth: Auth,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        header_key: Annotated[str | None, Depends(API_KEY_HEADER)],
    ) -> ApiKey:
        return auth.authorize(request.scope, needed)

    return api_key


AnyKey = Annotated[ApiKey, Depends(require_scope(None))]
SearchKey = Annotated[ApiKey, Depends(require_scope("search"))]
EventsKey = Annotated[ApiKey, Depends(require_scope("events"))]
AdminKey = Annotated[ApiKey, Depends(require_scope("admin"))]


# ---------------------------------------------------------------------- the index


class IndexRunner:
    """Runs ``function(generation, *args)`` on a worker thread, with the current generation
    leased there (:meth:`ServeState.lease`: first caught up with other processes' writes,
    which may load a snapshot, so never on the event loop), through ``gate`` if given:
    waiting for a slot holds no generation.

    >>> await searches.run(lambda generation, q: generation.suggest(q, 8), "sli")  # doctest: +SKIP
    """

    __slots__ = ("gate", "state")

    def __init__(self, state: ServeState, gate: Gate | None = None) -> None:
        self.state = state
        self.gate = gate

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(generation, *args)``; through a gate: :class:`~shopsearch.serve.errors.
        ApiError` 503 when too many calls wait already."""
        if self.gate is None:
            return await anyio.to_thread.run_sync(self._leased, function, args)
        return await self.gate.run(self._leased, function, args)

    def _leased(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self.state.lease() as generation:
            return function(generation, *args)


async def read_runner(state: State) -> IndexRunner:
    return IndexRunner(state)


async def search_runner(request: Request, state: State) -> IndexRunner:
    return IndexRunner(state, request.app.state.search_gate)


Reads = Annotated[IndexRunner, Depends(read_runner)]
Searches = Annotated[IndexRunner, Depends(search_runner)]
