"""The HTTP side of the OAuth2 token endpoint (RFC 6749): reading the form, the client,
and the one translation of service failures into OAuth2 errors (§5.2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import TypeAdapter, ValidationError

from app.core.errors import (
    AuthException,
    EmailNotVerifiedException,
    InvalidGrantException,
    InvalidRequestException,
    UnsupportedGrantTypeException,
    ValidationException,
)
from app.dependencies import SessionDep
from app.models.client import OAuthClient
from app.models.schemas import (
    AuthorizationCodeGrant,
    PasswordGrant,
    RefreshTokenGrant,
    TokenRequest,
)
from app.oauth2.client_auth import (
    ClientCredentials,
    authenticate_client,
    presented_credentials,
)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPES = ("password", "refresh_token", "authorization_code")

Grant = PasswordGrant | RefreshTokenGrant | AuthorizationCodeGrant
_token_request: TypeAdapter[Grant] = TypeAdapter(TokenRequest)

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
                    ("authorization_code", AuthorizationCodeGrant),
                    ("refresh_token", RefreshTokenGrant),
                    ("password", PasswordGrant),
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


async def read_oauth2_form(request: Request) -> dict[str, str]:
    """The form of an OAuth2 endpoint (token, revocation, introspection), read once per
    request; raises InvalidRequestException for another media type or a repeated
    parameter. §3.2: parameters sent without a value are treated as omitted."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequestException(f"Content-Type must be {FORM_MEDIA_TYPE}")
    form = await request.form()
    seen: set[str] = set()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if name in seen:
            raise InvalidRequestException(f"Parameter {name} is repeated")
        seen.add(name)
        if isinstance(value, str) and value:
            fields[name] = value
    return fields


OAuth2Form = Annotated[dict[str, str], Depends(read_oauth2_form)]


async def get_client(request: Request, session: SessionDep, form: OAuth2Form) -> OAuthClient | None:
    """The registered client that authenticated (HTTP Basic or the form), None for a
    public client; wrong credentials are 401 `invalid_client` (RFC 6749 §2.3.1)."""
    credentials = presented_credentials(request.headers.get("authorization"), form)
    return await authenticate_client(session, credentials, required=False)


async def get_registered_client(
    request: Request, session: SessionDep, form: OAuth2Form
) -> OAuthClient:
    """A registered client, authenticated (RFC 7662 §2.1); raises InvalidClientException
    (401, `WWW-Authenticate: Basic`) for missing or wrong credentials."""
    credentials = presented_credentials(request.headers.get("authorization"), form)
    client = await authenticate_client(session, credentials, required=True)
    assert client is not None
    return client


Client = Annotated[OAuthClient | None, Depends(get_client)]
RegisteredClient = Annotated[OAuthClient, Depends(get_registered_client)]


async def read_token_request(request: Request, form: OAuth2Form, client: Client) -> Grant:
    """The validated form of `POST /auth/token`, its client authenticated first; raises
    OAuth2Exception subclasses."""
    fields = {k: v for k, v in form.items() if k not in ("client_id", "client_secret")}
    grant_type = fields.get("grant_type")
    if grant_type is None:
        raise InvalidRequestException("grant_type is required")
    password_off = grant_type == "password" and not request.app.state.settings.oauth2_password_grant
    if grant_type not in GRANT_TYPES or password_off:
        raise UnsupportedGrantTypeException()
    try:
        return _token_request.validate_python(fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"][1:]) or "form"
        raise InvalidRequestException(f"{field}: {first['msg']}") from None


TokenForm = Annotated[Grant, Depends(read_token_request)]


async def get_presented_client(request: Request, form: OAuth2Form) -> ClientCredentials | None:
    """What the request presents as its client (checked by the grant that needs one)."""
    return presented_credentials(request.headers.get("authorization"), form)


PresentedClient = Annotated[ClientCredentials | None, Depends(get_presented_client)]
