"""Registration, login, token refresh and logout."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.dependencies import AuthServiceDep, JSONBody
from app.models.schemas import (
    LogoutRequest,
    RefreshRequest,
    TokenResponse,
    UserLogin,
    UserRead,
    UserRegister,
)
from app.routes.responses import error_responses
from app.services.auth_service import AuthResult

router = APIRouter(prefix="/auth", tags=["auth"])


def _token_response(result: AuthResult, response: Response) -> TokenResponse:
    # RFC 6749 §5.1: responses carrying tokens must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=result.tokens.access.token,
        refresh_token=result.tokens.refresh.token,
        expires_in=result.tokens.expires_in,
        user=UserRead.model_validate(result.user),
    )


@router.post(
    "/register",
    dependencies=[JSONBody],
    status_code=status.HTTP_201_CREATED,
    response_model=TokenResponse,
    responses=error_responses(400, 409, 413, 415, 429, 500, 503),
)
async def register(body: UserRegister, auth: AuthServiceDep, response: Response) -> TokenResponse:
    """Create an account and return its first tokens."""
    result = await auth.register(email=body.email, username=body.username, password=body.password)
    return _token_response(result, response)


@router.post(
    "/login",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    responses=error_responses(400, 401, 413, 415, 429, 500, 503),
)
async def login(body: UserLogin, auth: AuthServiceDep, response: Response) -> TokenResponse:
    """Log in with an email or a username and a password."""
    result = await auth.login(body.identifier, body.password)
    return _token_response(result, response)


@router.post(
    "/refresh",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    responses=error_responses(400, 401, 413, 415, 429, 500, 503),
)
async def refresh(body: RefreshRequest, auth: AuthServiceDep, response: Response) -> TokenResponse:
    """Exchange a refresh token for a fresh access token."""
    result = await auth.refresh(body.refresh_token)
    return _token_response(result, response)


@router.post(
    "/logout",
    dependencies=[JSONBody],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(400, 413, 415, 500, 503),
)
async def logout(body: LogoutRequest, auth: AuthServiceDep) -> Response:
    """Revoke the session of a refresh token; 204 whatever the token (RFC 7009 §2.2)."""
    await auth.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
