"""The request being served, visible to every coroutine it spawns: its id and its client.

Set once per request by `RequestContextMiddleware`; read by the log pipeline and the audit
trail, so neither needs the request passed down through the services.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# Enough of a User-Agent to tell browsers and devices apart; no header is stored whole.
USER_AGENT_MAX = 256


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is on the other end: the trusted-proxy-aware address and the User-Agent."""

    ip: str | None = None
    user_agent: str | None = None


_NO_CLIENT = ClientInfo()
client_var: ContextVar[ClientInfo | None] = ContextVar("client", default=None)


def current_request_id() -> str:
    return request_id_var.get()


def current_client() -> ClientInfo:
    """The request's client; nobody known outside a request (the command line)."""
    return client_var.get() or _NO_CLIENT


def clean_user_agent(value: str | None) -> str | None:
    """A User-Agent fit to store and show: printable characters only, at most 256 of them."""
    if not value:
        return None
    printable = "".join(c for c in value if c.isprintable())
    return printable[:USER_AGENT_MAX].strip() or None
