"""Who is calling: the API key, checked from the headers before any body is read, its rate
limit, and for public keys the client, with limits of its own beneath the key's.

>>> auth = Authenticator(keyring, settings, metrics, keys=RateLimiter(),
...                      clients=ClientRateLimiter(None))              # doctest: +SKIP
>>> auth.authenticate(scope).name       # or ApiError: 401, 429      # doctest: +SKIP
'backend'

* **The key**: ``Authorization: Bearer <key>`` (preferred) or ``X-API-Key: <key>``; every
  path under ``/v1/`` and ``/metrics``, ``/openapi.json``, ``/docs`` need one
  (:func:`needs_key`), checked by :class:`~shopsearch.serve.middleware.AuthMiddleware`
  before the app reads a body. The scope a route needs is checked by the route's key
  dependency (:mod:`~shopsearch.serve.dependencies`, :meth:`Authenticator.authorize`): 403.
* **The key's limit**: one token bucket per key, shared by the worker processes.
* **Public keys** (``client_limited_keys``: the storefront page's, which every visitor can
  read): also a bucket per *client*, its address plus the ``X-Shopper-Id`` header the
  storefront sends, and one per *address* (IPv6: per /64) whatever shopper ids it sends
  (:class:`~shopsearch.serve.ratelimit.ClientRateLimiter`). They are checked first, so a
  client in a loop is refused without spending the key's allowance, and other shoppers
  keep theirs.
* **Who counts as a shopper** when a query becomes a suggestion
  (:meth:`Authenticator.shopper`): for a public key, the address (any page visitor can
  claim any user id); for a private key (a backend that authenticates its shoppers), the
  user id, else the session id, else the address.

The address is the TCP peer's, or, for connections from ``trusted_proxies``, the one their
``X-Forwarded-For`` names (uvicorn's proxy headers).
"""

from __future__ import annotations

import functools
import ipaddress
import math

from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.types import Scope

from shopsearch.serve.errors import ApiError
from shopsearch.serve.keys import ApiKey, Keyring
from shopsearch.serve.metrics import Metrics
from shopsearch.serve.middleware import KEY_NAME_SCOPE_KEY
from shopsearch.serve.ratelimit import ClientRateLimiter, Limit, RateLimiter, SharedRateLimiter
from shopsearch.serve.settings import ServeSettings

__all__ = [
    "API_KEY_HEADER",
    "API_KEY_SCOPE_KEY",
    "BEARER",
    "SHOPPER_HEADER",
    "Authenticator",
    "client_address",
    "needs_key",
]

#: Where the authenticated key's record is left in the request's scope.
API_KEY_SCOPE_KEY = "shopsearch.api_key"
#: The header a browser client names its shopper with (the storefront sends it).
SHOPPER_HEADER = "X-Shopper-Id"
_SHOPPER = SHOPPER_HEADER.lower().encode("latin-1")
_MAX_SHOPPER_BYTES = 128  # longer ids are cut: one client cannot grow the table with them
KEYED_PREFIXES = ("/v1/",)
KEYED_PATHS = frozenset({"/metrics", "/openapi.json", "/docs"})
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: The two ways to send a key, as the OpenAPI description shows them (the key dependencies
#: of :mod:`~shopsearch.serve.dependencies` declare them; the middleware does the checking).
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def needs_key(path: str) -> bool:
    """Whether a request for ``path`` must carry a key (checked before its body is read).
    Other paths (``/healthz``, ``/``, ``/static/*``, unknown ones: 404) need none."""
    return path.startswith(KEYED_PREFIXES) or path in KEYED_PATHS


@functools.lru_cache(maxsize=8192)
def _network(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # not an IP (a test client, a Unix socket peer)
    if ip.version == 6:
        mapped = ip.ipv4_mapped  # type: ignore[union-attr]
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))  # one host has a /64
    return str(ip)


def client_address(scope: Scope) -> str:
    """The client's address as limits see it: an IPv4 address, or an IPv6 /64."""
    client = scope.get("client")
    return _network(client[0]) if client else "unknown"


def _shopper_header(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _SHOPPER:
            return value[:_MAX_SHOPPER_BYTES].decode("latin-1")
    return ""


def _key_from_headers(scope: Scope) -> str | None:
    """The key of ``Authorization: Bearer <key>``, else of ``X-API-Key``."""
    bearer = header_key = None
    for name, value in scope["headers"]:
        if name == b"authorization" and bearer is None:
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                bearer = credentials.strip()
        elif name == b"x-api-key" and header_key is None:
            header_key = value.decode("latin-1")
    return bearer or header_key or None


class Authenticator:
    """Keys, their limits and the limits of public keys' clients (see the module docstring)."""

    def __init__(
        self,
        keyring: Keyring,
        settings: ServeSettings,
        metrics: Metrics,
        *,
        keys: RateLimiter | SharedRateLimiter,
        clients: ClientRateLimiter,
    ) -> None:
        self.keyring = keyring
        self.settings = settings
        self.metrics = metrics
        self.keys = keys
        self.clients = clients
        self.client_limit = Limit(settings.client_rate_limit, settings.client_burst)
        self.address_limit = Limit(settings.address_rate_limit, settings.address_burst)
        self.public = frozenset(settings.client_limited_keys)

    def is_public(self, key: ApiKey) -> bool:
        """Whether ``key`` is a browser's key, limited per client."""
        return key.name in self.public

    def authenticate(self, scope: Scope) -> ApiKey:
        """The request's key (also left in its scope), within its limits; else
        :class:`ApiError` 401 (no key, unknown key) or 429 (with ``Retry-After``)."""
        key = _key_from_headers(scope)
        if not key:
            raise ApiError(
                401,
                "missing_api_key",
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                type="authentication_error",
                headers=_CHALLENGE,
            )
        record = self.keyring.lookup(key)
        if record is None:
            raise ApiError(
                401,
                "invalid_api_key",
                "the API key is not valid (unknown or revoked)",
                type="authentication_error",
                headers=_CHALLENGE,
            )
        scope[KEY_NAME_SCOPE_KEY] = record.name
        if self.is_public(record):
            self._limit_client(scope, record)
        wait = self.keys.acquire(
            record.name,
            record.rate_limit or self.settings.rate_limit,
            record.burst or self.settings.rate_burst,
        )
        if wait > 0:
            self.metrics.rate_limited.labels(record.name).inc()
            raise _rate_limited(
                f"rate limit of the key {record.name!r} exceeded: retry in {wait:.2f} s", wait
            )
        scope[API_KEY_SCOPE_KEY] = record
        return record

    def _limit_client(self, scope: Scope, record: ApiKey) -> None:
        address = client_address(scope)
        wait, bucket = self.clients.acquire(
            address, _shopper_header(scope), self.client_limit, self.address_limit
        )
        if wait <= 0:
            return
        self.metrics.client_rate_limited.labels(record.name, bucket).inc()
        if bucket == "address":
            what = f"this address ({address}) exceeded {self.address_limit.rate:g} requests/s"
        else:
            what = f"this client exceeded {self.client_limit.rate:g} requests/s per shopper"
        raise _rate_limited(
            f"rate limit of the key {record.name!r} per client: {what}; retry in {wait:.2f} s",
            wait,
        )

    def shopper(
        self, scope: Scope, key: ApiKey, user_id: str | None, session_id: str | None
    ) -> str:
        """Who counts as one shopper for suggestion admission (see the module docstring)."""
        if not self.is_public(key):
            if user_id:
                return f"user:{user_id}"
            if session_id:
                return f"session:{session_id}"
        return f"address:{client_address(scope)}"

    def authorize(self, scope: Scope, needed: str | None) -> ApiKey:
        """The request's key (authenticated by the middleware, else here), which must hold
        the scope ``needed`` (any key when ``None``): else :class:`ApiError` 403."""
        record = scope.get(API_KEY_SCOPE_KEY)
        if record is None:  # a keyed route outside needs_key(): authenticate here
            record = self.authenticate(scope)
        if needed is not None and not record.allows(needed):
            raise ApiError(
                403,
                "insufficient_scope",
                f"the key {record.name!r} does not have the {needed!r} scope",
                type="permission_error",
            )
        return record


def _rate_limited(message: str, wait: float) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        message,
        type="rate_limit_error",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )
