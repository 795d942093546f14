"""What needs no scope: ``GET``/``HEAD /healthz`` (liveness, sizes, the pipelines a search
may name), the storefront page ``/`` and its ``/static/*`` files (no key: the page carries
the storefront's own), and the API description, ``/openapi.json`` and ``/docs`` (any key).

(No ``from __future__ import annotations``: FastAPI reads the real annotations of the
routes.)
"""

import json
import os
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

from shopsearch.serve import schemas
from shopsearch.serve.dependencies import AnyKey, State, Storefront
from shopsearch.serve.responses import json_response
from shopsearch.serve.storefront import STATIC_DIR, STOREFRONT_HEADERS

__all__ = ["router", "static_files"]

router = APIRouter()


@router.get("/healthz", response_model=schemas.HealthResponse, tags=["operations"])
@router.head("/healthz", include_in_schema=False)  # (uvicorn sends no body for HEAD)
async def healthz(state: State) -> Response:
    generation = state.current  # (no lease, no catching up: liveness must stay cheap)
    return json_response(
        {
            "status": "ok",
            "products": len(generation.pipeline),
            "events": state.events_count,
            "pid": os.getpid(),
            "reloads": state.reloads,
            "pipelines": list(generation.pipelines),
            "default_pipeline": generation.default_pipeline,
        }
    )


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, key: AnyKey) -> Response:
    return json_response(request.app.openapi())


@router.get("/docs", include_in_schema=False)
def docs(request: Request, key: AnyKey) -> Response:
    return HTMLResponse(docs_page(request.app.openapi()))


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def storefront_page(page: Storefront) -> Response:
    return HTMLResponse(page.render(), headers=STOREFRONT_HEADERS)


def static_files() -> StaticFiles:
    """The storefront's files, for ``app.mount("/static", ...)`` (a router cannot mount)."""
    return StaticFiles(directory=STATIC_DIR, check_dir=False)


def docs_page(spec: dict[str, Any]) -> str:
    """A self-contained HTML page of the API: each route with its summary, parameters and
    body schema, then the whole OpenAPI document. Nothing is fetched from elsewhere (no CDN:
    the page must work offline, and /openapi.json itself needs a key)."""
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
