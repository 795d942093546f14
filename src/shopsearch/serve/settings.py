"""Serving settings: defaults, then an optional TOML file, then ``SHOPSEARCH_SERVE_*`` env vars.

The only place in shopsearch that reads the environment (library code never does).

>>> settings = ServeSettings.load(None, env={"SHOPSEARCH_SERVE_PORT": "9000"})
>>> settings.port, settings.max_k
(9000, 100)

A TOML file holds the same names at the top level (or under a ``[serve]`` table)::

    port = 8080
    cors_origins = ["https://shop.example"]
    rate_limit = 20.0
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from shopsearch.errors import ShopSearchError

__all__ = ["ENV_PREFIX", "SCOPES", "ServeSettings", "SettingsError"]

ENV_PREFIX = "SHOPSEARCH_SERVE_"
SCOPES = ("search", "events", "admin")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ShopSearchError):
    """A serving setting is unknown or has a bad value; the message names where."""


@dataclass(frozen=True)
class ServeSettings:
    """What ``shopsearch serve`` reads; every limit the API enforces lives here."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Worker processes (uvicorn's multi-process mode); 2 suits a 2-core machine: searches
    #: are CPU-bound Python, so one process uses about one core (the GIL).
    workers: int = 1
    #: Searches run at once per process (a capacity limiter); more would only thrash the GIL.
    search_concurrency: int = 2
    #: Searches waiting for a slot, per process, beyond which new ones get 503 "overloaded".
    max_queued_searches: int = 64
    #: Origins allowed by CORS; empty: no CORS middleware at all.
    cors_origins: tuple[str, ...] = ()
    max_query_chars: int = 512
    max_k: int = 100
    max_batch: int = 1000  # records per POST /v1/events, products per bulk upsert
    max_body_bytes: int = 1_048_576
    max_inline_events: int = 100
    #: Query texts whose dense vectors are kept (LRU); 0: no cache.
    query_cache_size: int = 10_000
    #: Default per-key rate limit: sustained requests per second, and burst size.
    rate_limit: float = 50.0
    rate_burst: int = 100
    #: The storefront page's ephemeral key (created at startup, never written to disk). Its
    #: limit is the ceiling for all shoppers together; each client has its own beneath it.
    storefront_scopes: tuple[str, ...] = ("search", "events")
    storefront_rate_limit: float = 100.0
    storefront_burst: int = 200
    #: Keys used by browsers (public: anyone can read them from the page) are limited per
    #: client too, beneath the key's own limit: per client (address + ``X-Shopper-Id``)...
    client_limited_keys: tuple[str, ...] = ("storefront",)
    client_rate_limit: float = 10.0
    client_burst: int = 30
    #: ...and per address (IPv6: per /64), whatever shopper ids it sends.
    address_rate_limit: float = 30.0
    address_burst: int = 90
    #: Buckets kept for clients and addresses (16 bytes each, shared by the workers); the
    #: least recently limited make room for new ones.
    client_table_slots: int = 65_536
    #: Who may set X-Forwarded-For (uvicorn's forwarded_allow_ips): the client address then
    #: comes from the proxy's header. "*" trusts everyone (never without a proxy in front).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    #: Request heads: at most this many bytes in all (request line and headers) and per
    #: line (431, or 414 for the URL); the whole head within header_timeout_s of its first
    #: byte (of the connection, for a new one), the whole body within body_timeout_s of the
    #: head (408); an idle keep-alive connection is closed after keep_alive_timeout_s.
    max_header_bytes: int = 16_384
    max_header_line_bytes: int = 8_192
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    keep_alive_timeout_s: float = 5.0
    #: Event timestamps may be at most this far in the future (clients' clock skew).
    max_event_future_s: float = 86_400.0
    #: A served query becomes a suggestion once this many distinct shoppers searched it...
    suggest_min_shoppers: int = 3
    #: ...unless it contains one of these words or phrases (whole words, any case), listed
    #: here or one per line in this file ('#' starts a comment).
    suggest_blocklist: tuple[str, ...] = ()
    suggest_blocklist_file: str = ""
    log_level: str = "info"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            name, reason = problems[0]
            raise SettingsError(f"setting {name!r}: {reason}")

    def problems(self) -> list[tuple[str, str]]:
        """``(name, reason)`` for every value out of range."""
        out: list[tuple[str, str]] = []
        if not 0 <= self.port <= 65535:
            out.append(("port", f"must be between 0 and 65535, not {self.port}"))
        for name in (
            "workers",
            "search_concurrency",
            "max_query_chars",
            "max_k",
            "max_batch",
            "max_body_bytes",
        ):
            if getattr(self, name) < 1:
                out.append((name, f"must be >= 1, not {getattr(self, name)}"))
        for name in ("max_queued_searches", "max_inline_events", "query_cache_size"):
            if getattr(self, name) < 0:
                out.append((name, f"must be >= 0, not {getattr(self, name)}"))
        for name in ("rate_limit", "storefront_rate_limit", "client_rate_limit"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                out.append((name, f"must be a number > 0 (requests per second), not {value}"))
        if not (math.isfinite(self.address_rate_limit) and self.address_rate_limit > 0):
            value = self.address_rate_limit
            out.append(("address_rate_limit", f"must be a number > 0 (requests/s), not {value}"))
        for name in (
            "rate_burst",
            "storefront_burst",
            "client_burst",
            "address_burst",
            "suggest_min_shoppers",
        ):
            if getattr(self, name) < 1:
                out.append((name, f"must be >= 1, not {getattr(self, name)}"))
        if self.client_table_slots < 64:
            out.append(("client_table_slots", f"must be >= 64, not {self.client_table_slots}"))
        if self.max_header_bytes < 1024:
            out.append(("max_header_bytes", f"must be >= 1024, not {self.max_header_bytes}"))
        if not 256 <= self.max_header_line_bytes <= self.max_header_bytes:
            out.append(
                (
                    "max_header_line_bytes",
                    f"must be between 256 and max_header_bytes, not {self.max_header_line_bytes}",
                )
            )
        for name in (
            "header_timeout_s",
            "body_timeout_s",
            "keep_alive_timeout_s",
            "max_event_future_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                out.append((name, f"must be a number of seconds > 0, not {value}"))
        unknown = [s for s in self.storefront_scopes if s not in SCOPES]
        if unknown:
            out.append(("storefront_scopes", f"unknown scope(s) {unknown}: use {list(SCOPES)}"))
        if self.log_level not in LOG_LEVELS:
            out.append(("log_level", f"must be one of {', '.join(LOG_LEVELS)}"))
        return out

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
    ) -> ServeSettings:
        """Defaults, overridden by the TOML file ``path`` (if given), then by environment
        variables ``SHOPSEARCH_SERVE_<NAME>`` (``env``, by default ``os.environ``).

        Raises :class:`SettingsError` naming the file (or variable) and the key for an
        unknown key or a bad value.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if path is not None:
            values.update(_from_toml(Path(path)))
        for var, raw in env.items():
            if not var.startswith(ENV_PREFIX):
                continue
            name = var[len(ENV_PREFIX) :].lower()
            values[name] = _convert(name, raw, source=f"environment variable {var}")
        try:
            return cls(**values)
        except SettingsError as exc:
            raise SettingsError(f"{_source_of(path, env)}: {exc}") from None

    def with_overrides(self, **overrides: Any) -> ServeSettings:
        """A copy with the given non-``None`` values (e.g. ``--host`` / ``--port``)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_json(self) -> str:
        """Every value as JSON (how ``serve --workers N`` hands them to its workers)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        values = json.loads(text)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


_TYPES = get_type_hints(ServeSettings)
_NAMES = tuple(f.name for f in fields(ServeSettings))


def _source_of(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> str:
    parts = [str(path)] if path is not None else []
    if any(v.startswith(ENV_PREFIX) for v in env):
        parts.append(f"{ENV_PREFIX}* environment variables")
    return " + ".join(parts) or "settings"


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    if set(data) == {"serve"} and isinstance(data["serve"], dict):
        data = data["serve"]
    return {
        name: _convert(name, value, source=f"{path}: key {name!r}") for name, value in data.items()
    }


def _convert(name: str, value: Any, *, source: str) -> Any:
    """``value`` (a TOML value, or an environment string when ``source`` is a variable) as
    the setting's type."""
    if name not in _TYPES:
        known = ", ".join(_NAMES)
        raise SettingsError(f"{source}: unknown setting {name!r} (known: {known})")
    kind = _TYPES[name]
    from_env = source.startswith("environment")
    try:
        if kind is int:
            if from_env:
                value = int(value.strip().replace("_", ""))
            if type(value) is not int:
                raise ValueError
            return value
        if kind is float:
            if from_env:
                value = float(value.strip())
            if type(value) not in (int, float):
                raise ValueError
            return float(value)
        if kind is str:
            if type(value) is not str:
                raise ValueError
            return value.strip().lower() if name == "log_level" else value
        # tuple[str, ...]: a TOML array, or a comma-separated variable
        if from_env:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError
        return tuple(value)
    except ValueError:
        expected = _EXPECTED.get(kind, "a list of strings")
        raise SettingsError(f"{source}: expected {expected}, got {value!r}") from None


_EXPECTED = {int: "an integer", float: "a number", str: "a string"}
