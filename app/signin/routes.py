"""Signing in with the JSON API: the password, then (with two-factor on) the second step."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from app.core.errors import (
    EmailNotVerifiedException,
    InvalidCredentialsException,
    InvalidTokenException,
    MfaCodeRejectedException,
    RateLimitedException,
    UserInactiveException,
)
from app.dependencies import JSONBody, SignInDep
from app.models.schemas import MfaLogin, MfaRequiredResponse, TokenResponse, UserLogin
from app.openapi import BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.sessions.responses import NO_STORE, token_response
from app.signin.flow import PendingFlow

router = APIRouter(prefix="/auth", tags=["auth"])


def pending_response(flow: PendingFlow) -> JSONResponse:
    """The 202 of a sign-in that needs its second step: no tokens, the flow's token."""
    body = MfaRequiredResponse(
        mfa_token=flow.token, expires_in=flow.expires_in, methods=list(flow.offered)
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED, headers=NO_STORE
    )


@router.post(
    "/login",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    summary="Log in with email or username",
    responses={
        202: {
            "model": MfaRequiredResponse,
            "description": "Right password, two-factor on: finish at /auth/login/mfa",
        },
        **error_responses(
            *BODY_ERRORS,
            InvalidCredentialsException,
            UserInactiveException,
            EmailNotVerifiedException,
            RateLimitedException,
            *DATABASE_ERRORS,
        ),
    },
)
async def login(
    body: UserLogin, signin: SignInDep, response: Response
) -> TokenResponse | JSONResponse:
    """Check the password of the account named by exactly one of `email` or `username`
    and issue tokens. An unknown account and a wrong password get the same answer. With
    two-factor on, a right password answers 202 with an `mfa_token` and no tokens: send it
    with a code to `POST /auth/login/mfa`."""
    result = await signin.login(body.identifier, body.password)
    if isinstance(result, PendingFlow):
        return pending_response(result)
    return token_response(result, response)


@router.post(
    "/login/mfa",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    summary="Finish a sign-in with the second factor",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidTokenException,
        MfaCodeRejectedException,
        UserInactiveException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def login_mfa(body: MfaLogin, signin: SignInDep, response: Response) -> TokenResponse:
    """The `mfa_token` of a 202 from `/auth/login` (or of `mfa_required` from `/auth/token`)
    with a current TOTP code (one 30 s step early or late is accepted) or an unused recovery
    code. A code is accepted once. A wrong code is 401 `INVALID_MFA_CODE`; after five
    attempts, or once used, or after `expires_in`, the mfa_token is 401 `INVALID_TOKEN`, as
    it is once the account's password changed since the first step. Unknown or expired
    mfa_tokens are throttled per client address."""
    submission = body.model_dump(exclude={"mfa_token"}, exclude_none=True)
    result = await signin.second_factor(body.mfa_token, submission)
    return token_response(result, response)
