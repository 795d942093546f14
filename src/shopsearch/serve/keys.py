"""API keys: created once (shown once), stored only as SHA-256 hashes in ``DIR/api_keys.json``.

>>> store = KeyFile("indexes/esci-us")                                # doctest: +SKIP
>>> secret = store.create("backend", scopes=("search", "events"))      # doctest: +SKIP
>>> keys = Keyring.from_file(store)                                    # doctest: +SKIP
>>> keys.lookup(secret).name                                           # doctest: +SKIP
'backend'

Scopes: ``search``, ``events``, ``admin`` (admin implies every scope). A key is
``ss_`` + ``secrets.token_urlsafe(32)``; only its SHA-256 is written, with the key's name,
scopes, optional rate limit and creation time. Writes are atomic (temporary file, fsync,
rename) and serialized between processes by a lock file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopsearch.errors import ShopSearchError
from shopsearch.serve.settings import SCOPES

__all__ = [
    "KEYS_FILE",
    "STOREFRONT_KEY_NAME",
    "ApiKey",
    "ApiKeyError",
    "KeyFile",
    "Keyring",
    "generate_key",
    "hash_key",
]

KEYS_FILE = "api_keys.json"
KEY_PREFIX = "ss_"
STOREFRONT_KEY_NAME = "storefront"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FORMAT_VERSION = 1


class ApiKeyError(ShopSearchError):
    """An API key operation failed (unknown name, bad scope, unreadable key file)."""


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: never the key itself, only its hash."""

    name: str
    sha256: str
    scopes: tuple[str, ...]
    rate_limit: float | None = None  # requests/s; None: the server's default
    burst: int | None = None
    created: float = 0.0
    ephemeral: bool = False  # the storefront key: in memory only

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "scopes": list(self.scopes),
            "rate_limit": self.rate_limit,
            "burst": self.burst,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiKey:
        return cls(
            name=str(data["name"]),
            sha256=str(data["sha256"]),
            scopes=tuple(data["scopes"]),
            rate_limit=None if data.get("rate_limit") is None else float(data["rate_limit"]),
            burst=None if data.get("burst") is None else int(data["burst"]),
            created=float(data.get("created", 0.0)),
        )


def generate_key() -> str:
    """A new random key: ``ss_`` + 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The SHA-256 (hex) a key is stored and looked up by."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(s.strip().lower() for s in scopes if s.strip()))
    if not cleaned:
        raise ApiKeyError(f"give at least one scope: {', '.join(SCOPES)}")
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}: choose from {', '.join(SCOPES)}")
    return cleaned


class KeyFile:
    """The key file of one index directory (``DIR/api_keys.json``)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / KEYS_FILE

    def load(self) -> list[ApiKey]:
        """Every stored key; ``[]`` when the file does not exist."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ApiKeyError(f"{self.path}: cannot read: {exc}") from None
        try:
            data = json.loads(text)
            return [ApiKey.from_dict(k) for k in data["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiKeyError(f"{self.path}: not a valid key file: {exc}") from None

    def mtime_ns(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        rate_limit: float | None = None,
        burst: int | None = None,
    ) -> str:
        """Store a new key and return it: the only time it is ever shown."""
        if not _NAME.match(name):
            raise ApiKeyError(
                f"bad key name {name!r}: 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        if name == STOREFRONT_KEY_NAME:
            raise ApiKeyError(f"{name!r} is reserved for the storefront page's key")
        scopes = check_scopes(scopes)
        if rate_limit is not None and not rate_limit > 0:
            raise ApiKeyError(f"the rate limit must be > 0 requests per second, not {rate_limit}")
        if burst is not None and burst < 1:
            raise ApiKeyError(f"the burst must be >= 1, not {burst}")
        if not self.directory.is_dir():
            raise ApiKeyError(f"no such directory: {self.directory}")
        key = generate_key()
        with self._locked():
            keys = self.load()
            if any(k.name == name for k in keys):
                raise ApiKeyError(f"a key named {name!r} exists: revoke it first")
            keys.append(ApiKey(name, hash_key(key), scopes, rate_limit, burst, created=time.time()))
            self._write(keys)
        return key

    def revoke(self, name: str) -> None:
        with self._locked():
            keys = self.load()
            kept = [k for k in keys if k.name != name]
            if len(kept) == len(keys):
                raise ApiKeyError(f"no key named {name!r} in {self.path}")
            self._write(kept)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / f".{KEYS_FILE}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, keys: list[ApiKey]) -> None:
        """Atomic: write a temporary file, fsync it, rename it over the old one, fsync the
        directory. Readable by the owner only."""
        data = {"format_version": _FORMAT_VERSION, "keys": [k.to_dict() for k in keys]}
        tmp = self.path.with_name(f".{KEYS_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class Keyring:
    """The keys a server accepts: those of its key file plus in-memory (ephemeral) ones.

    The file is re-read when its modification time changes, checked at most once per
    ``recheck_s`` seconds on lookups (so keys created or revoked with ``shopsearch keys``
    take effect on a running server within a second or so, without a file read per request).
    """

    def __init__(self, key_file: KeyFile | None = None, *, recheck_s: float = 1.0) -> None:
        self.key_file = key_file
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._ephemeral: dict[str, ApiKey] = {}
        self._by_hash: dict[str, ApiKey] = {}
        self._mtime: int | None = None
        self._checked = 0.0
        self.reload()

    @classmethod
    def from_file(cls, key_file: KeyFile) -> Keyring:
        return cls(key_file)

    def add_ephemeral(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        rate_limit: float,
        burst: int,
        key: str | None = None,
    ) -> str:
        """Add an in-memory key (never written anywhere) and return it: ``key``, or a new
        one (the worker processes of a server share their parent's)."""
        key = key or generate_key()
        record = ApiKey(
            name,
            hash_key(key),
            check_scopes(scopes),
            rate_limit,
            burst,
            created=time.time(),
            ephemeral=True,
        )
        with self._lock:
            self._ephemeral[record.sha256] = record
            self._by_hash[record.sha256] = record
        return key

    def reload(self) -> None:
        """Re-read the key file now."""
        with self._lock:
            stored: list[ApiKey] = []
            mtime = None
            if self.key_file is not None:
                mtime = self.key_file.mtime_ns()
                stored = self.key_file.load()
            by_hash = {k.sha256: k for k in stored}
            by_hash.update(self._ephemeral)
            self._by_hash, self._mtime = by_hash, mtime
            self._checked = time.monotonic()

    def lookup(self, key: str) -> ApiKey | None:
        """The key's record, or ``None`` for an unknown (or revoked) key."""
        self._maybe_reload()
        return self._by_hash.get(hash_key(key))

    def names(self) -> list[str]:
        return sorted(k.name for k in self._by_hash.values())

    def _maybe_reload(self) -> None:
        if self.key_file is None or time.monotonic() - self._checked < self.recheck_s:
            return
        self._checked = time.monotonic()
        if self.key_file.mtime_ns() != self._mtime:
            try:
                self.reload()
            except ApiKeyError:  # a broken file: keep the keys we have (and say so)
                logging.getLogger("shopsearch.serve").exception("cannot reload API keys")
