"""What every hosted page checks: the anti-CSRF token of a form POST, and `return_to`.

**Anti-CSRF** (OWASP CSRF cheat sheet, "signed double-submit cookie"): a browser gets a
random pre-session cookie (`authsvc_csrf`, `HttpOnly`, `SameSite=Lax`; `__Host-` and
`Secure` on https). A form carries `HMAC-SHA256(key, cookie | session id)` under a key
derived from SECRET_KEY: only this browser's cookie and, once signed in, only this
browser session give the same token, so a form of another browser, or one rendered before
the person signed in or out, is refused. Nothing is stored on the server; the check holds
on every worker that shares SECRET_KEY.

**`return_to`** is followed only when it is a path on this service: it starts with one `/`
(not `//`, which a browser reads as another host), holds no backslash (browsers read `\\`
as `/`), no control character or space (browsers drop tabs and newlines: `/\\t/evil`), no
scheme or host, and is ASCII. Anything else is ignored and the page goes to `/account`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from app.utils.keyed_hash import derive_key

CSRF_KEY_INFO = b"authsvc/v1/pages-csrf"
CSRF_FIELD = "csrf_token"
DEFAULT_RETURN_TO = "/account"
_MAX_RETURN_TO = 2048
_BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Csrf:
    """The pre-session cookie and the tokens bound to it."""

    def __init__(self, secret: str, *, secure: bool) -> None:
        self._key = derive_key(secret, CSRF_KEY_INFO)
        self.secure = secure
        self.cookie_name = "__Host-authsvc_csrf" if secure else "authsvc_csrf"

    def browser_id(self, request: Request) -> str | None:
        value = request.cookies.get(self.cookie_name)
        return value if value is not None and _BROWSER_ID.match(value) else None

    @staticmethod
    def new_browser_id() -> str:
        return secrets.token_urlsafe(32)

    def set_cookie(self, response: Response, browser_id: str) -> None:
        # A session cookie: a form is filled in within one run of the browser.
        response.set_cookie(
            self.cookie_name,
            browser_id,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def token(self, browser_id: str, session_id: str | None) -> str:
        message = f"{browser_id}|{session_id or ''}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def valid(self, request: Request, submitted: object, session_id: str | None) -> bool:
        """Whether a form's token is this browser's, for its current session (or none)."""
        browser_id = self.browser_id(request)
        if browser_id is None or not isinstance(submitted, str) or len(submitted) > 64:
            return False
        return hmac.compare_digest(submitted, self.token(browser_id, session_id))


def safe_return_to(value: object) -> str | None:
    """`value` when it is a path on this service, else None (see the module's rule)."""
    if not isinstance(value, str) or not value or len(value) > _MAX_RETURN_TO:
        return None
    if not value.isascii() or not value.startswith("/") or "\\" in value:
        return None
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
        return None
    # Also the percent-decoded form: `/%2F/evil.example` stays a path here, but a peer that
    # decodes before redirecting would make it `//evil.example`.
    for candidate in (value, unquote(value)):
        if candidate.startswith("//") or "\\" in candidate:
            return None
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return None
    return value


def return_to_or_default(value: object) -> str:
    return safe_return_to(value) or DEFAULT_RETURN_TO
