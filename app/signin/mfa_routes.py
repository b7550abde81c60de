"""Two-factor authentication (TOTP, RFC 6238): enrolment, recovery codes, the second step
of sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.core.errors import (
    AppException,
    InvalidCurrentPasswordException,
    InvalidMfaCodeException,
    InvalidTokenException,
    MfaAlreadyEnabledException,
    MfaCodeRejectedException,
    NotAuthenticatedException,
    PayloadTooLargeException,
    RateLimitedException,
    TokenExpiredException,
    UserInactiveException,
)
from app.dependencies import AuthServiceDep, CurrentUser, JSONBody, MfaServiceDep
from app.models.schemas import (
    MfaCode,
    MfaDisable,
    MfaLogin,
    RecoveryCodesResponse,
    TokenResponse,
    TotpEnrolmentResponse,
    UserRead,
)
from app.openapi import BODY_ERRORS, DATABASE_ERRORS, error_responses

router = APIRouter(tags=["users"])

BEARER_ERRORS: tuple[type[AppException], ...] = (
    NotAuthenticatedException,
    InvalidTokenException,
    TokenExpiredException,
    UserInactiveException,
)


def _no_store(response: Response) -> None:
    # Secrets, recovery codes and tokens must not be kept by any cache (RFC 9111 §5.2.2.5).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post(
    "/users/me/mfa/totp",
    status_code=status.HTTP_201_CREATED,
    response_model=TotpEnrolmentResponse,
    summary="Start a TOTP enrolment",
    responses=error_responses(
        *BEARER_ERRORS, MfaAlreadyEnabledException, PayloadTooLargeException, *DATABASE_ERRORS
    ),
)
async def start_totp(
    user: CurrentUser, mfa: MfaServiceDep, response: Response
) -> TotpEnrolmentResponse:
    """A new TOTP key (SHA-1, 6 digits, 30 s) as base32, an `otpauth://` URI and a QR code
    (inline SVG) for an authenticator app. Two-factor is on only once a code of it is
    confirmed; a new call replaces an unconfirmed key. While two-factor is on: 409."""
    enrolment = await mfa.start_enrolment(user)
    _no_store(response)
    return TotpEnrolmentResponse(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
    )


@router.post(
    "/users/me/mfa/totp/confirm",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=RecoveryCodesResponse,
    summary="Confirm the TOTP key: two-factor on",
    responses=error_responses(
        *BODY_ERRORS,
        *BEARER_ERRORS,
        InvalidMfaCodeException,
        MfaAlreadyEnabledException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def confirm_totp(
    body: MfaCode, user: CurrentUser, mfa: MfaServiceDep, response: Response
) -> RecoveryCodesResponse:
    """Turn two-factor on with a current code of the pending key. The answer holds ten
    recovery codes, shown this once: each signs in once instead of a TOTP code. A wrong code
    (or none pending) is 400 `INVALID_MFA_CODE`; wrong codes count toward the account's
    login throttle."""
    codes = await mfa.confirm(user, body.code)
    _no_store(response)
    return RecoveryCodesResponse(recovery_codes=codes)


@router.delete(
    "/users/me/mfa/totp",
    dependencies=[JSONBody],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Turn two-factor off",
    responses=error_responses(
        *BODY_ERRORS,
        *BEARER_ERRORS,
        InvalidCurrentPasswordException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def disable_totp(body: MfaDisable, user: CurrentUser, auth: AuthServiceDep) -> Response:
    """Turn two-factor off, with the current password: the key and the recovery codes are
    deleted. A wrong password is 400 `INVALID_CURRENT_PASSWORD` and counts toward the
    account's login throttle. Also 204 when two-factor was already off."""
    await auth.disable_mfa(user, body.current_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/me/mfa/recovery-codes",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=RecoveryCodesResponse,
    summary="New recovery codes",
    responses=error_responses(
        *BODY_ERRORS,
        *BEARER_ERRORS,
        InvalidMfaCodeException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def regenerate_recovery_codes(
    body: MfaCode, user: CurrentUser, mfa: MfaServiceDep, response: Response
) -> RecoveryCodesResponse:
    """Ten new recovery codes for a current TOTP code; every older recovery code stops
    working. A wrong or already used code, or two-factor off, is 400 `INVALID_MFA_CODE`."""
    codes = await mfa.regenerate_recovery_codes(user, body.code)
    _no_store(response)
    return RecoveryCodesResponse(recovery_codes=codes)


@router.post(
    "/auth/login/mfa",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    tags=["auth"],
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
async def login_mfa(body: MfaLogin, auth: AuthServiceDep, response: Response) -> TokenResponse:
    """The `mfa_token` of a 202 from `/auth/login` (or of `mfa_required` from `/auth/token`)
    with a current TOTP code (one 30 s step early or late is accepted) or an unused recovery
    code. A code is accepted once. A wrong code is 401 `INVALID_MFA_CODE`; after five
    attempts, or once used, or after `expires_in`, the mfa_token is 401 `INVALID_TOKEN`."""
    result = await auth.login_mfa(body.mfa_token, body.code)
    _no_store(response)
    return TokenResponse(
        access_token=result.tokens.access.token,
        refresh_token=result.tokens.refresh.token,
        expires_in=result.tokens.expires_in,
        user=UserRead.model_validate(result.user),
    )
