"""The application decides who the client is, whatever server runs it.

uvicorn wraps every application it loads in its `ProxyHeadersMiddleware` unless told
otherwise (`--no-proxy-headers`), and that middleware believes `X-Forwarded-For` and
`X-Forwarded-Proto` from 127.0.0.1 and ::1 (`FORWARDED_ALLOW_IPS`): it rewrites
`scope["client"]` and `scope["scheme"]` before the application sees the request, so a
client on the same host (or behind any local proxy that passes the header through) chooses
the address the throttle counts and the log records. It also adds `server: uvicorn`.

Plain `uvicorn app.main:app` cannot be configured from inside the application, but the
application can undo both before the first connection: uvicorn runs the lifespan startup
(`LifespanOn.main`, with the server's `Config`) before it creates any protocol, and each
protocol reads `config.loaded_app` when it is created, and the default headers from
`config.encoded_headers` once a second. `take_over_from_uvicorn` therefore finds that
`Config` on the lifespan's call stack, removes the proxy-headers wrapper from
`loaded_app` and drops uvicorn's `server` header. TRUSTED_PROXIES alone then decides.
Under any other server (Hypercorn, Granian, a test client) it finds nothing and does nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

# The header uvicorn adds unless `--no-server-header`; one an operator set stays.
_UVICORN_SERVER_HEADER = (b"server", b"uvicorn")
_UVICORN_DEFAULT_FORWARDED_ALLOW_IPS = {"127.0.0.1", "::1"}
_MAX_FRAMES = 64


@dataclass
class Takeover:
    """What `take_over_from_uvicorn` found and changed."""

    under_uvicorn: bool = False
    unix_socket: str | None = None
    removed: list[str] = field(default_factory=list)
    # An explicit FORWARDED_ALLOW_IPS / --forwarded-allow-ips: the operator meant a proxy.
    ignored_forwarded_allow_ips: str | None = None


def _uvicorn_config(frame: FrameType | None) -> Any:
    config_module = sys.modules.get("uvicorn.config")
    if config_module is None:
        return None
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        config = getattr(owner, "config", None)
        if isinstance(config, config_module.Config):
            return config
        frame = frame.f_back
    return None


def take_over_from_uvicorn(frame: FrameType | None = None) -> Takeover:
    """Undo uvicorn's proxy-header rewriting and `server` header; call in the lifespan startup."""
    config = _uvicorn_config(frame or sys._getframe(1))
    result = Takeover()
    if config is None:
        return result
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    result.under_uvicorn = True
    result.unix_socket = config.uds
    if isinstance(config.loaded_app, ProxyHeadersMiddleware):
        config.loaded_app = config.loaded_app.app
        config.proxy_headers = False
        result.removed.append("proxy headers")
        allowed = config.forwarded_allow_ips
        items = allowed.split(",") if isinstance(allowed, str) else allowed
        names = {item.strip() for item in items}
        if names - _UVICORN_DEFAULT_FORWARDED_ALLOW_IPS:
            result.ignored_forwarded_allow_ips = ",".join(sorted(names))
    if _UVICORN_SERVER_HEADER in config.encoded_headers:
        config.encoded_headers = [h for h in config.encoded_headers if h != _UVICORN_SERVER_HEADER]
        config.server_header = False
        result.removed.append("server header")
    return result
