"""CORS (Starlette's), with a refused preflight answered in the contract's error body.

Starlette answers a preflight it refuses with `400 text/plain "Disallowed CORS origin"`.
Here it is `403 FORBIDDEN` in the error body: the request is well-formed (400 is for
requests the server cannot understand, RFC 9110 §15.5.1); the server understood it and
refuses it by policy (§15.5.4). Browsers fail any non-2xx preflight alike (Fetch standard,
CORS-preflight fetch), so the status is for people and tools reading the answer.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from app.core.errors import ForbiddenException
from app.middleware.exception import error_response

_BODY_HEADERS = frozenset({"content-type", "content-length"})


class ContractCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette's text names what was refused ("Disallowed CORS origin, method").
        reason = bytes(response.body).decode().replace("Disallowed CORS", "CORS request refused:")
        headers = {k: v for k, v in response.headers.items() if k not in _BODY_HEADERS}
        return error_response(
            ForbiddenException.status_code,
            detail=reason,
            error_code=ForbiddenException.error_code,
            headers=headers,
        )
