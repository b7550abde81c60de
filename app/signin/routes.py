"""Registration, login, token refresh and logout, in JSON and as the OAuth2 token endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from app.core.errors import (
    EmailNotVerifiedException,
    InvalidClientException,
    InvalidCredentialsException,
    InvalidGrantException,
    InvalidRequestException,
    InvalidTokenException,
    MfaRequiredException,
    PayloadTooLargeException,
    RateLimitedException,
    TokenExpiredException,
    UnsupportedGrantTypeException,
    UserAlreadyExistsException,
    UserInactiveException,
)
from app.dependencies import AuthServiceDep, JSONBody, SettingsDep
from app.models.schemas import (
    LogoutRequest,
    MfaRequiredResponse,
    OAuth2TokenResponse,
    PasswordGrant,
    RefreshRequest,
    RegistrationPending,
    TokenResponse,
    UserLogin,
    UserRead,
    UserRegister,
)
from app.oauth2.token_request import TOKEN_REQUEST_BODY, TokenForm, oauth2_errors
from app.openapi import BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.signin.mfa import IssuedChallenge
from app.signin.service import AuthResult

router = APIRouter(prefix="/auth", tags=["auth"])
REGISTRATION_PENDING = "Account created; confirm the address with the link mailed to it"


def _no_store(response: Response) -> None:
    # RFC 6749 §5.1: responses carrying tokens must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


def _token_response(result: AuthResult, response: Response) -> TokenResponse:
    _no_store(response)
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
    summary="Register a new account",
    responses={
        202: {
            "model": RegistrationPending,
            "description": "With EMAIL_VERIFICATION_REQUIRED: created, not signed in",
        },
        **error_responses(
            *BODY_ERRORS, UserAlreadyExistsException, RateLimitedException, *DATABASE_ERRORS
        ),
    },
)
async def register(
    body: UserRegister, auth: AuthServiceDep, settings: SettingsDep, response: Response
) -> TokenResponse | JSONResponse:
    """Create an account and sign it in: the answer carries its first access and refresh
    tokens. The password must be 8-128 characters, not a commonly used password and not
    essentially the username or email; the error names the rule it breaks. A link to
    confirm the address is mailed; with `EMAIL_VERIFICATION_REQUIRED` the answer is 202
    without tokens, and signing in waits for that confirmation."""
    if settings.email_verification_required:
        user = await auth.create_account(
            email=body.email, username=body.username, password=body.password
        )
        pending = RegistrationPending(
            detail=REGISTRATION_PENDING, user=UserRead.model_validate(user)
        )
        return JSONResponse(pending.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    result = await auth.register(email=body.email, username=body.username, password=body.password)
    return _token_response(result, response)


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
    body: UserLogin, auth: AuthServiceDep, response: Response
) -> TokenResponse | JSONResponse:
    """Check the password of the account named by exactly one of `email` or `username`
    and issue tokens. An unknown account and a wrong password get the same answer. With
    two-factor on, a right password answers 202 with an `mfa_token` and no tokens: send it
    with a code to `POST /auth/login/mfa`."""
    result = await auth.login(body.identifier, body.password)
    if isinstance(result, IssuedChallenge):
        challenge = MfaRequiredResponse(
            mfa_token=result.token, expires_in=result.expires_in, methods=list(result.methods)
        )
        return JSONResponse(
            challenge.model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
    return _token_response(result, response)


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
async def token(form: TokenForm, auth: AuthServiceDep, response: Response) -> OAuth2TokenResponse:
    """RFC 6749 token endpoint, form-encoded: `grant_type=password` with `username` (email
    or username) and `password` (§4.3), or `grant_type=refresh_token` with `refresh_token`
    (§6). This is what the Authorize button of this page and OAuth2 client libraries use.
    Clients are public: no client secret; empty HTTP Basic credentials are accepted.
    Errors have the OAuth2 shape (§5.2) plus `request_id`; throttling and outages keep the
    service's usual error body. With two-factor on, a right password is 400 `mfa_required`
    with an `mfa_token`: finish at `POST /auth/login/mfa`."""
    with oauth2_errors():
        if isinstance(form, PasswordGrant):
            outcome = await auth.login(form.username, form.password)
            if isinstance(outcome, IssuedChallenge):
                raise MfaRequiredException(outcome.token)
            result = outcome
        else:
            result = await auth.refresh(form.refresh_token)
    _no_store(response)
    return OAuth2TokenResponse(
        access_token=result.tokens.access.token,
        refresh_token=result.tokens.refresh.token,
        expires_in=result.tokens.expires_in,
    )


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
async def refresh(body: RefreshRequest, auth: AuthServiceDep, response: Response) -> TokenResponse:
    """Exchange a refresh token for a new access token. An access token, or an expired,
    tampered or malformed token, is refused with 401."""
    result = await auth.refresh(body.refresh_token)
    return _token_response(result, response)


@router.post(
    "/logout",
    dependencies=[JSONBody],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Log out: revoke a session",
    responses=error_responses(*BODY_ERRORS, *DATABASE_ERRORS),
)
async def logout(body: LogoutRequest, auth: AuthServiceDep) -> Response:
    """Revoke the session of a refresh token: that refresh token (with rotation, its whole
    family) and every access token issued with it fail from now on. An access token in
    `refresh_token` ends its session the same way. The answer is 204 whatever the token,
    even an unknown, expired or malformed one (RFC 7009 §2.2), so logout reveals nothing
    about it."""
    await auth.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
