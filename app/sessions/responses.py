"""The one builder of the answers that carry tokens."""

from __future__ import annotations

from typing import overload

from fastapi import Response
from pydantic import BaseModel

from app.models.schemas import OAuth2TokenResponse, TokenResponse, UserRead
from app.sessions.tokens import AuthResult

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def no_store(response: Response) -> None:
    # RFC 6749 §5.1: responses carrying tokens (or secrets) must not be cached.
    response.headers.update(NO_STORE)


@overload
def token_response(result: AuthResult, response: Response) -> TokenResponse: ...


@overload
def token_response(
    result: AuthResult, response: Response, body: type[OAuth2TokenResponse]
) -> OAuth2TokenResponse: ...


def token_response(
    result: AuthResult,
    response: Response,
    body: type[BaseModel] = TokenResponse,
) -> BaseModel:
    """The tokens of a sign-in or refresh, as JSON API (with the user) or OAuth2 (§5.1)
    answer, with the no-store headers."""
    no_store(response)
    fields: dict[str, object] = {
        "access_token": result.tokens.access.token,
        "refresh_token": result.tokens.refresh.token,
        "expires_in": result.tokens.expires_in,
    }
    if body is TokenResponse:
        fields["user"] = UserRead.model_validate(result.user)
    return body.model_validate(fields)
