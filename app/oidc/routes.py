"""The OpenID Provider's endpoints: discovery, the authorization endpoint and its consent
page, userinfo, and end session. The code exchange is at the token endpoint
(app.oauth2.token_endpoint)."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import FormData

from app.core.errors import InvalidTokenException, NotAuthenticatedException
from app.core.jwt import TokenType
from app.dependencies import (
    BrowserSessionsDep,
    CurrentBrowserSession,
    OpenIdProviderDep,
    SessionDep,
    SessionTokensDep,
    SettingsDep,
)
from app.middleware.security import allow_form_action
from app.oauth2.clients import ClientService, origin_of
from app.oidc.authorization import (
    RESUME_PATH,
    AuthorizationStore,
    RedirectError,
    SignedIn,
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
from app.pages.rendering import Page
from app.sessions.browser import BrowserSession
from app.sessions.tokens import session_of, verified_claims

router = APIRouter(tags=["openid"])

SCOPE_TEXT = {
    "openid": "Know who you are (your account's id)",
    "profile": "See your username",
    "email": "See your email address and whether it is verified",
}


def _signed_in(browser: BrowserSession | None) -> SignedIn | None:
    if browser is None:
        return None
    return SignedIn(browser.user, browser.session_id, browser.auth_time, tuple(browser.amr))


def _page(request: Request, browser: BrowserSession | None) -> Page:
    return Page(request, request.app.state.pages_csrf, browser)


def _error_page(request: Request, browser: BrowserSession | None, detail: str) -> Response:
    return _page(request, browser).render(
        "authorize_error.html",
        title="This sign-in link is not valid",
        status_code=400,
        error=detail,
    )


def _to_application(request: Request, outcome: ToApplication) -> Response:
    origin = form_action_origin(outcome.url)
    # The page whose form led here (sign-in, consent) must allow the application's origin
    # in form-action: Chrome checks it on each redirect after a form POST.
    allow_form_action(request.scope, origin)
    return RedirectResponse(outcome.url, status_code=status.HTTP_302_FOUND)


def _answer(request: Request, outcome: Outcome) -> Response:
    if isinstance(outcome, ToApplication):
        return _to_application(request, outcome)
    if isinstance(outcome, ToSignIn):
        return_to = f"{RESUME_PATH}?request={outcome.pending.token}"
        query = {"return_to": return_to}
        if outcome.pending.request.login_hint:
            query["login_hint"] = outcome.pending.request.login_hint
        return RedirectResponse(f"/login?{urlencode(query)}", status_code=status.HTTP_302_FOUND)
    assert isinstance(outcome, ToConsent)
    return RedirectResponse(
        f"/consent?request={quote(outcome.pending.token)}", status_code=status.HTTP_302_FOUND
    )


async def _params(request: Request) -> dict[str, list[str]]:
    if request.method == "POST":
        form = await request.form()
        return {key: [str(v) for v in form.getlist(key)] for key in form}
    return parse_qs(request.url.query, keep_blank_values=False)


@router.api_route("/oauth2/authorize", methods=["GET", "POST"], include_in_schema=False)
async def authorize(
    request: Request,
    session: SessionDep,
    browser: CurrentBrowserSession,
    provider: OpenIdProviderDep,
) -> Response:
    """The authorization endpoint (OIDC Core §3.1.2): a code, the sign-in page, the consent
    page, or an error at the redirect URI; an error page when the client or its redirect
    URI is unknown."""
    try:
        checked = await check_request(session, await _params(request))
    except UnsafeRedirect as error:
        return _error_page(request, browser, error.detail)
    except RedirectError as error:
        return _to_application(request, ToApplication(provider.error_url(error)))
    return _answer(request, await provider.authorize(checked, _signed_in(browser)))


@router.get(RESUME_PATH, include_in_schema=False)
async def resume(
    request: Request,
    browser: CurrentBrowserSession,
    provider: OpenIdProviderDep,
    request_token: str = "",
) -> Response:
    """Where the sign-in page returns to: the kept request, answered for the browser
    session that now exists."""
    token = request.query_params.get("request", request_token)
    outcome = await provider.resume(token, _signed_in(browser))
    if outcome is None:
        return _error_page(
            request, browser, "This sign-in request has expired. Start again from the application."
        )
    return _answer(request, outcome)


@router.get("/consent", include_in_schema=False)
async def consent_page(
    request: Request, session: SessionDep, browser: CurrentBrowserSession, settings: SettingsDep
) -> Response:
    token = request.query_params.get("request", "")
    pending = await AuthorizationStore(session).pending(token, request.app.state.wall_clock())
    if pending is None:
        return _error_page(
            request, browser, "This request has expired. Start again from the application."
        )
    if browser is None:
        return_to = f"/consent?request={token}"
        return RedirectResponse(f"/login?{urlencode({'return_to': return_to})}", status_code=302)
    client = pending.request.client
    # Both buttons lead (through a redirect) to the application.
    origin = (
        origin_of(pending.request.redirect_uri) or pending.request.redirect_uri.split(":")[0] + ":"
    )
    allow_form_action(request.scope, origin)
    return _page(request, browser).render(
        "consent.html",
        title=f"Allow {client.name}?",
        client_name=client.name,
        scopes=[SCOPE_TEXT[s] for s in pending.request.scopes if s in SCOPE_TEXT],
        request_token=token,
    )


@router.post("/consent", include_in_schema=False)
async def consent(
    request: Request, browser: CurrentBrowserSession, provider: OpenIdProviderDep
) -> Response:
    form = await request.form()
    page = _page(request, browser)
    if not page.csrf_ok(form) or browser is None:
        return page.forbidden()
    token = _field(form, "request")
    decision = _field(form, "decision")
    if decision not in ("allow", "deny"):
        return page.forbidden()
    outcome = await provider.decide_consent(
        token, _signed_in(browser) or _never(), allow=decision == "allow"
    )
    if outcome is None:
        return _error_page(
            request, browser, "This request has expired. Start again from the application."
        )
    return _to_application(request, outcome)


def _never() -> SignedIn:
    raise AssertionError("unreachable")


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:256] if isinstance(value, str) else ""


# --- userinfo ------------------------------------------------------------------------


def _bearer_error(status_code: int, error: str, description: str) -> JSONResponse:
    from app.middleware.exception import error_response

    code = "INVALID_TOKEN" if status_code == 401 else "FORBIDDEN"
    challenge = f'Bearer error="{error}", error_description="{description}"'
    if error == "":
        challenge = "Bearer"
    response = error_response(
        status_code, detail=description, error_code=code, headers={"WWW-Authenticate": challenge}
    )
    return response


async def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    if request.method == "POST":
        # RFC 6750 §2.2: the form-encoded body parameter.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            value = (await request.form()).get("access_token")
            return value if isinstance(value, str) and value else None
    return None


@router.api_route(
    "/oauth2/userinfo",
    methods=["GET", "POST"],
    summary="UserInfo (OpenID Connect Core §5.3)",
    responses={
        200: {"description": "`sub` and the claims the token's scopes allow"},
        401: {"description": 'No or a bad token: `WWW-Authenticate: Bearer error="invalid_token"`'},
        403: {"description": 'A token without the openid scope: `error="insufficient_scope"`'},
    },
)
async def userinfo(request: Request, tokens: SessionTokensDep) -> Response:
    """The signed-in person's claims for an access token with the `openid` scope, in the
    header (`Authorization: Bearer`) or, with POST, the form's `access_token`."""
    token = await _bearer_token(request)
    if token is None:
        return _bearer_error(401, "invalid_token", "An access token is required")
    try:
        claims = await verified_claims(tokens.codec, tokens.metrics, token, TokenType.ACCESS)
        user_id, sid = session_of(tokens.metrics, claims)
        user = await tokens.sessions.user_of(sid=sid, user_id=user_id)
    except (InvalidTokenException, NotAuthenticatedException):
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    if user is None or not user.is_active:
        return _bearer_error(401, "invalid_token", "The access token is invalid or expired")
    scope = claims.extra.get("scope")
    scopes = scope.split() if isinstance(scope, str) else []
    if "openid" not in scopes:
        return _bearer_error(403, "insufficient_scope", "The token lacks the openid scope")
    return JSONResponse(user_claims(user, scopes), headers={"Cache-Control": "no-store"})


# --- end session (RP-Initiated Logout 1.0) -------------------------------------------


@router.api_route("/oauth2/logout", methods=["GET", "POST"], include_in_schema=False)
async def end_session(
    request: Request,
    session: SessionDep,
    browser: CurrentBrowserSession,
    browsers: BrowserSessionsDep,
    provider: OpenIdProviderDep,
) -> Response:
    params = await _params(request)
    first = {key: values[0] for key, values in params.items() if values}
    page = _page(request, browser)
    confirmed = request.method == "POST" and first.get("confirm") == "yes"
    if confirmed and not page.csrf_ok(first):
        return page.forbidden()
    hint = (
        await provider.id_tokens.read_hint(first.get("id_token_hint", ""))
        if first.get("id_token_hint")
        else None
    )
    client_id = first.get("client_id")
    if hint is not None:
        aud = hint.get("aud")
        audience = (
            aud if isinstance(aud, str) else (aud[0] if isinstance(aud, list) and aud else None)
        )
        if client_id is not None and client_id != audience:
            hint = None
        else:
            client_id = audience
    clients = ClientService(session)
    client = await clients.get(client_id) if client_id else None
    target = post_logout_target(client, first.get("post_logout_redirect_uri"), first.get("state"))
    if hint is None and not confirmed:
        # No proof that the application asks: the person confirms (a link alone must not
        # sign anybody out).
        if browser is None:
            return _signed_out(request, page, target)
        return page.render(
            "end_session.html",
            title="Sign out",
            client_name=client.name if client is not None else None,
            fields={
                k: v
                for k, v in first.items()
                if k in ("post_logout_redirect_uri", "state", "client_id")
            },
        )
    ended_any = False
    if hint is not None:
        sid, sub = hint.get("sid"), hint.get("sub")
        if isinstance(sid, str) and isinstance(sub, str) and sub.isdigit():
            ended_any = await end_browser_session(
                browsers.sessions,
                provider.audit,
                session_id=sid,
                user_id=int(sub),
                via="end_session",
            )
    if browser is not None and (hint is None or str(browser.user.id) == hint.get("sub")):
        ended_any = (
            await end_browser_session(
                browsers.sessions,
                provider.audit,
                session_id=browser.session_id,
                user_id=browser.user.id,
                via="end_session",
            )
            or ended_any
        )
    response = _signed_out(request, page, target)
    browsers.cookie.clear(response)
    return response


def _signed_out(request: Request, page: Page, target: str | None) -> Response:
    if target is not None:
        return _to_application(request, ToApplication(target))
    page.browser = None
    return page.render(
        "end_session.html", title="You are signed out", client_name=None, fields=None
    )
