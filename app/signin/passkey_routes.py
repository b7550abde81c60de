"""Passkeys over HTTP: the signed-in user's passkeys, and signing in with one. The method
itself (app.signin.methods.passkey) knows no HTTP; its routes sit with the other sign-in
routes, above the request wiring they depend on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.core.errors import (
    EmailNotVerifiedException,
    InvalidCredentialsException,
    InvalidCurrentPasswordException,
    InvalidPasskeyException,
    InvalidTokenException,
    LastSignInMethodException,
    NotFoundException,
    PasskeysUnavailableException,
    RateLimitedException,
    ReauthenticationRequiredException,
    UserInactiveException,
)
from app.dependencies import (
    CurrentPrincipal,
    CurrentUser,
    JSONBody,
    PasskeysDep,
    SignInDep,
)
from app.models.passkey import Passkey
from app.models.schemas import Reauthenticate, RequestModel, TokenResponse
from app.openapi import BEARER_ERRORS, BODY_ERRORS, DATABASE_ERRORS, error_responses
from app.sessions.responses import no_store, token_response
from app.sessions.tokens import AuthResult
from app.signin.methods.base import Step
from app.signin.methods.passkey.method import PasskeyMethod

router = APIRouter(tags=["passkeys"])

CredentialJSON = Annotated[
    dict[str, Any], Field(description="The browser's PublicKeyCredential.toJSON()")
]
PasskeyName = Annotated[str, Field(min_length=1, max_length=64)]


_PASSKEY_EXAMPLE: JsonDict = {
    "id": 7,
    "name": "Laptop",
    "created_at": "2026-12-07T10:00:00Z",
    "last_used_at": None,
    "backed_up": True,
    "transports": ["internal", "hybrid"],
}
_CHALLENGE = "3q2-7wVqL0cmWm4mI8yJqgYx1pF0bN5d3hPpAxk3u3I"
_CREATION_EXAMPLE = {
    "rp": {"name": "authsvc", "id": "auth.example.com"},
    "user": {
        "id": "Jd0m8u3qk2v9Zp1bY6cW0xH4sT7nL5aQ",
        "name": "ada@example.com",
        "displayName": "ada",
    },
    "challenge": _CHALLENGE,
    "pubKeyCredParams": [{"type": "public-key", "alg": alg} for alg in (-8, -7, -257)],
    "timeout": 300000,
    "excludeCredentials": [],
    "authenticatorSelection": {
        "residentKey": "required",
        "requireResidentKey": True,
        "userVerification": "preferred",
    },
    "attestation": "none",
}
_REQUEST_EXAMPLE = {
    "challenge": _CHALLENGE,
    "timeout": 300000,
    "rpId": "auth.example.com",
    "allowCredentials": [],
    "userVerification": "required",
}


_REAUTH_EXAMPLES: dict[str, Any] = {
    "password": {
        "summary": "With the current password (else a recent sign-in is needed)",
        "value": {"current_password": "correct horse battery staple"},
    }
}


def _options_response(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "WebAuthn options as JSON (WebAuthn Level 3 §5.8.1)",
            "content": {"application/json": {"example": example}},
        }
    }


_CREDENTIAL_EXAMPLE: JsonDict = {
    "id": "hV1mXlX0q3bB2N6nZk0yYw",
    "rawId": "hV1mXlX0q3bB2N6nZk0yYw",
    "type": "public-key",
    "response": {"clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0Ii4uLn0", "...": "..."},
    "clientExtensionResults": {},
}
_MFA_TOKEN_EXAMPLE = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # noqa: S105 - an example


class PasskeyCreate(RequestModel):
    credential: CredentialJSON
    name: PasskeyName | None = None

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"credential": _CREDENTIAL_EXAMPLE, "name": "Laptop"}]}
    )


class PasskeyRename(RequestModel):
    name: PasskeyName

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Work laptop"}]})


class PasskeyLogin(RequestModel):
    credential: CredentialJSON

    model_config = ConfigDict(json_schema_extra={"examples": [{"credential": _CREDENTIAL_EXAMPLE}]})


class MfaTokenBody(RequestModel):
    mfa_token: Annotated[str, Field(min_length=1, max_length=128)]

    model_config = ConfigDict(json_schema_extra={"examples": [{"mfa_token": _MFA_TOKEN_EXAMPLE}]})


class PasskeyResponse(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backed_up: bool
    transports: list[str]

    model_config = ConfigDict(json_schema_extra={"examples": [_PASSKEY_EXAMPLE]})

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyResponse:
        return cls(
            id=passkey.id,
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
            backed_up=passkey.backed_up,
            transports=list(passkey.transports),
        )


@router.post(
    "/users/me/passkeys/registration-options",
    summary="Options to create a passkey",
    responses={
        **_options_response(_CREATION_EXAMPLE),
        **error_responses(
            *BEARER_ERRORS,
            PasskeysUnavailableException,
            InvalidCurrentPasswordException,
            ReauthenticationRequiredException,
            RateLimitedException,
            *DATABASE_ERRORS,
        ),
    },
)
async def registration_options(
    me: CurrentPrincipal,
    passkeys: PasskeysDep,
    response: Response,
    body: Annotated[Reauthenticate | None, Body(openapi_examples=_REAUTH_EXAMPLES)] = None,
) -> dict[str, Any]:
    """`PublicKeyCredentialCreationOptions` for `navigator.credentials.create()`: a
    discoverable credential, user verification preferred, no attestation. Its challenge
    works once, for 5 minutes. Needs `{"current_password"}` or a recent sign-in."""
    options = await passkeys.registration_options(
        me.user, current_password=body.current_password if body else None, auth_time=me.auth_time
    )
    no_store(response)
    return options


@router.post(
    "/users/me/passkeys",
    dependencies=[JSONBody],
    status_code=status.HTTP_201_CREATED,
    response_model=PasskeyResponse,
    summary="Register a passkey",
    responses=error_responses(
        *BODY_ERRORS,
        *BEARER_ERRORS,
        PasskeysUnavailableException,
        InvalidPasskeyException,
        *DATABASE_ERRORS,
    ),
)
async def add_passkey(
    body: PasskeyCreate, user: CurrentUser, passkeys: PasskeysDep
) -> PasskeyResponse:
    """The `credential` the browser created with the registration options. A notice is
    mailed."""
    return PasskeyResponse.of(await passkeys.add(user, body.credential, body.name))


@router.get(
    "/users/me/passkeys",
    response_model=list[PasskeyResponse],
    summary="The user's passkeys",
    responses={
        200: {"content": {"application/json": {"example": [_PASSKEY_EXAMPLE]}}},
        **error_responses(*BEARER_ERRORS, PasskeysUnavailableException, *DATABASE_ERRORS),
    },
)
async def list_passkeys(user: CurrentUser, passkeys: PasskeysDep) -> list[PasskeyResponse]:
    """The signed-in user's passkeys, oldest first."""
    return [PasskeyResponse.of(passkey) for passkey in await passkeys.list(user)]


@router.patch(
    "/users/me/passkeys/{passkey_id:int}",
    dependencies=[JSONBody],
    response_model=PasskeyResponse,
    summary="Rename a passkey",
    responses=error_responses(
        *BODY_ERRORS,
        *BEARER_ERRORS,
        PasskeysUnavailableException,
        NotFoundException,
        *DATABASE_ERRORS,
    ),
)
async def rename_passkey(
    passkey_id: int, body: PasskeyRename, user: CurrentUser, passkeys: PasskeysDep
) -> PasskeyResponse:
    """A new name for one of the user's passkeys (404 for any other)."""
    return PasskeyResponse.of(await passkeys.rename(user, passkey_id, body.name))


@router.delete(
    "/users/me/passkeys/{passkey_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Remove a passkey",
    responses=error_responses(
        *BEARER_ERRORS,
        PasskeysUnavailableException,
        NotFoundException,
        InvalidCurrentPasswordException,
        ReauthenticationRequiredException,
        LastSignInMethodException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def remove_passkey(
    passkey_id: int,
    me: CurrentPrincipal,
    passkeys: PasskeysDep,
    body: Annotated[Reauthenticate | None, Body(openapi_examples=_REAUTH_EXAMPLES)] = None,
) -> Response:
    """Needs `{"current_password"}` or a recent sign-in. The last way to sign in (the only
    passkey of an account without a password) is 409 `LAST_SIGN_IN_METHOD`. A notice is
    mailed."""
    await passkeys.remove(
        me.user,
        passkey_id,
        current_password=body.current_password if body else None,
        auth_time=me.auth_time,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/passkey/options",
    summary="Options to sign in with a passkey",
    tags=["auth"],
    responses={
        **_options_response(_REQUEST_EXAMPLE),
        **error_responses(PasskeysUnavailableException, RateLimitedException, *DATABASE_ERRORS),
    },
)
async def signin_options(passkeys: PasskeysDep, response: Response) -> dict[str, Any]:
    """`PublicKeyCredentialRequestOptions` for a discoverable passkey: user verification
    required, no `allowCredentials`. Its challenge works once, for 5 minutes. Throttled per
    client address (`RATE_LIMIT_PASSKEY_OPTIONS_IP`)."""
    no_store(response)
    return await passkeys.signin_options()


@router.post(
    "/auth/passkey",
    dependencies=[JSONBody],
    response_model=TokenResponse,
    summary="Sign in with a passkey",
    tags=["auth"],
    responses=error_responses(
        *BODY_ERRORS,
        PasskeysUnavailableException,
        InvalidCredentialsException,
        UserInactiveException,
        EmailNotVerifiedException,
        RateLimitedException,
        *DATABASE_ERRORS,
    ),
)
async def signin_with_passkey(
    body: PasskeyLogin, passkeys: PasskeysDep, signin: SignInDep, response: Response
) -> TokenResponse:
    """The assertion answering `/auth/passkey/options`, with user verification: a complete
    sign-in (`amr` `["hwk", "mfa"]`, no second step). Any refusal is 401
    `INVALID_CREDENTIALS`, throttled per client address."""
    passkeys.require_available()
    method = PasskeyMethod(signin.methods, step=Step.FIRST_FACTOR)
    done = await signin.sign_in_alone(
        method, {"credential": body.credential}, start=signin.tokens.start
    )
    return token_response(AuthResult(done.user, done.session), response)


@router.post(
    "/auth/login/mfa/passkey-options",
    dependencies=[JSONBody],
    summary="Options for a passkey as the second factor",
    tags=["auth"],
    responses={
        **_options_response(
            {
                **_REQUEST_EXAMPLE,
                "userVerification": "preferred",
                "allowCredentials": [
                    {
                        "type": "public-key",
                        "id": "hV1mXlX0q3bB2N6nZk0yYw",
                        "transports": ["internal"],
                    }
                ],
            }
        ),
        **error_responses(
            *BODY_ERRORS,
            PasskeysUnavailableException,
            InvalidTokenException,
            RateLimitedException,
            *DATABASE_ERRORS,
        ),
    },
)
async def second_factor_options(
    body: MfaTokenBody, passkeys: PasskeysDep, signin: SignInDep, response: Response
) -> dict[str, Any]:
    """Request options listing the user's passkeys, for the `mfa_token` of a 202 whose
    `methods` has `passkey`; send the assertion as `credential` to `/auth/login/mfa`."""
    passkeys.require_available()
    user_id = await signin.second_step_user(body.mfa_token, PasskeyMethod.id)
    no_store(response)
    return await passkeys.second_factor_options(user_id)
