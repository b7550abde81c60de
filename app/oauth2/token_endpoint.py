"""`POST /auth/token`: the OAuth2 token endpoint (RFC 6749)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.core.errors import (
    InvalidClientException,
    InvalidGrantException,
    InvalidRequestException,
    MfaRequiredException,
    PayloadTooLargeException,
    RateLimitedException,
    UnsupportedGrantTypeException,
)
from app.dependencies import SessionTokensDep, SignInDep
from app.models.schemas import OAuth2TokenResponse, PasswordGrant
from app.oauth2.token_request import TOKEN_REQUEST_BODY, TokenForm, oauth2_errors
from app.openapi import DATABASE_ERRORS, error_responses
from app.sessions.responses import token_response
from app.signin.flow import PendingFlow

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    status_code=status.HTTP_200_OK,
    response_model=OAuth2TokenResponse,
    summary="OAuth2 token endpoint (password and refresh_token grants)",
    responses=error_responses(
        InvalidRequestException,
        InvalidGrantException,
        MfaRequiredException,
        UnsupportedGrantTypeException,
        InvalidClientException,
        PayloadTooLargeException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
    openapi_extra={"requestBody": TOKEN_REQUEST_BODY},
)
async def token(
    form: TokenForm, signin: SignInDep, tokens: SessionTokensDep, response: Response
) -> OAuth2TokenResponse:
    """RFC 6749 token endpoint, form-encoded: `grant_type=password` with `username` (email
    or username) and `password` (§4.3), or `grant_type=refresh_token` with `refresh_token`
    (§6). This is what the Authorize button of this page and OAuth2 client libraries use.
    A public client sends no secret (empty HTTP Basic credentials are accepted); a
    registered client may authenticate with HTTP Basic or `client_id` and `client_secret`
    in the form, and wrong credentials are 401 `invalid_client`.
    Errors have the OAuth2 shape (§5.2) plus `request_id`; throttling and outages keep the
    service's usual error body. With two-factor on, a right password is 400 `mfa_required`
    with an `mfa_token`: finish at `POST /auth/login/mfa`."""
    with oauth2_errors():
        if isinstance(form, PasswordGrant):
            outcome = await signin.login(form.username, form.password)
            if isinstance(outcome, PendingFlow):
                raise MfaRequiredException(outcome.token)
            result = outcome
        else:
            result = await tokens.refresh(form.refresh_token)
    return token_response(result, response, OAuth2TokenResponse)
