"""Password reset and change, email verification and change (the contract, version 2)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.core.errors import (
    InvalidCurrentPasswordException,
    InvalidResetTokenException,
    InvalidVerificationTokenException,
    RateLimitedException,
    ReauthenticationRequiredException,
    UserAlreadyExistsException,
)
from app.dependencies import AccountServiceDep, CurrentPrincipal, JSONBody
from app.models.schemas import (
    AcceptedResponse,
    EmailChange,
    EmailVerify,
    PasswordChange,
    PasswordForgot,
    PasswordReset,
    TokenResponse,
    UserRead,
    VerificationResend,
)
from app.openapi import BEARER_ERRORS, BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.sessions.responses import token_response

router = APIRouter()

FORGOT_ANSWER = "If the address belongs to an account, a reset link is on its way"
RESEND_ANSWER = "If the address belongs to an account that needs it, a link is on its way"
CHANGE_ANSWER = "A confirmation link is on its way to the new address"


@router.post(
    "/auth/password/forgot",
    tags=["auth"],
    dependencies=[JSONBody],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedResponse,
    summary="Ask for a password-reset link",
    responses=error_responses(*BODY_ERRORS, RateLimitedException, *DATABASE_ERRORS),
)
async def forgot_password(body: PasswordForgot, accounts: AccountServiceDep) -> AcceptedResponse:
    """Mail a reset link to the address if it belongs to an active account. The answer,
    and its timing, are the same for every address, so it tells nobody whether an account
    exists. Throttled per address (`RATE_LIMIT_PASSWORD_RESET`) and per client."""
    await accounts.request_password_reset(body.email)
    return AcceptedResponse(detail=FORGOT_ANSWER)


@router.post(
    "/auth/password/reset",
    tags=["auth"],
    dependencies=[JSONBody],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Set a new password with a reset link's token",
    responses=error_responses(*BODY_ERRORS, InvalidResetTokenException, *DATABASE_ERRORS),
)
async def reset_password(body: PasswordReset, accounts: AccountServiceDep) -> Response:
    """Use a reset token once: the password is set, every session of the account ends
    (all its tokens answer 401), its other reset links die, and a notice is mailed."""
    await accounts.reset_password(body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/users/me/password",
    tags=["users"],
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=TokenResponse,
    summary="Change the password",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidCurrentPasswordException,
        ReauthenticationRequiredException,
        *BEARER_ERRORS,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def change_password(
    body: PasswordChange, me: CurrentPrincipal, accounts: AccountServiceDep, response: Response
) -> TokenResponse:
    """Change the password of the signed-in account. Every session ends, this one too;
    the answer carries the tokens of a new session. A wrong current password counts
    towards the account's login throttle."""
    result = await accounts.change_password(
        me.user, body.current_password, body.new_password, auth_time=me.auth_time
    )
    return token_response(result, response)


@router.post(
    "/auth/verify-email",
    tags=["auth"],
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=UserRead,
    summary="Confirm an address with a verification link's token",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidVerificationTokenException,
        UserAlreadyExistsException,
        *DATABASE_ERRORS,
    ),
)
async def verify_email(body: EmailVerify, accounts: AccountServiceDep) -> UserRead:
    """Use a verification token once: the address counts as verified. The token of an
    email change moves the account to its new address (409 if that was taken meanwhile)."""
    return UserRead.model_validate(await accounts.verify_email(body.token))


@router.post(
    "/auth/verify-email/resend",
    tags=["auth"],
    dependencies=[JSONBody],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedResponse,
    summary="Ask for a new verification link",
    responses=error_responses(*BODY_ERRORS, RateLimitedException, *DATABASE_ERRORS),
)
async def resend_verification(
    body: VerificationResend, accounts: AccountServiceDep
) -> AcceptedResponse:
    """Mail a new verification link if the address belongs to an active account that is
    not verified yet; the same answer for every address. Throttled like the reset."""
    await accounts.resend_verification(body.email)
    return AcceptedResponse(detail=RESEND_ANSWER)


@router.put(
    "/users/me/email",
    tags=["users"],
    dependencies=[JSONBody],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedResponse,
    summary="Change the email address",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidCurrentPasswordException,
        ReauthenticationRequiredException,
        *BEARER_ERRORS,
        UserAlreadyExistsException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def change_email(
    body: EmailChange, me: CurrentPrincipal, accounts: AccountServiceDep
) -> AcceptedResponse:
    """Mail a confirmation link to the new address and a notice to the current one; the
    address changes only once the link is used (`POST /auth/verify-email`)."""
    await accounts.request_email_change(
        me.user, body.new_email, body.current_password, auth_time=me.auth_time
    )
    return AcceptedResponse(detail=CHANGE_ANSWER)
