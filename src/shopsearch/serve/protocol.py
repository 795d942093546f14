"""The HTTP/1.1 connection layer: uvicorn's httptools protocol with the limits it lacks.

uvicorn bounds neither the size of a request head nor the time a client may take to send
its head or its body: with the httptools parser (uvicorn's default) an 8 MB header is read
and answered, a dozen unfinished ones hold ~100 MB of a worker, and a half-sent head or body
keeps its connection open as long as the client likes. (h11's
``h11_max_incomplete_event_size`` bounds the head's size, but neither parser has read
timeouts.) An ASGI middleware cannot help: it runs once the head is parsed. So
:class:`GuardedHttpToolsProtocol` subclasses uvicorn's ``HttpToolsProtocol`` (keeping its C
parser) and adds, per connection (:class:`ConnectionLimits`, from the serving settings):

* **head size**: at most ``max_header_bytes`` for the request line and headers together,
  ``max_header_line_bytes`` for any one of them: 431 (414 for the URL), counted while the
  head arrives (what the parser buffers is bounded, not just what it delivers);
* **head time**: the whole head within ``header_timeout_s`` of its first byte (or of the
  connection's opening): 408;
* **body time**: the whole body within ``body_timeout_s`` of the head: 408; the app sees the
  client gone (``http.disconnect``), with :data:`TIMED_OUT_SCOPE_KEY` set in the request's
  scope so that its log line and metrics say 408, not 499.

(The keep-alive timeout is uvicorn's own ``timeout_keep_alive``.) Every refusal has the
API's error body (``{"message", "code", "type"}``) and closes the connection. Those made
before the app sees a request are reported to the hook the app leaves in its lifespan state
under :data:`REFUSED_HOOK` (for its metrics and log).
"""

from __future__ import annotations

import functools
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shopsearch.serve.errors import defaults_for, error_body
from shopsearch.serve.settings import ServeSettings

__all__ = [
    "REFUSED_HOOK",
    "TIMED_OUT_SCOPE_KEY",
    "ConnectionLimits",
    "GuardedHttpToolsProtocol",
    "protocol_factory",
]

#: Lifespan-state key of ``hook(status, code)``: a request refused before the app saw it.
REFUSED_HOOK = "shopsearch.refused"
#: Request-scope key set when the body did not arrive in time (the app then sees a disconnect).
TIMED_OUT_SCOPE_KEY = "shopsearch.body_timed_out"


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may take; see the module docstring."""

    max_header_bytes: int = 16_384
    max_header_line_bytes: int = 8_192
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> ConnectionLimits:
        return cls(
            settings.max_header_bytes,
            settings.max_header_line_bytes,
            settings.header_timeout_s,
            settings.body_timeout_s,
        )


def protocol_factory(limits: ConnectionLimits) -> Callable[..., GuardedHttpToolsProtocol]:
    """What ``uvicorn.Config(http=...)`` takes (picklable: worker processes get it too)."""
    return functools.partial(GuardedHttpToolsProtocol, limits=limits)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing (the refusal is in ``_refusal``)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with head size limits and read timeouts."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: Any = None,
        *,
        limits: ConnectionLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or ConnectionLimits()
        self._in_body = False  # between the end of a head and the end of its body
        self._received = 0  # bytes received since the current head began
        self._head = 0  # bytes of the current head, as parsed
        self._refusal: tuple[int, str, str] | None = None
        self._head_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.parser is None or self.transport.is_closing():
            return  # refused already: what is still arriving is not read
        if not self._in_body:
            self._received += len(data)
            if self._head_timer is None:  # the first byte of a keep-alive connection's next head
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout_s, self._head_late
                )
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            self._refuse(*(self._refusal or (400, "bad_request", f"invalid HTTP request: {exc}")))
            return
        if not self._in_body and self._received > self.limits.max_header_bytes:
            self._refuse(*self._head_too_large())  # an unfinished head: stop buffering it

    def send_400_response(self, msg: str) -> None:  # uvicorn's: text/plain, not our shape
        self._refuse(400, "bad_request", msg)

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head += len(url)
        if len(self.url) > self.limits.max_header_line_bytes:
            limit = self.limits.max_header_line_bytes
            self._refusal = (414, "uri_too_long", f"the request URL is over {limit:,} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4  # "name: value\r\n"
        self._head += size
        if size > self.limits.max_header_line_bytes and self._refusal is None:
            limit = self.limits.max_header_line_bytes
            shown = name[:64].decode("latin-1")
            self._refusal = (
                431,
                "header_too_large",
                f"the header {shown!r} is {size:,} bytes, over the limit of {limit:,} per header",
            )
            raise _Refused  # (swallowed for a head's last header: on_headers_complete checks)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refusal is None and self._head > self.limits.max_header_bytes:
            self._refusal = self._head_too_large()
        if self._refusal is not None:
            raise _Refused
        self._in_body = True
        self._received = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # ------------------------------------------------------------------ refusals

    def _head_too_large(self) -> tuple[int, str, str]:
        limit = self.limits.max_header_bytes
        return 431, "headers_too_large", f"the request headers are over {limit:,} bytes in all"

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a response is on its way: close after it
            return
        if self._received == 0:  # a connection that never sent anything: just close it
            self.transport.close()
            return
        limit = self.limits.header_timeout_s
        self._refuse(408, "header_timeout", f"the request head did not arrive within {limit:g} s")

    def _body_late(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        if cycle.response_started:
            self.transport.close()  # answered already (without reading the body)
            return
        cycle.scope[TIMED_OUT_SCOPE_KEY] = True  # type: ignore[literal-required]
        cycle.disconnected = True  # the app's receive() says the client is gone...
        cycle.message_event.set()
        limit = self.limits.body_timeout_s
        message = f"the request body did not arrive within {limit:g} s"
        self._write_error(408, "body_timeout", message)  # ...and the client hears why
        self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer a request the app never saw, close the connection, report it."""
        if self.transport.is_closing():
            return
        self._cancel_timers()
        self._write_error(status, code, message)
        self.transport.close()
        hook = self.app_state.get(REFUSED_HOOK)
        if hook is not None:
            hook(status, code)

    def _write_error(self, status: int, code: str, message: str) -> None:
        body = error_body(code, defaults_for(status)[1], message)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
