"""`POST /auth/register`."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from app.core.errors import RateLimitedException, UserAlreadyExistsException
from app.dependencies import JSONBody, RegistrationDep, SettingsDep
from app.models.schemas import RegistrationPending, TokenResponse, UserRead, UserRegister
from app.openapi import BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.sessions.responses import token_response

router = APIRouter(prefix="/auth", tags=["auth"])
REGISTRATION_PENDING = "Account created; confirm the address with the link mailed to it"


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
    body: UserRegister, registration: RegistrationDep, settings: SettingsDep, response: Response
) -> TokenResponse | JSONResponse:
    """Create an account and sign it in: the answer carries its first access and refresh
    tokens. The password must be 8-128 characters, not a commonly used password and not
    essentially the username or email; the error names the rule it breaks. A link to
    confirm the address is mailed; with `EMAIL_VERIFICATION_REQUIRED` the answer is 202
    without tokens, and signing in waits for that confirmation."""
    if settings.email_verification_required:
        user = await registration.create_account(
            email=body.email, username=body.username, password=body.password
        )
        pending = RegistrationPending(
            detail=REGISTRATION_PENDING, user=UserRead.model_validate(user)
        )
        return JSONResponse(pending.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    result = await registration.register(
        email=body.email, username=body.username, password=body.password
    )
    return token_response(result, response)
