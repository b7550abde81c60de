"""The hosted pages as a browser drives them over HTTP: read a form's anti-CSRF token, send
the form with the browser's cookies, sign in."""

from __future__ import annotations

import html
import re

import httpx
from starlette.types import ASGIApp

from tests.support.accounts import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_FLOW = re.compile(r'name="flow" value="([^"]+)"')
_ALERT = re.compile(r'role="alert">([^<]*)<')


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


def flow_of(page: httpx.Response) -> str:
    found = _FLOW.search(page.text)
    assert found is not None, page.text
    return html.unescape(found.group(1))


def alert_of(page: httpx.Response) -> str | None:
    """The text of the page's `role="alert"` element: a refused attempt's message."""
    found = _ALERT.search(page.text)
    return html.unescape(found.group(1)) if found else None


async def submit(
    client: httpx.AsyncClient, form_page: str, action: str, fields: dict[str, str]
) -> httpx.Response:
    """Open `form_page`, then POST its form to `action` with the page's token."""
    page = await client.get(form_page)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf_token": csrf_of(page), **fields})


async def sign_in(
    client: httpx.AsyncClient,
    identifier: str,
    password: str = PASSWORD,
    *,
    return_to: str | None = None,
) -> httpx.Response:
    """The sign-in form, filled in and sent: a 303 when it signed in, else the page."""
    fields = {"identifier": identifier, "password": password}
    if return_to is not None:
        fields["return_to"] = return_to
    return await submit(client, "/login", "/login", fields)


def browser_client(app: ASGIApp, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """A browser of its own (its own cookie jar) on the app."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50002))
    return httpx.AsyncClient(transport=transport, base_url=base_url)
