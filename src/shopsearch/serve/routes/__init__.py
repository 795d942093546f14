"""The API's routes, one module per resource, each an ``APIRouter``:

* ``search``: ``POST /v1/search``, ``GET /v1/suggest`` (scope search)
* ``events``: ``POST /v1/events`` (events)
* ``products``: ``GET /v1/products/{id}`` (search); ``PUT``, ``DELETE`` and
  ``POST /v1/products/bulk`` (admin)
* ``admin``: ``POST /v1/admin/reload``, ``DELETE /v1/admin/suggestions``, ``GET /metrics``
  (admin)
* ``site``: ``/healthz``, ``/``, ``/static/*`` (no key); ``/openapi.json``, ``/docs`` (any)

Routes take what they need as dependencies (:mod:`shopsearch.serve.dependencies`: the key
and its scope, the state, the search gate, the leased index generation). Request bodies
and query parameters carry the server's limits (:func:`~shopsearch.serve.schemas.
request_models`), so the modules that have some build their router for the app's models
(``search.router(models)``); ``site.router`` has none. Each router is flat (no router
included in another), so its ``routes`` are the app's own route objects.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute, Mount

from shopsearch.serve.routes import admin, events, products, search, site
from shopsearch.serve.schemas import RequestModels

__all__ = ["include_routes"]


def include_routes(app: FastAPI, models: RequestModels, *, autocomplete: bool) -> list[BaseRoute]:
    """Every route, with the request limits of ``models``; ``autocomplete``: with the
    suggestion routes (``shopsearch.suggest`` is installed). Returns the routes in the
    order they match, one object per route whatever FastAPI's version does with included
    routers (recent ones keep a router, not its routes, in ``app.router.routes``): the
    metrics name a request refused before routing by the route it would have reached."""
    routers: list[APIRouter] = [
        search.router(models, autocomplete=autocomplete),
        events.router(models),
        products.router(models),
        admin.router(models, autocomplete=autocomplete),
        site.router,
    ]
    static = Mount("/static", app=site.static_files(), name="static")
    for router in routers:
        app.include_router(router)
    app.router.routes.append(static)  # (what app.mount does, keeping the route)
    return [route for router in routers for route in router.routes] + [static]
