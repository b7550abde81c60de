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
from app.dependencies import OpenIdProviderDep, SessionDep, SessionTokensDep, SignInDep
from app.models.schemas import AuthorizationCodeGrant, OAuth2TokenResponse, PasswordGrant
from app.oauth2.clients import ClientService
from app.oauth2.token_request import (
    TOKEN_REQUEST_BODY,
    Client,
    PresentedClient,
    TokenForm,
    oauth2_errors,
)
from app.oidc.service import token_client
from app.openapi import DATABASE_ERRORS, error_responses
from app.sessions.responses import token_response
from app.signin.flow import PendingFlow

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    status_code=status.HTTP_200_OK,
    response_model=OAuth2TokenResponse,
    summary="OAuth2 token endpoint (authorization_code, refresh_token and password grants)",
    response_model_exclude_none=True,
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
    form: TokenForm,
    signin: SignInDep,
    tokens: SessionTokensDep,
    response: Response,
    client: Client,
    presented: PresentedClient,
    session: SessionDep,
    provider: OpenIdProviderDep,
) -> OAuth2TokenResponse:
    """RFC 6749 token endpoint, form-encoded: `grant_type=authorization_code` with `code`,
    `redirect_uri` and `code_verifier` (§4.1.3, RFC 7636; the answer adds `id_token` and
    `scope`), `grant_type=password` with `username` (email
    or username) and `password` (§4.3), or `grant_type=refresh_token` with `refresh_token`
    (§6). This is what the Authorize button of this page and OAuth2 client libraries use.
    A public client sends no secret (empty HTTP Basic credentials are accepted); a
    registered client may authenticate with HTTP Basic or `client_id` and `client_secret`
    in the form, and wrong credentials are 401 `invalid_client`.
    Errors have the OAuth2 shape (§5.2) plus `request_id`; throttling and outages keep the
    service's usual error body. With two-factor on, a right password is 400 `mfa_required`
    with an `mfa_token`: finish at `POST /auth/login/mfa`."""
    if isinstance(form, AuthorizationCodeGrant):
        application = client or await token_client(ClientService(session), presented)
        issued = await provider.exchange(
            code=form.code,
            redirect_uri=form.redirect_uri,
            code_verifier=form.code_verifier,
            client=application,
        )
        answer = token_response(issued.result, response, OAuth2TokenResponse)
        return answer.model_copy(
            update={"token_type": "Bearer", "id_token": issued.id_token, "scope": issued.scope}
        )
    with oauth2_errors():
        if isinstance(form, PasswordGrant):
            outcome = await signin.login(form.username, form.password)
            if isinstance(outcome, PendingFlow):
                raise MfaRequiredException(outcome.token)
            result = outcome
        else:
            # An application's refresh token needs its client (and its authentication).
            named = client.client_id if client is not None else None
            if named is None and presented is not None and presented.secret is None:
                public = await ClientService(session).get(presented.client_id)
                named = public.client_id if public is not None and public.public else None
            if named is not None:  # perhaps an application's: its new ID token's keys
                await provider.id_tokens.prepare()
            result = await tokens.refresh(form.refresh_token, client_id=named)
    answer = token_response(result, response, OAuth2TokenResponse)
    if isinstance(result.session.get("client_id"), str):
        id_token = await provider.refreshed_id_token(result)
        scope = result.session.get("scope")
        answer = answer.model_copy(
            update={
                "token_type": "Bearer",
                "id_token": id_token,
                "scope": scope if isinstance(scope, str) else None,
            }
        )
    return answer
