"""uvicorn's httptools protocol with bounded request heads: size, field count and read time.

Out of the box uvicorn's httptools protocol accepts a head of any size (a 4 MiB header,
20 000 header lines) and gives a client all the time it wants to send one: a header line
every few seconds holds a connection, and a few hundred such clients hold them all
(slowloris). Nothing in front of the service can be assumed to stop that, so the server
does, before the application ever sees the request:

- a head (request line and header fields) over `HTTP_MAX_HEADER_BYTES`, or with more than
  `HTTP_MAX_HEADERS` fields, is answered `431 Request Header Fields Too Large` (RFC 6585 §5)
  in the contract's error body, and the connection is closed;
- a head not complete `HTTP_HEADER_READ_TIMEOUT` seconds after its first byte (or after the
  connection opened) is answered `408 Request Timeout` (RFC 9110 §15.5.9) and closed; an
  idle connection that never sent a byte is just closed.

Sizes are counted twice: on the raw bytes received while a head is incomplete (so a huge
header is refused after at most one read beyond the limit, never buffered whole), and per
field as the parser reports them (exact, also when a whole head arrives in one read).
`authsvc serve` runs uvicorn with this protocol; see docs/deployment.md for the measurements.
"""

from __future__ import annotations

import asyncio
import uuid
from functools import lru_cache
from typing import Any, NamedTuple

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.core.errors import (
    AppException,
    RequestHeadersTooLargeException,
    RequestTimeoutException,
    ValidationException,
)
from app.middleware.exception import error_body
from app.utils.logger import get_logger

log = get_logger(__name__)

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
MALFORMED = "Malformed HTTP request"
# ": " and CRLF around each field, as counted on the wire.
_FIELD_OVERHEAD = 4
LINGER_SECONDS = 2.0


class HeadLimits(NamedTuple):
    max_bytes: int
    max_fields: int
    read_timeout: float


@lru_cache(maxsize=1)
def configured_limits() -> HeadLimits:
    """The limits of this process's settings, read once (every worker reads its own)."""
    from app.config import get_settings

    settings = get_settings()
    return HeadLimits(
        settings.http_max_header_bytes,
        settings.http_max_headers,
        settings.http_header_read_timeout,
    )


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a head that is over a limit."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that refuses oversized heads and closes slow ones."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HeadLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or configured_limits()
        self._reading_head = True
        self._received = 0  # raw bytes since the head began
        self._head_size = 0  # request line and fields, as parsed
        self._fields = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refusal: type[AppException] | None = None
        self._discarding = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        if self._reading_head:
            if self._head_timer is None:
                self._arm_head_timer()
            self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            self.send_400_response(MALFORMED)
            return
        # Still in the head after this read: refuse before buffering any more of it.
        if self._reading_head and self._received > self.limits.max_bytes:
            self._refuse(RequestHeadersTooLargeException)

    # httptools callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_size = 0
        self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.limits.max_fields:
            self._stop(RequestHeadersTooLargeException)
        self._count(len(name) + len(value) + _FIELD_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._received = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # The next bytes are the next request's head; its clock starts with its first byte
        # (until then uvicorn's keep-alive timeout runs).
        self._reading_head = True
        self._received = 0
        super().on_message_complete()

    # limits

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_bytes:
            self._stop(RequestHeadersTooLargeException)

    def _stop(self, refusal: type[AppException]) -> None:
        self._refusal = refusal
        raise _HeadRefused

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.read_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._reading_head:
            return
        if self._received == 0 and self.cycle is None:
            self.transport.close()  # connected and never said a word: nothing to answer
            return
        self._refuse(RequestTimeoutException)

    def send_400_response(self, msg: str) -> None:
        """A request the parser cannot read: the contract's 400, not uvicorn's plain text."""
        self._refuse(ValidationException, detail=MALFORMED)

    def _refuse(self, refusal: type[AppException], *, detail: str | None = None) -> None:
        """Answer in the contract's error body, outside the application, and close."""
        self._disarm_head_timer()
        if self.transport.is_closing() or self._discarding:
            return
        request_id = str(uuid.uuid4())
        log.warning(
            "request head refused",
            status_code=refusal.status_code,
            error_code=refusal.error_code,
            client_ip=self.client[0] if self.client else None,
            request_id=request_id,
        )
        body = orjson.dumps(
            error_body(
                detail=detail or refusal.default_detail,
                error_code=refusal.error_code,
                request_id=request_id,
                # Every VALIDATION_ERROR carries its list; here the whole request is at fault.
                errors=[{"field": "request", "message": detail}]
                if refusal is ValidationException and detail
                else None,
            )
        )
        status = refusal.status_code
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"x-request-id: " + request_id.encode() + b"\r\n"
            + b"cache-control: no-store\r\n"
            + b"x-content-type-options: nosniff\r\n"
            + b"connection: close\r\n\r\n"
            + body
        )  # fmt: skip
        # A lingering close: closing with the client's unread bytes in the socket would
        # send a reset, which can destroy the answer before the client reads it. So send
        # FIN after the answer, drop whatever still comes, and close after a short grace.
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
