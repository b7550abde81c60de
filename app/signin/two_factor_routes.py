"""Two-factor authentication of the signed-in user: turning it on (a TOTP key confirmed by
a code), recovery codes, turning it off."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status

from app.core.errors import (
    InvalidCurrentPasswordException,
    InvalidMfaCodeException,
    MfaAlreadyEnabledException,
    PayloadTooLargeException,
    RateLimitedException,
    ReauthenticationRequiredException,
)
from app.dependencies import CurrentPrincipal, CurrentUser, JSONBody, TwoFactorDep
from app.models.schemas import (
    MfaCode,
    MfaDisable,
    Reauthenticate,
    RecoveryCodesResponse,
    TotpEnrolmentResponse,
)
from app.openapi import BEARER_ERRORS, BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.sessions.responses import no_store

router = APIRouter(tags=["users"])


@router.post(
    "/users/me/mfa/totp",
    status_code=status.HTTP_201_CREATED,
    response_model=TotpEnrolmentResponse,
    summary="Start a TOTP enrolment",
    responses=error_responses(
        *BEARER_ERRORS,
        MfaAlreadyEnabledException,
        InvalidCurrentPasswordException,
        ReauthenticationRequiredException,
        RateLimitedException,
        PayloadTooLargeException,
        *DATABASE_ERRORS,
    ),
)
async def start_totp(
    me: CurrentPrincipal,
    two_factor: TwoFactorDep,
    response: Response,
    body: Annotated[
        Reauthenticate | None,
        Body(
            openapi_examples={
                "password": {
                    "summary": "With the current password (else a recent sign-in is needed)",
                    "value": {"current_password": "correct horse battery staple"},
                }
            }
        ),
    ] = None,
) -> TotpEnrolmentResponse:
    """A new TOTP key (SHA-1, 6 digits, 30 s) as base32, an `otpauth://` URI and a QR code
    (inline SVG) for an authenticator app. Two-factor is on only once a code of it is
    confirmed; a new call replaces an unconfirmed key. While two-factor is on: 409.

    Proves the person is there: an optional `{"current_password"}` (a wrong one is 400
    `INVALID_CURRENT_PASSWORD`), or else a session signed in at most
    `REAUTH_MAX_AGE_SECONDS` ago (otherwise 403 `REAUTHENTICATION_REQUIRED`)."""
    enrolment = await two_factor.start(
        me.user,
        current_password=body.current_password if body else None,
        auth_time=me.auth_time,
    )
    no_store(response)
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
    body: MfaCode, user: CurrentUser, two_factor: TwoFactorDep, response: Response
) -> RecoveryCodesResponse:
    """Turn two-factor on with a current code of the pending key. The answer holds ten
    recovery codes, shown this once: each signs in once instead of a TOTP code. A wrong code
    (or none pending) is 400 `INVALID_MFA_CODE`; wrong codes count toward the account's
    login throttle. A notice is mailed to the account's address."""
    codes = await two_factor.confirm(user, body.code)
    no_store(response)
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
        ReauthenticationRequiredException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def disable_totp(
    body: MfaDisable, me: CurrentPrincipal, two_factor: TwoFactorDep
) -> Response:
    """Turn two-factor off, with the current password: the key and the recovery codes are
    deleted, and a notice is mailed. A wrong password is 400 `INVALID_CURRENT_PASSWORD` and
    counts toward the account's login throttle. Also 204 when two-factor was already off."""
    await two_factor.disable_by_owner(
        me.user, current_password=body.current_password, auth_time=me.auth_time
    )
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
    body: MfaCode, user: CurrentUser, two_factor: TwoFactorDep, response: Response
) -> RecoveryCodesResponse:
    """Ten new recovery codes for a current TOTP code; every older recovery code stops
    working. A wrong or already used code, or two-factor off, is 400 `INVALID_MFA_CODE`."""
    codes = await two_factor.regenerate_recovery_codes(user, body.code)
    no_store(response)
    return RecoveryCodesResponse(recovery_codes=codes)
