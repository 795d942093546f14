"""Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on every request).

* :class:`BodyLimitMiddleware` refuses a body over ``max_bytes`` with 413, from its
  ``Content-Length`` before reading anything, or while counting a streamed body.
* :class:`ObservabilityMiddleware` times every request, records metrics by route template,
  writes one JSON log line, adds ``X-Worker: <pid>`` (which worker process answered), and
  turns an unexpected exception into a 500 with the error body (the traceback goes to the
  log only).
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopsearch.serve.errors import ERROR_CODE_SCOPE_KEY, defaults_for, error_body
from shopsearch.serve.logs import ACCESS_LOGGER
from shopsearch.serve.metrics import Metrics

__all__ = ["KEY_NAME_SCOPE_KEY", "BodyLimitMiddleware", "ObservabilityMiddleware"]

#: Where the auth dependency leaves the name of the request's key (for the log line).
KEY_NAME_SCOPE_KEY = "shopsearch.key"
#: Extra fields a route adds to its log line (e.g. the query id of a search).
LOG_FIELDS_SCOPE_KEY = "shopsearch.log"

access_log = logging.getLogger(ACCESS_LOGGER)
error_log = logging.getLogger("shopsearch.serve")
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    body = error_body(code, defaults_for(status)[1], message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.worker = (b"x-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), self.worker]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:
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
