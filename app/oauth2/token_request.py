"""The HTTP side of the OAuth2 token endpoint (RFC 6749): reading the form, the client,
and the one translation of service failures into OAuth2 errors (§5.2)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Request
from pydantic import TypeAdapter, ValidationError

from app.core.errors import (
    AuthException,
    EmailNotVerifiedException,
    InvalidClientException,
    InvalidGrantException,
    InvalidRequestException,
    UnsupportedGrantTypeException,
    ValidationException,
)
from app.models.schemas import (
    PasswordGrant,
    RefreshTokenGrant,
    TokenRequest,
)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPES = ("password", "refresh_token")

_token_request: TypeAdapter[PasswordGrant | RefreshTokenGrant] = TypeAdapter(TokenRequest)

# FastAPI documents only bodies it parses itself; this one is read by `read_token_request`
# (so that its errors are OAuth2 errors), hence the hand-made request body and components.
_schema = _token_request.json_schema(ref_template="#/components/schemas/{model}")
TOKEN_REQUEST_COMPONENTS: dict[str, Any] = _schema.pop("$defs")
TOKEN_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        FORM_MEDIA_TYPE: {
            "schema": _schema,
            "examples": {
                name: {"summary": model.__doc__, "value": model.model_json_schema()["examples"][0]}
                for name, model in (
                    ("password", PasswordGrant),
                    ("refresh_token", RefreshTokenGrant),
                )
            },
        }
    },
}


@contextmanager
def oauth2_errors() -> Iterator[None]:
    """Report the service's failures as RFC 6749 §5.2 errors.

    Wrong credentials, an inactive account and a bad, expired or revoked refresh token are
    all `invalid_grant` (§5.2); anything the service finds malformed is `invalid_request`.
    Other failures (throttling, database down) keep the contract's body and status.
    """
    try:
        yield
    except (AuthException, EmailNotVerifiedException) as error:
        raise InvalidGrantException(error.detail) from error
    except ValidationException as error:
        raise InvalidRequestException(error.detail) from error


async def read_token_request(request: Request) -> PasswordGrant | RefreshTokenGrant:
    """The validated form of `POST /auth/token`; raises OAuth2Exception subclasses."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequestException(f"Content-Type must be {FORM_MEDIA_TYPE}")
    form = await request.form()
    # §3.2: parameters sent without a value are treated as omitted, and none may repeat.
    seen: set[str] = set()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if name in seen:
            raise InvalidRequestException(f"Parameter {name} is repeated")
        seen.add(name)
        if isinstance(value, str) and value:
            fields[name] = value
    _check_client(request.headers.get("authorization"), fields.get("client_secret"))
    grant_type = fields.get("grant_type")
    if grant_type is None:
        raise InvalidRequestException("grant_type is required")
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantTypeException()
    try:
        return _token_request.validate_python(fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or "form"
        raise InvalidRequestException(f"{field}: {first['msg']}") from None


def _check_client(authorization: str | None, body_secret: str | None) -> None:
    """Clients are public (RFC 6749 §2.1): none has a secret, so presenting one fails.

    Empty credentials in HTTP Basic (§2.3.1) identify no client and are accepted: this is
    what the Swagger UI sends (`Basic Og==`, i.e. ":").
    """
    if body_secret:
        raise InvalidClientException("Unknown client: no client has a secret")
    if authorization is None:
        return
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientException("Client authentication must use HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientException("Malformed client credentials") from None
    _, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClientException("Malformed client credentials")
    # §2.3.1: client id and secret are form-encoded before being joined.
    if unquote(secret):
        raise InvalidClientException("Unknown client: no client has a secret")


TokenForm = Annotated[PasswordGrant | RefreshTokenGrant, Depends(read_token_request)]
