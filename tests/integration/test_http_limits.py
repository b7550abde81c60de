"""Request heads against a real `authsvc serve` process, over raw sockets.

Oversized heads (one huge header, too many headers) are refused with 431 in the error
body; a head that trickles in (slowloris) or never comes is cut off after
HTTP_HEADER_READ_TIMEOUT. Every wait is a poll on the socket with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import httpx
import pytest

from app.http_protocol import BoundedHeadProtocol, HeadLimits
from app.main import create_app
from tests.support import build_settings
from tests.support.markers import starts
from tests.support.processes import ServerProcess, serve_argv, server_env, spawn, wait_until
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.timeout(120)

HEAD_TIMEOUT_S = 1.0
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS = 40
CLOSE_BOUND_S = HEAD_TIMEOUT_S + 5.0  # generous: catches a connection kept, asserts no speed
REQUEST_LINE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@dataclass
class InProcessServer:
    """The same protocol in a uvicorn of the test process (so coverage sees it)."""

    port: int


AnyServer = InProcessServer | ServerProcess


@pytest.fixture(scope="module")
def in_process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    workdir = tmp_path_factory.mktemp("http-limits-thread")
    settings = build_settings(f"sqlite+aiosqlite:///{workdir / 'auth.db'}", workdir)
    limits = HeadLimits(MAX_HEADER_BYTES, MAX_HEADERS, HEAD_TIMEOUT_S)
    protocol = partial(BoundedHeadProtocol, limits=limits)
    with serve_in_thread(create_app(settings), http=protocol) as server:
        yield InProcessServer(server.port)


@pytest.fixture(params=[pytest.param("serve", marks=pytest.mark.process), "in-process"])
def server(request: pytest.FixtureRequest) -> AnyServer:
    name = "serve_process" if request.param == "serve" else "in_process_server"
    running: AnyServer = request.getfixturevalue(name)
    return running


@pytest.fixture(scope="module")
@starts("process")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("http-limits")
    env = server_env(
        f"sqlite+aiosqlite:///{workdir / 'auth.db'}",
        HTTP_HEADER_READ_TIMEOUT=str(HEAD_TIMEOUT_S),
        HTTP_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        HTTP_MAX_HEADERS=str(MAX_HEADERS),
    )
    process = spawn("serve", serve_argv(), env, workdir)
    try:
        wait_until(process, lambda r: r.status_code == 200, "/health/live")
        yield process
    finally:
        process.stop()


def _connect(server: AnyServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=CLOSE_BOUND_S)


def _read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection (fails at the deadline)."""
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the server kept the connection open; got {received[:200]!r}"
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server takes; it may stop reading (and close) once it has refused."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object], str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), json.loads(body), "\r\n".join(lines[1:]).lower()


def _assert_refused(raw: bytes, status: int, code: str) -> dict[str, object]:
    got, body, headers = _status_and_body(raw)
    assert got == status, raw[:300]
    assert body["error_code"] == code
    assert set(body) - {"errors"} == {"detail", "error_code", "timestamp", "request_id"}
    assert f"x-request-id: {body['request_id']}" in headers
    assert "connection: close" in headers
    assert "content-type: application/json" in headers
    return body


def test_a_request_no_parser_can_read_is_400_in_the_error_body(server: AnyServer) -> None:
    with _connect(server) as sock:
        _send_all(sock, b"GET /health/live HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n")
        raw = _read_until_closed(sock, time.monotonic() + CLOSE_BOUND_S)
    body = _assert_refused(raw, 400, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "request", "message": "Malformed HTTP request"}]


def test_a_header_of_4_mib_is_refused_with_431(server: AnyServer) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        _send_all(sock, REQUEST_LINE + b"X-Big: " + b"a" * (4 * 1024 * 1024) + b"\r\n\r\n")
        raw = _read_until_closed(sock, started + CLOSE_BOUND_S)
    _assert_refused(raw, 431, "REQUEST_HEADERS_TOO_LARGE")


def test_twenty_thousand_headers_are_refused_with_431(
    server: AnyServer,
) -> None:
    fields = b"".join(b"X-F%d: y\r\n" % n for n in range(20_000))
    with _connect(server) as sock:
        started = time.monotonic()
        _send_all(sock, REQUEST_LINE + fields + b"\r\n")
        raw = _read_until_closed(sock, started + CLOSE_BOUND_S)
    _assert_refused(raw, 431, "REQUEST_HEADERS_TOO_LARGE")


def test_one_field_over_the_count_is_refused_even_when_small(
    server: AnyServer,
) -> None:
    fields = b"".join(b"X-F%d: y\r\n" % n for n in range(MAX_HEADERS))  # + Host: one too many
    with _connect(server) as sock:
        _send_all(sock, REQUEST_LINE + fields + b"\r\n")
        raw = _read_until_closed(sock, time.monotonic() + CLOSE_BOUND_S)
    _assert_refused(raw, 431, "REQUEST_HEADERS_TOO_LARGE")


def test_heads_within_the_limits_are_served(server: AnyServer) -> None:
    # Close to both limits, in one read: the per-field count must not be off by much.
    fields = b"".join(b"X-F%d: y\r\n" % n for n in range(MAX_HEADERS - 3))
    big = b"X-Big: " + b"a" * (MAX_HEADER_BYTES - 1024) + b"\r\n"
    with _connect(server) as sock:
        _send_all(sock, REQUEST_LINE + fields + big + b"Connection: close\r\n\r\n")
        raw = _read_until_closed(sock, time.monotonic() + CLOSE_BOUND_S)
    status, body, _ = _status_and_body(raw)
    assert status == 200, raw[:300]
    assert body == {"status": "ok"}


def test_a_head_sent_one_line_at_a_time_is_cut_off_after_the_read_timeout(
    server: AnyServer,
) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(REQUEST_LINE)
        sent = 0
        # Slowloris: a fresh header line every 0.2 s, each well inside any idle timeout.
        while not select.select([sock], [], [], 0.2)[0]:
            assert time.monotonic() - started < CLOSE_BOUND_S, "the server kept waiting"
            _send_all(sock, b"X-Slow-%d: y\r\n" % sent)
            sent += 1
        raw = _read_until_closed(sock, started + CLOSE_BOUND_S)
        elapsed = time.monotonic() - started
    _assert_refused(raw, 408, "REQUEST_TIMEOUT")
    assert elapsed >= HEAD_TIMEOUT_S * 0.9  # the head's own deadline, not a per-line one
    assert sent >= 3


def test_a_connection_that_never_sends_a_byte_is_closed(
    server: AnyServer,
) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        raw = _read_until_closed(sock, started + CLOSE_BOUND_S)
    assert raw == b""


def test_the_second_head_on_a_kept_alive_connection_has_its_own_deadline(
    server: AnyServer,
) -> None:
    with _connect(server) as sock:
        sock.sendall(REQUEST_LINE + b"\r\n")
        first = b""
        while b'{"status":"ok"}' not in first:
            assert select.select([sock], [], [], CLOSE_BOUND_S)[0], "no answer to the first"
            first += sock.recv(65536)
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")  # and then nothing more
        raw = _read_until_closed(sock, started + CLOSE_BOUND_S)
    _assert_refused(raw, 408, "REQUEST_TIMEOUT")


def test_refusals_are_logged_and_the_server_keeps_serving(serve_process: ServerProcess) -> None:
    server = serve_process
    with _connect(server) as sock:
        _send_all(sock, REQUEST_LINE + b"X-Big: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\n\r\n")
        raw = _read_until_closed(sock, time.monotonic() + CLOSE_BOUND_S)
    _, body, _ = _status_and_body(raw)

    assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
    deadline = time.monotonic() + CLOSE_BOUND_S
    while True:
        lines = [json.loads(x) for x in server.output().splitlines() if x.startswith("{")]
        logged = [x for x in lines if x.get("request_id") == body["request_id"]]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # a polling interval on the log file, not a synchronisation
    assert [x["message"] for x in logged] == ["request head refused"]
    assert logged[0]["status_code"] == 431
