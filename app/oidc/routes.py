"""The OpenID Provider's endpoints: the authorization endpoint (and where the sign-in page
returns to), the consent page, userinfo, and end session. Discovery is with the other
`/.well-known` documents (app.keys.routes), the code exchange at the token endpoint
(app.oauth2.token_endpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from app.core.errors import ForbiddenException, InvalidTokenException
from app.core.jwt import TokenType
from app.dependencies import (
    BrowserSessionsDep,
    CurrentBrowserSession,
    OpenIdProviderDep,
    SessionDep,
    SessionTokensDep,
)
from app.middleware.exception import error_response
from app.middleware.security import allow_form_action
from app.oauth2.clients import ClientService
from app.oauth2.schemas import UserInfo
from app.oidc.authorization import (
    CONSENT_PATH,
    RESUME_PATH,
    AuthorizationStore,
    RedirectError,
    UnsafeRedirect,
    check_request,
    form_action_origin,
)
from app.oidc.id_tokens import user_claims
from app.oidc.service import (
    Outcome,
    ToApplication,
    ToConsent,
    ToSignIn,
    end_browser_session,
    post_logout_target,
)
from app.openapi import DATABASE_ERRORS, error_responses
from app.pages.rendering import Page
from app.sessions.browser import BrowserSession
from app.sessions.tokens import session_of, verified_claims

router = APIRouter(tags=["auth"])

SCOPE_TEXT = {
    "openid": "Know who you are (your account's id)",
    "profile": "See your username",
    "email": "See your email address and whether it is verified",
}
_EXPIRED = "This request has expired. Start again from the application."
# The end session's parameters a confirmation form carries on.
_LOGOUT_FIELDS = ("post_logout_redirect_uri", "state", "client_id")


def _page(request: Request, browser: BrowserSession | None) -> Page:
    return Page(request, request.app.state.pages_csrf, browser)


def _error_page(request: Request, browser: BrowserSession | None, detail: str) -> Response:
    return _page(request, browser).render(
        "authorize_error.html",
        title="This sign-in link is not valid",
        status_code=400,
        error=detail,
    )


def _to_application(request: Request, url: str) -> Response:
    # The page whose form led here (sign-in, consent, sign-out) must allow the
    # application's origin in form-action: Chrome checks it on each redirect after a POST.
    allow_form_action(request.scope, form_action_origin(url))
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


def _answer(request: Request, outcome: Outcome) -> Response:
    if isinstance(outcome, ToApplication):
        return _to_application(request, outcome.url)
    token = quote(outcome.pending.token)
    if isinstance(outcome, ToConsent):
        return RedirectResponse(f"{CONSENT_PATH}?request={token}", status_code=302)
    assert isinstance(outcome, ToSignIn)
    query = {"return_to": f"{RESUME_PATH}?request={token}"}
    if outcome.pending.request.login_hint:
        query["login_hint"] = outcome.pending.request.login_hint
    return RedirectResponse(f"/login?{urlencode(query)}", status_code=302)


async def _params(request: Request) -> dict[str, list[str]]:
    """Every value of every parameter, of the query (GET) or the form (POST)."""
    if request.method == "POST":
        form = await request.form()
        return {key: [str(v) for v in form.getlist(key)] for key in form}
    return parse_qs(request.url.query)


@router.api_route("/oauth2/authorize", methods=["GET", "POST"], include_in_schema=False)
async def authorize(
    request: Request,
    session: SessionDep,
    browser: CurrentBrowserSession,
    provider: OpenIdProviderDep,
) -> Response:
    """The authorization endpoint (OIDC Core §3.1.2): a code, the sign-in page, the consent
    page, or an error at the redirect URI; an error page when the client or its redirect
    URI is unknown (RFC 6749 §4.1.2.1: never a redirect then)."""
    try:
        checked = await check_request(session, await _params(request))
    except UnsafeRedirect as error:
        return _error_page(request, browser, error.detail)
    except RedirectError as error:
        return _to_application(request, provider.error_url(error))
    return _answer(request, await provider.authorize(checked, browser))


@router.get(RESUME_PATH, include_in_schema=False)
async def resume(
    request: Request, browser: CurrentBrowserSession, provider: OpenIdProviderDep
) -> Response:
    """Where the sign-in page returns to: the kept request, answered for the browser
    session there is now."""
    outcome = await provider.resume(request.query_params.get("request", ""), browser)
    if outcome is None:
        return _error_page(request, browser, _EXPIRED)
    return _answer(request, outcome)


@router.get(CONSENT_PATH, include_in_schema=False)
async def consent_page(
    request: Request, session: SessionDep, browser: CurrentBrowserSession
) -> Response:
    """ "Allow" or "Deny": names the application and what it asks for."""
    token = request.query_params.get("request", "")
    pending = await AuthorizationStore(session).pending(token, request.app.state.wall_clock())
    if pending is None:
        return _error_page(request, browser, _EXPIRED)
    if browser is None:
        return_to = f"{CONSENT_PATH}?request={quote(token)}"
        return RedirectResponse(f"/login?{urlencode({'return_to': return_to})}", status_code=302)
    # Both buttons lead (through a redirect) to the application.
    allow_form_action(request.scope, form_action_origin(pending.request.redirect_uri))
    return _page(request, browser).render(
        "consent.html",
        title=f"Allow {pending.request.client.name}?",
        client_name=pending.request.client.name,
        scopes=[SCOPE_TEXT[s] for s in pending.request.scopes if s in SCOPE_TEXT],
        request_token=token,
    )


@router.post(CONSENT_PATH, include_in_schema=False)
async def consent(
    request: Request, browser: CurrentBrowserSession, provider: OpenIdProviderDep
) -> Response:
    form = await request.form()
    page = _page(request, browser)
    decision = form.get("decision")
    if browser is None or not page.csrf_ok(form) or decision not in ("allow", "deny"):
        return page.forbidden()
    token = form.get("request")
    outcome = await provider.decide_consent(
        token if isinstance(token, str) else "", browser, allow=decision == "allow"
    )
    if outcome is None:
        return _error_page(request, browser, _EXPIRED)
    return _to_application(request, outcome.url)


# --- userinfo ------------------------------------------------------------------------


def _bearer_error(status_code: int, error: str, description: str) -> JSONResponse:
    """RFC 6750 §3: the contract's error body with the challenge naming the error."""
    code = InvalidTokenException.error_code if status_code == 401 else ForbiddenException.error_code
    return error_response(
        status_code,
        detail=description,
        error_code=code,
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'},
    )


async def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        # RFC 6750 §2.2: the form-encoded body parameter.
        value = (await request.form()).get("access_token")
        return value if isinstance(value, str) and value else None
    return None


_USERINFO: dict[str, Any] = {
    "response_model": UserInfo,
    "response_model_exclude_none": True,
    "responses": error_responses(InvalidTokenException, ForbiddenException, *DATABASE_ERRORS),
}


@router.get("/oauth2/userinfo", summary="UserInfo (OpenID Connect Core §5.3)", **_USERINFO)
async def userinfo(request: Request, tokens: SessionTokensDep) -> Response:
    """The signed-in person's claims for an access token with the `openid` scope
    (`Authorization: Bearer`): `sub`, and `email`, `email_verified` (scope `email`),
    `preferred_username`, `updated_at` (scope `profile`). No or a bad token: 401 with
    `WWW-Authenticate: Bearer error="invalid_token"`; a token without `openid`: 403
    `error="insufficient_scope"`."""
    return await _userinfo(request, tokens)


@router.post("/oauth2/userinfo", summary="UserInfo by POST", **_USERINFO)
async def userinfo_in_form(request: Request, tokens: SessionTokensDep) -> Response:
    """As the GET; the token also in the form-encoded body's `access_token` (RFC 6750
    §2.2)."""
    return await _userinfo(request, tokens)


async def _userinfo(request: Request, tokens: SessionTokensDep) -> Response:
    token = await _bearer_token(request)
    if token is None:
        return _bearer_error(401, "invalid_token", "An access token is required")
    try:
        claims = await verified_claims(tokens.codec, tokens.metrics, token, TokenType.ACCESS)
        user_id, sid = session_of(tokens.metrics, claims)
    except InvalidTokenException:
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    user = await tokens.sessions.user_of(sid=sid, user_id=user_id)
    if user is None or not user.is_active:
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    scope = claims.extra.get("scope")
    scopes = scope.split() if isinstance(scope, str) else []
    if "openid" not in scopes:
        return _bearer_error(403, "insufficient_scope", "The token lacks the openid scope")
    return JSONResponse(user_claims(user, scopes), headers={"Cache-Control": "no-store"})


# --- end session (RP-Initiated Logout 1.0) -------------------------------------------


def _audience(claims: Mapping[str, object]) -> str | None:
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None


@router.api_route("/oauth2/logout", methods=["GET", "POST"], include_in_schema=False)
async def end_session(
    request: Request,
    session: SessionDep,
    browser: CurrentBrowserSession,
    browsers: BrowserSessionsDep,
    provider: OpenIdProviderDep,
) -> Response:
    """Ends the browser session and every token of it, then goes to a registered
    `post_logout_redirect_uri` (with `state`) or says "You are signed out". Without a valid
    `id_token_hint` the person confirms first: a link alone signs nobody out."""
    first = {key: values[0] for key, values in (await _params(request)).items() if values}
    page = _page(request, browser)
    confirmed = request.method == "POST" and first.get("confirm") == "yes"
    if confirmed and not page.csrf_ok(first):
        return page.forbidden()
    raw_hint = first.get("id_token_hint")
    hint = await provider.id_tokens.read_hint(raw_hint) if raw_hint else None
    client_id = first.get("client_id")
    if hint is not None:
        audience = _audience(hint)
        if client_id is not None and client_id != audience:
            hint = None  # a hint of another application names nothing here
        else:
            client_id = audience
    client = await ClientService(session).get(client_id) if client_id else None
    target = post_logout_target(client, first.get("post_logout_redirect_uri"), first.get("state"))
    if hint is None and not confirmed and browser is not None:
        if target is not None:
            allow_form_action(request.scope, form_action_origin(target))
        return page.render(
            "end_session.html",
            title="Sign out",
            client_name=client.name if client is not None else None,
            fields={k: v for k, v in first.items() if k in _LOGOUT_FIELDS},
        )
    if hint is not None:
        sid, sub = hint.get("sid"), hint.get("sub")
        if isinstance(sid, str) and isinstance(sub, str) and sub.isdigit():
            await end_browser_session(
                browsers.sessions, provider.audit, session_id=sid, user_id=int(sub)
            )
    if browser is not None and (hint is None or str(browser.user.id) == hint.get("sub")):
        await end_browser_session(
            browsers.sessions,
            provider.audit,
            session_id=browser.session_id,
            user_id=browser.user.id,
        )
    if target is not None:
        response = _to_application(request, target)
    else:
        page.browser = None
        response = page.render(
            "end_session.html", title="You are signed out", client_name=None, fields=None
        )
    browsers.cookie.clear(response)
    return response
