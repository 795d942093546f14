"""One error body for every 4xx/5xx: ``{"message": str, "code": str, "type": str}``.

``code`` is specific and stable (``missing_api_key``, ``validation_failed``, ...), ``type`` is
its family (``authentication_error``, ``invalid_request_error``, ...), as in meilisearch's
API. Handlers here turn FastAPI's and Starlette's errors (validation, 404, 405) and
shopsearch's own (:mod:`shopsearch.errors`) into that body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shopsearch.errors import (
    BadRowError,
    CatalogError,
    EventRecordError,
    IndexLockedError,
    InvalidQueryError,
    ShopSearchError,
)

__all__ = [
    "ERROR_CODE_SCOPE_KEY",
    "ApiError",
    "defaults_for",
    "error_body",
    "error_response",
    "install_error_handlers",
]

#: The scope key where the error code of a response is left for metrics and logs.
ERROR_CODE_SCOPE_KEY = "shopsearch.error_code"

#: Default (code, type) by HTTP status.
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "invalid_request_error"),
    401: ("invalid_api_key", "authentication_error"),
    403: ("insufficient_scope", "permission_error"),
    404: ("not_found", "not_found_error"),
    405: ("method_not_allowed", "invalid_request_error"),
    408: ("request_timeout", "invalid_request_error"),
    409: ("conflict", "invalid_request_error"),
    413: ("body_too_large", "invalid_request_error"),
    414: ("uri_too_long", "invalid_request_error"),
    415: ("unsupported_media_type", "invalid_request_error"),
    422: ("validation_failed", "invalid_request_error"),
    429: ("rate_limited", "rate_limit_error"),
    431: ("headers_too_large", "invalid_request_error"),
    # nginx's "client closed request": logged and counted, never sent (nobody is listening)
    499: ("client_closed_request", "invalid_request_error"),
    500: ("internal_error", "api_error"),
    503: ("unavailable", "api_error"),
}
_MAX_LISTED = 10  # validation problems named in one message


class ApiError(Exception):
    """Raise from a route or dependency to answer with the error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        type: str | None = None,  # noqa: A002 - the body's field name
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type or defaults_for(status)[1]
        self.headers = dict(headers or {})


def defaults_for(status: int) -> tuple[str, str]:
    """The default ``(code, type)`` of an HTTP error status."""
    return _BY_STATUS.get(
        status, ("error", "api_error" if status >= 500 else "invalid_request_error")
    )


def error_body(code: str, type_: str, message: str) -> bytes:
    return json.dumps({"message": message, "code": code, "type": type_}).encode("utf-8")


def error_response(
    status: int,
    code: str | None = None,
    message: str = "",
    *,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
    request: Request | None = None,
) -> Response:
    """The JSON error response (and the code recorded in the request's scope)."""
    default_code, default_type = defaults_for(status)
    code = code or default_code
    if request is not None:
        request.scope[ERROR_CODE_SCOPE_KEY] = code
    return Response(
        error_body(code, type_ or default_type, message or code.replace("_", " ")),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """``body.k: Input should be less than or equal to 100; query.q: Field required``."""
    parts = []
    for error in errors[:_MAX_LISTED]:
        location = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    if len(errors) > _MAX_LISTED:
        parts.append(f"and {len(errors) - _MAX_LISTED} more")
    return "; ".join(parts)


def shopsearch_error_status(exc: ShopSearchError) -> tuple[int, str]:
    """HTTP status and code for one of shopsearch's own errors (client errors: 400)."""
    if isinstance(exc, IndexLockedError):
        return 409, "index_locked"
    if isinstance(exc, EventRecordError):
        return 400, "invalid_record"
    if isinstance(exc, BadRowError | CatalogError):
        return 400, "invalid_product"
    if isinstance(exc, InvalidQueryError):
        return 400, "invalid_request"
    return 400, "bad_request"


def install_error_handlers(app: FastAPI) -> None:
    """Route every error FastAPI knows about through :func:`error_response`. (Unexpected
    exceptions become 500s in :class:`~shopsearch.serve.middleware.ObservabilityMiddleware`.)
    """

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(
            exc.status, exc.code, exc.message, type_=exc.type, headers=exc.headers, request=request
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        if status == 404:
            message = f"no route {request.url.path}" if exc.detail == "Not Found" else exc.detail
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(status, None, message, headers=exc.headers, request=request)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = next(e for e in errors if e.get("type") == "json_invalid")
            reason = (detail.get("ctx") or {}).get("error", "malformed JSON")
            return error_response(
                400, "invalid_json", f"the body is not valid JSON: {reason}", request=request
            )
        return error_response(422, "validation_failed", validation_message(errors), request=request)

    @app.exception_handler(ShopSearchError)
    async def _shopsearch_error(request: Request, exc: ShopSearchError) -> Response:
        status, code = shopsearch_error_status(exc)
        return error_response(status, code, str(exc), request=request)
