"""Revocation (RFC 7009) and introspection (RFC 7662): the endpoints other services call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import ValidationError

from app.core.errors import (
    InvalidClientException,
    InvalidRequestException,
    PayloadTooLargeException,
)
from app.dependencies import PublicOrRegisteredClient, RegisteredClient, TokenServiceDep
from app.oauth2.schemas import IntrospectionResponse, TokenForm
from app.oauth2.token_request import FORM_MEDIA_TYPE
from app.openapi import DATABASE_ERRORS, error_responses

router = APIRouter(prefix="/auth", tags=["auth"])

_schema = TokenForm.model_json_schema()
_FORM_BODY: dict[str, Any] = {
    "required": True,
    "content": {FORM_MEDIA_TYPE: {"schema": _schema, "example": _schema["examples"][0]}},
}
_ERRORS = (
    InvalidRequestException,
    InvalidClientException,
    PayloadTooLargeException,
    *DATABASE_ERRORS,
)


async def read_token_form(request: Request) -> TokenForm:
    """The form of revocation and introspection; raises InvalidRequestException (400 in
    the OAuth2 shape) for another media type, a repeated parameter or a missing token."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise InvalidRequestException(f"Content-Type must be {FORM_MEDIA_TYPE}")
    form = await request.form()
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if name in fields:  # RFC 6749 §3.2: no parameter may repeat
            raise InvalidRequestException(f"Parameter {name} is repeated")
        if isinstance(value, str) and value:
            fields[name] = value
    try:
        return TokenForm.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "form"
        raise InvalidRequestException(f"{field}: {first['msg']}") from None


Form = Annotated[TokenForm, Depends(read_token_form)]


@router.post(
    "/revoke",
    dependencies=[PublicOrRegisteredClient],
    status_code=status.HTTP_200_OK,
    response_class=Response,
    summary="Revoke a token (RFC 7009)",
    responses={
        200: {"description": "Revoked, or nothing to revoke: an empty body (RFC 7009 §2.2)"},
        **error_responses(*_ERRORS),
    },
    openapi_extra={"requestBody": _FORM_BODY},
)
async def revoke(form: Form, tokens: TokenServiceDep) -> Response:
    """Form-encoded `token=...` (and optionally `token_type_hint`): an access or a refresh
    token ends its whole session, so every token of that sign-in fails from now on. The
    answer is 200 with an empty body for any token, also an unknown, expired or malformed
    one (RFC 7009 §2.2). Clients are public, as at `/auth/token`; a registered client may
    authenticate with HTTP Basic (wrong credentials: 401 `invalid_client`)."""
    await tokens.revoke(form.token, form.token_type_hint)
    return Response(status_code=status.HTTP_200_OK, headers={"Cache-Control": "no-store"})


@router.post(
    "/introspect",
    status_code=status.HTTP_200_OK,
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    summary="Introspect a token (RFC 7662)",
    responses=error_responses(*_ERRORS),
    openapi_extra={"requestBody": _FORM_BODY},
)
async def introspect(
    client: RegisteredClient, form: Form, tokens: TokenServiceDep, response: Response
) -> dict[str, Any]:
    """For resource servers: HTTP Basic with the credentials of `authsvc clients create`
    (otherwise 401 `invalid_client` with `WWW-Authenticate: Basic`). `active` is true only
    for a token the service would accept right now: valid signature, unexpired, its session
    not revoked, its user active. Anything else is `{"active": false}`."""
    response.headers["Cache-Control"] = "no-store"
    return await tokens.introspect(form.token, form.token_type_hint)
