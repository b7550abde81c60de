"""Sign-in with other providers over HTTP: the pages (`/login/{name}` leaves for the
provider, `/login/{name}/callback` comes back; "Link" and "Unlink" on the account page)
and the JSON API of the linked identities (`/users/me/identities`).

The browser that starts a sign-in is named by the hosted pages' browser id (the anti-CSRF
pre-session cookie, HttpOnly, random); the callback is accepted only in that browser.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response, status
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.core.errors import (
    AppException,
    InvalidCurrentPasswordException,
    LastSignInMethodException,
    NotFoundException,
    RateLimitedException,
    ReauthenticationRequiredException,
)
from app.dependencies import (
    CurrentPrincipal,
    SelfServiceDep,
    SessionDep,
    TwoFactorDep,
    UpstreamSignInDep,
)
from app.models.schemas import IdentityList, IdentityRead, IdentityUnlink
from app.openapi import BEARER_ERRORS, BODY_ERRORS, error_responses
from app.pages.guards import safe_return_to
from app.pages.rendering import Page
from app.pages.routes import (
    PageDep,
    account_action,
    account_form,
    account_refused,
    current_password,
    error_of,
    second_step,
    signed_in_response,
)
from app.sessions.browser import BrowserSession
from app.signin.upstream import (
    Linked,
    LinkOffered,
    ProviderUnavailable,
    Refused,
    SecondStep,
    SignedIn,
)

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/users", tags=["users"])

_UNKNOWN = "There is no such sign-in provider here."


def _unavailable(page: Page, failure: ProviderUnavailable) -> Response:
    headers = {"Retry-After": str(max(1, int(failure.retry_after + 0.999)))}
    return page.render(
        "message.html",
        title="Sign-in unavailable",
        status_code=503,
        headers=headers,
        error=f"{failure.provider.display_name} is not answering right now. Try again in a "
        "moment, or sign in another way.",
    )


def _browser_id(page: Page) -> tuple[str, bool]:
    """The browser's id, and whether it is new (its cookie still to be set)."""
    found = page.csrf.browser_id(page.request)
    if found is not None:
        return found, False
    return page.csrf.new_browser_id(), True


def _leave_for(page: Page, location: str, browser_id: str, new: bool) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303)
    if new:
        page.csrf.set_cookie(response, browser_id)
    return response


@pages.get("/login/{name}")
async def leave_for_provider(
    name: str, page: PageDep, upstream: UpstreamSignInDep, return_to: str | None = None
) -> Response:
    """ "Continue with {provider}": off to the provider, with a new state of this browser."""
    provider = upstream.provider(name)
    if provider is None:
        return page.render("message.html", title="Not found", status_code=404, error=_UNKNOWN)
    browser_id, new = _browser_id(page)
    try:
        location = await upstream.begin(
            provider, browser_id=browser_id, return_to=safe_return_to(return_to)
        )
    except ProviderUnavailable as failure:
        return _unavailable(page, failure)
    except AppException as error:
        message, status_code, headers = error_of(error)
        return page.render(
            "message.html",
            title=f"Sign-in with {provider.display_name}",
            status_code=status_code,
            headers=headers,
            error=message,
        )
    return _leave_for(page, location, browser_id, new)


@pages.get("/login/{name}/callback")
async def provider_callback(
    name: str, request: Request, page: PageDep, upstream: UpstreamSignInDep, db: SessionDep
) -> Response:
    provider = upstream.provider(name)
    if provider is None:
        return page.render("message.html", title="Not found", status_code=404, error=_UNKNOWN)
    params = {key: value[:2048] for key, value in request.query_params.items()}
    try:
        outcome = await upstream.finish(
            provider,
            params=params,
            browser_id=page.csrf.browser_id(request),
            signed_in=page.browser.user if page.browser is not None else None,
        )
    except ProviderUnavailable as failure:
        await _roll_back(page, db)
        return _unavailable(page, failure)
    except AppException as error:
        await _roll_back(page, db)
        return page.render(
            "message.html",
            title="Sign-in failed",
            status_code=error.status_code,
            error=error.detail,
        )
    if isinstance(outcome, Refused):
        return page.render(
            "message.html",
            title=f"Sign-in with {provider.display_name}",
            status_code=outcome.status_code,
            error=outcome.message,
        )
    if isinstance(outcome, SecondStep):
        return second_step(page, outcome.flow.token, outcome.flow.offered)
    if isinstance(outcome, SignedIn):
        return await signed_in_response(
            page, upstream.browser, outcome.done.session, safe_return_to(outcome.done.continue_ref)
        )
    if isinstance(outcome, LinkOffered):
        return page.render(
            "login.html",
            title="Sign in to link your account",
            status_code=200,
            notice=f"An account with the address {outcome.email} exists already. Sign in to "
            f"it here; your {outcome.provider.display_name} account is then linked to it, "
            f"and {outcome.provider.display_name} signs you in from then on.",
            identifier=outcome.email,
            return_to=safe_return_to(outcome.return_to),
        )
    assert isinstance(outcome, Linked)
    return RedirectResponse("/account?done=linked", status_code=303)


async def _roll_back(page: Page, db: AsyncSession) -> None:
    await db.rollback()
    if page.browser is not None:
        await db.refresh(page.browser.user)


@pages.post("/account/providers/{name}/link")
async def link_provider(
    name: str,
    page: PageDep,
    upstream: UpstreamSignInDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    """ "Link": the person is there now (password or a recent sign-in), then off to the
    provider; the callback links what comes back to this account."""
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    provider = upstream.provider(name)
    if provider is None:
        return page.render("message.html", title="Not found", status_code=404, error=_UNKNOWN)
    browser_id, new = _browser_id(page)
    try:
        location = await upstream.start_link(
            provider,
            page.browser.user,
            browser_id=browser_id,
            current_password=current_password(form),
            auth_time=page.browser.auth_time,
        )
    except ProviderUnavailable as failure:
        await _roll_back(page, db)
        return _unavailable(page, failure)
    except AppException as error:
        return await account_refused(page, db, self_service, two_factor, error)
    return _leave_for(page, location, browser_id, new)


@pages.post("/account/identities/{identity_id}/unlink")
async def unlink_provider(
    identity_id: str,
    page: PageDep,
    upstream: UpstreamSignInDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    async def act(form: FormData, browser: BrowserSession) -> None:
        await upstream.unlink(
            browser.user,
            identity_id,
            current_password=current_password(form),
            auth_time=browser.auth_time,
        )

    return await account_action(page, db, self_service, two_factor, act, done="unlinked")


# --- JSON ----------------------------------------------------------------------------


@api.get(
    "/me/identities",
    response_model=IdentityList,
    summary="Linked providers",
    responses=error_responses(*BEARER_ERRORS),
)
async def list_identities(me: CurrentPrincipal, upstream: UpstreamSignInDep) -> IdentityList:
    """The other providers that sign this account in."""
    return IdentityList([IdentityRead.model_validate(i) for i in await upstream.list(me.user)])


@api.delete(
    "/me/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Unlink a provider",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidCurrentPasswordException,
        ReauthenticationRequiredException,
        *BEARER_ERRORS,
        NotFoundException,
        LastSignInMethodException,
        RateLimitedException,
    ),
)
async def unlink_identity(
    identity_id: Annotated[str, Path(max_length=64, description="The `id` of a linked provider")],
    me: CurrentPrincipal,
    upstream: UpstreamSignInDep,
    body: Annotated[
        IdentityUnlink | None,
        Body(
            openapi_examples={
                "password": {"value": {"current_password": "correct horse battery staple"}},
                "recent sign-in": {"value": {}},
            }
        ),
    ] = None,
) -> Response:
    """Unlink a provider: with `current_password` where the account has one, or within
    REAUTH_MAX_AGE_SECONDS of a sign-in. The last way into an account without a password
    cannot go (409 LAST_SIGN_IN_METHOD). A notice is mailed."""
    await upstream.unlink(
        me.user,
        identity_id,
        current_password=body.current_password if body is not None else None,
        auth_time=me.auth_time,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
