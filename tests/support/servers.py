"""uvicorn in a thread of the test process (so coverage sees the server side), and ports.

The socket is bound before the server starts (no race for the port), and the start is
awaited by polling uvicorn's `started` flag with a deadline.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

T = TypeVar("T")
START_DEADLINE_S = 30.0


def free_port() -> int:
    """A port nothing listens on right now (the probe socket is closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class ThreadedServer:
    """One uvicorn serving `app` on `sock`, in a thread with an event loop of its own."""

    def __init__(self, app: FastAPI, sock: socket.socket, **options: Any) -> None:
        self.app = app
        self.sock = sock
        options.setdefault("log_config", None)
        options.setdefault("lifespan", "on")
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
            self._loop = runner.get_loop()
            runner.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_DEADLINE_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-thread uvicorn did not start")
            time.sleep(0.02)  # a polling interval, not a synchronisation

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        """Run `coroutine` in the server's event loop (where the app's state lives)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


@contextmanager
def serve_in_thread(
    app: FastAPI, sock: socket.socket | None = None, **options: Any
) -> Iterator[ThreadedServer]:
    """A started ThreadedServer (on `sock`, or on a new socket it closes), stopped after."""
    own = sock is None
    server = ThreadedServer(app, sock or bound_socket(), **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if own:
            server.sock.close()
