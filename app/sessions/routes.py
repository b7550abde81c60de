"""A session's tokens: refresh and logout."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.core.errors import (
    InvalidTokenException,
    RateLimitedException,
    TokenExpiredException,
    UserInactiveException,
)
from app.dependencies import JSONBody, SessionTokensDep
from app.models.schemas import LogoutRequest, RefreshRequest, TokenResponse
from app.openapi import BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.sessions.responses import token_response

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/refresh",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    summary="Get a fresh access token",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidTokenException,
        TokenExpiredException,
        UserInactiveException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def refresh(
    body: RefreshRequest, tokens: SessionTokensDep, response: Response
) -> TokenResponse:
    """Exchange a refresh token for a new access token. An access token, or an expired,
    tampered or malformed token, is refused with 401."""
    return token_response(await tokens.refresh(body.refresh_token), response)


@router.post(
    "/logout",
    dependencies=[JSONBody],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Log out: revoke a session",
    responses=error_responses(*BODY_ERRORS, *DATABASE_ERRORS),
)
async def logout(body: LogoutRequest, tokens: SessionTokensDep) -> Response:
    """Revoke the session of a refresh token: that refresh token (with rotation, its whole
    family) and every access token issued with it fail from now on. An access token in
    `refresh_token` ends its session the same way. The answer is 204 whatever the token,
    even an unknown, expired or malformed one (RFC 7009 §2.2), so logout reveals nothing
    about it."""
    await tokens.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
