"""Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on every request).

In the order a request meets them:

* :class:`ObservabilityMiddleware` times every request, records metrics by route template,
  writes one JSON log line, adds ``X-Worker: <pid>`` (which worker process answered), and
  turns an unexpected exception into a 500 with the error body (the traceback goes to the
  log only). A client that hangs up before its answer (mid-body, say) is logged and counted
  as 499 "client closed request" (nginx's code), never as a 500.
* :class:`CORSErrorMiddleware` (when CORS origins are configured): Starlette's, with the
  error body for a refused preflight request.
* :class:`AuthMiddleware` checks the API key and the rate limits from the headers alone,
  before anything reads the body: a client without a key cannot make a worker wait for (or
  buffer) a body, and its connection is closed after the 401.
* :class:`BodyLimitMiddleware` refuses a body over ``max_bytes`` with 413, from its
  ``Content-Length`` before reading anything, or while counting a streamed body.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsearch.serve.errors import (
    ERROR_CODE_SCOPE_KEY,
    ApiError,
    defaults_for,
    error_body,
    error_response,
)
from shopsearch.serve.logs import ACCESS_LOGGER
from shopsearch.serve.metrics import Metrics
from shopsearch.serve.protocol import TIMED_OUT_SCOPE_KEY

__all__ = [
    "KEY_NAME_SCOPE_KEY",
    "AuthMiddleware",
    "BodyLimitMiddleware",
    "CORSErrorMiddleware",
    "ObservabilityMiddleware",
]

#: Where the auth dependency leaves the name of the request's key (for the log line).
KEY_NAME_SCOPE_KEY = "shopsearch.key"
#: Extra fields a route adds to its log line (e.g. the query id of a search).
LOG_FIELDS_SCOPE_KEY = "shopsearch.log"

access_log = logging.getLogger(ACCESS_LOGGER)
error_log = logging.getLogger("shopsearch.serve")
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    body = error_body(code, type_ or defaults_for(status)[1], message)
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip() not in (b"0", b""):
            return True
        if name == b"transfer-encoding":
            return True
    return False


class AuthMiddleware:
    """``authenticate(scope)`` (raising :class:`ApiError`: 401, 429) for every request whose
    path ``needs_key``, before the app (and so before its body is read). A refused request
    with a body is answered with ``Connection: close``: its body is never read."""

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Callable[[Scope], object],
        needs_key: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.needs_key = needs_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.needs_key(scope["path"]):
            try:
                self.authenticate(scope)
            except ApiError as exc:
                scope[ERROR_CODE_SCOPE_KEY] = exc.code
                headers = dict(exc.headers)
                if _has_body(scope):
                    headers["Connection"] = "close"
                await send_error(
                    send, exc.status, exc.code, exc.message, type_=exc.type, headers=headers
                )
                return
        await self.app(scope, receive, send)


class CORSErrorMiddleware(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight gets the error body (Starlette's is
    plain text), with code ``cors_rejected``."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        detail = bytes(response.body).decode("utf-8", "replace")  # "Disallowed CORS origin"
        what = detail.removeprefix("Disallowed CORS ").strip() or "request"
        origin = request_headers.get("origin", "")
        headers = {
            k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
        }
        return error_response(
            response.status_code,
            "cors_rejected",
            f"CORS preflight refused for origin {origin!r}: {what} not allowed",
            headers=headers,
        )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                scope[ERROR_CODE_SCOPE_KEY] = "bad_request"
                await send_error(send, 400, "bad_request", "invalid Content-Length header")
                return
            if declared > self.max_bytes:
                await self._too_large(scope, send)
                return
        elif not chunked and scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)  # no body to count
            return
        # Read the body (at most max_bytes + 1 of it), then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        scope[ERROR_CODE_SCOPE_KEY] = "body_too_large"
        await send_error(
            send, 413, "body_too_large", f"the request body is over {self.max_bytes:,} bytes"
        )


class ObservabilityMiddleware:
    """``routes``: the app's routes, to name the route of a request refused before routing
    (by :class:`AuthMiddleware`, say) in metrics and logs."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.worker = (b"x-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False
        disconnected = False

        async def receive_and_watch() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_and_watch(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), self.worker]
            await send(message)

        try:
            await self.app(scope, receive_and_watch, send_and_watch)
            if disconnected and not response_started:
                status = _gone(scope)
        except Exception:
            if disconnected and not response_started:  # e.g. Starlette's ClientDisconnect
                status = _gone(scope)
            else:
                status = 500
                scope[ERROR_CODE_SCOPE_KEY] = "internal_error"
                error_log.exception(
                    "unhandled error",
                    extra={"fields": {"method": scope["method"], "route": _route(scope)}},
                )
                if not response_started:
                    await send_error(send, 500, "internal_error", "internal server error")
        finally:
            seconds = time.perf_counter() - started
            if "route" not in scope:
                _find_route(scope, self.routes)
            route = _route(scope)
            method = scope["method"]
            self.metrics.observe(method, route, status, seconds)
            if status >= 400:
                code = scope.get(ERROR_CODE_SCOPE_KEY) or defaults_for(status)[0]
                self.metrics.errors.labels(route, code).inc()
            if access_log.isEnabledFor(logging.INFO):
                fields: dict[str, Any] = {
                    "method": method,
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "key": scope.get(KEY_NAME_SCOPE_KEY),
                }
                extra = scope.get(LOG_FIELDS_SCOPE_KEY)
                if extra:
                    fields.update(extra)
                # (not .info(): that looks up the calling frame, which this line never shows)
                access_log.handle(
                    access_log.makeRecord(
                        ACCESS_LOGGER,
                        logging.INFO,
                        "",
                        0,
                        "request",
                        (),
                        None,
                        extra={"fields": fields},
                    )
                )


def _find_route(scope: Scope, routes: Sequence[BaseRoute]) -> None:
    """Leave in ``scope["route"]`` the route a request refused before routing would have
    reached (for its metric labels)."""
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            scope["route"] = candidate
            return


def _gone(scope: Scope) -> int:
    """The status of a request whose client left before its answer: 408 when the server
    stopped waiting for the body (:mod:`~shopsearch.serve.protocol`), else 499."""
    if scope.get(TIMED_OUT_SCOPE_KEY):
        scope[ERROR_CODE_SCOPE_KEY] = "body_timeout"
        return 408
    scope[ERROR_CODE_SCOPE_KEY] = "client_closed_request"
    return 499


_CONVERTER = re.compile(r"\{(\w+):\w+\}")
_templates: dict[str, str] = {}


def _route(scope: Scope) -> str:
    """The matched route's template (``/v1/products/{product_id}``), never the raw path (which
    would make metric labels unbounded)."""
    path = getattr(scope.get("route"), "path", None)
    if not isinstance(path, str):
        return "unmatched"
    template = _templates.get(path)
    if template is None:
        template = _templates[path] = _CONVERTER.sub(r"{\1}", path)
    return template
