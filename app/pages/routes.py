"""The hosted pages: sign-in (password, then the second step), registration, forgotten
password, sign-out and the account page, as server-rendered forms.

Every rule of signing in comes from the sign-in flow (app.signin.service): the throttles,
inactive accounts, the flow's attempts, `amr`. These routes only turn its answers into pages
and its completed sign-ins into a browser session (app.sessions.browser). Every form POST
checks the anti-CSRF token before it reads anything else (app.pages.guards); a refused one
gets a 403 page and changes nothing. An error of the service rolls the request's transaction
back before the page is shown again, exactly as the JSON API's error would.

Sending the browser on to an application: a sign-in that serves an authorization request
returns to `/oauth2/authorize?...` on this origin (its `return_to`), which then redirects to
the application. Chrome checks the page's CSP `form-action` against every redirect that
follows a form POST, so the page whose form starts such a chain must allow the
application's origin: the OpenID provider sets `app.state.return_to_origins`, a callable
`(return_to) -> awaitable list of origins` (the validated redirect URI's origin of the
authorization request that `return_to` names, or none), and the pages pass what it returns
to `allow_form_action` (app.middleware.security) when they render a form with that
`return_to`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from app.account.service import SelfService
from app.core.errors import (
    AppException,
    RateLimitedException,
    UserInactiveException,
    ValidationException,
)
from app.core.jwt import TokenRejected
from app.dependencies import (
    AccountServiceDep,
    BrowserSessionsDep,
    CurrentBrowserSession,
    PasskeysDep,
    RegistrationDep,
    SelfServiceDep,
    SessionDep,
    SettingsDep,
    SignInDep,
    TwoFactorDep,
    UpstreamSignInDep,
)
from app.middleware.exception import field_errors
from app.middleware.security import allow_form_action
from app.models.schemas import PasswordForgot, UserRegister
from app.pages.guards import Csrf, return_to_or_default, safe_return_to
from app.pages.rendering import Page
from app.sessions.browser import BrowserSession, BrowserSessions, StartedBrowserSession
from app.sessions.tokens import AMR_PASSWORD
from app.signin.flow import ContinueWith, PendingFlow
from app.signin.methods.base import Step, Submission
from app.signin.methods.passkey.credentials import PasskeyStore
from app.signin.methods.passkey.method import PasskeyMethod
from app.signin.methods.upstream.identities import IdentityStore
from app.signin.two_factor import TwoFactor
from app.signin.upstream import UpstreamSignIn
from app.utils.pagination import MAX_LIMIT

router = APIRouter(include_in_schema=False)

ReturnToOrigins = Callable[[str], Awaitable[Sequence[str]]]


async def get_page(request: Request, browser: CurrentBrowserSession) -> Page:
    csrf: Csrf = request.app.state.pages_csrf
    return Page(request, csrf, browser)


PageDep = Annotated[Page, Depends(get_page)]


def text_field(form: FormData, name: str, *, limit: int = 1024) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _credential(form: FormData) -> dict[str, Any] | None:
    """The passkey credential a page's script put into the form (its toJSON()), or None."""
    try:
        value = json.loads(text_field(form, "credential", limit=32 * 1024) or "null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _see_other(location: str) -> RedirectResponse:
    # 303: the browser follows a POST's answer with a GET (RFC 9110 §15.4.4).
    return RedirectResponse(location, status_code=303)


async def _roll_back(page: Page, db: AsyncSession) -> None:
    """Undo what the refused request wrote, as the JSON API's error answer would, and
    reload the signed-in user the page still shows (a rollback expires it)."""
    await db.rollback()
    if page.browser is not None:
        await db.refresh(page.browser.user)


def error_of(error: AppException) -> tuple[str, int, dict[str, str]]:
    """A service's refusal as a page shows it: its message, status and headers."""
    headers = {k: v for k, v in error.headers.items() if k.lower() == "retry-after"}
    message = error.detail
    if isinstance(error, RateLimitedException):
        message = "Too many attempts. Wait a moment and try again."
    return message, error.status_code, headers


async def _allow_return(request: Request, return_to: str | None) -> None:
    """Let this page's form lead, through `return_to`, to the application it serves."""
    hook: ReturnToOrigins | None = getattr(request.app.state, "return_to_origins", None)
    if hook is not None and return_to is not None:
        allow_form_action(request.scope, *(await hook(return_to)))


async def signed_in_response(
    page: Page,
    browser: BrowserSessions,
    started: StartedBrowserSession,
    return_to: str | None,
    upstream: UpstreamSignIn | None = None,
) -> RedirectResponse:
    """Hand the browser its new session: the one it had before ends (a new sign-in never
    keeps a session id that somebody could have planted or seen)."""
    if page.browser is not None:
        await browser.sessions.revoke(sid=page.browser.session_id, user_id=page.browser.user.id)
    # An identity of another provider whose address is this account's waits for exactly
    # this: its person signing in to the account (second factor included), in the browser
    # that proved it (app.signin.upstream).
    if upstream is not None:
        await upstream.link_pending(page.csrf.browser_id(page.request), started.user)
    response = _see_other(return_to_or_default(return_to))
    browser.cookie.set(response, started, now=browser.clock())
    return response


# --- sign-in -------------------------------------------------------------------------


@router.get("/login")
async def login_page(
    page: PageDep, return_to: str | None = None, login_hint: str | None = None
) -> Response:
    """The sign-in form; also shown to a signed-in person (signing in again replaces the
    session: how an application's `prompt=login` or `max_age` gets a fresh sign-in). An
    application's `login_hint` (OpenID Connect Core §3.1.2.1) fills in the identifier; the
    person can still change it, and the focus goes to the password."""
    target = safe_return_to(return_to)
    await _allow_return(page.request, target)
    hint = (login_hint or "").strip()[:320] or None
    return page.render("login.html", title="Sign in", return_to=target, identifier=hint)


@router.post("/login")
async def login(
    page: PageDep,
    signin: SignInDep,
    browser: BrowserSessionsDep,
    upstream: UpstreamSignInDep,
    db: SessionDep,
) -> Response:
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    identifier = text_field(form, "identifier", limit=320).strip()
    password = text_field(form, "password", limit=4096)
    target = safe_return_to(form.get("return_to"))
    if not identifier or not password:
        return page.render(
            "login.html",
            title="Sign in",
            status_code=400,
            error="Enter your email or username and your password.",
            return_to=target,
            identifier=identifier,
        )
    try:
        result = await signin.sign_in(
            identifier,
            password,
            start=browser.start,
            continue_with=ContinueWith.PAGE,
            continue_ref=target,
        )
    except AppException as error:
        await _roll_back(page, db)
        message, status_code, headers = error_of(error)
        await _allow_return(page.request, target)
        return page.render(
            "login.html",
            title="Sign in",
            status_code=status_code,
            headers=headers,
            error=message,
            return_to=target,
            identifier=identifier,
        )
    if isinstance(result, PendingFlow):
        return second_step(page, result.token, result.offered)
    return await signed_in_response(page, browser, result.session, target, upstream)


@router.post("/login/passkey")
async def login_with_passkey(
    page: PageDep,
    signin: SignInDep,
    passkeys: PasskeysDep,
    browser: BrowserSessionsDep,
    db: SessionDep,
    upstream: UpstreamSignInDep,
) -> Response:
    """A passkey alone: a complete sign-in (no second step), by the same flow as the JSON
    API's `/auth/passkey`."""
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    target = safe_return_to(form.get("return_to"))
    try:
        passkeys.require_available()
        method = PasskeyMethod(signin.methods, step=Step.FIRST_FACTOR)
        done = await signin.sign_in_alone(
            method, {"credential": _credential(form) or {}}, start=browser.start
        )
    except AppException as error:
        await _roll_back(page, db)
        message, status_code, headers = error_of(error)
        if error.error_code == "INVALID_CREDENTIALS":
            message = "That passkey could not sign you in. Try again, or use your password."
        await _allow_return(page.request, target)
        return page.render(
            "login.html",
            title="Sign in",
            status_code=status_code,
            headers=headers,
            error=message,
            return_to=target,
            identifier=None,
        )
    return await signed_in_response(page, browser, done.session, target, upstream)


def second_step(
    page: Page,
    flow: str,
    offered: Sequence[str],
    *,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return page.render(
        "login_second_step.html",
        title="Enter your code",
        status_code=status_code,
        headers=headers,
        error=error,
        flow=flow,
        offered=list(offered),
    )


@router.post("/login/mfa")
async def loginsecond_step(
    page: PageDep,
    signin: SignInDep,
    browser: BrowserSessionsDep,
    upstream: UpstreamSignInDep,
    db: SessionDep,
) -> Response:
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    flow = text_field(form, "flow", limit=128)
    credential = _credential(form)
    submission: Submission = (
        {"credential": credential}
        if credential is not None
        else {"code": text_field(form, "code", limit=64).strip()}
    )
    try:
        done = await signin.complete(
            flow, submission, start=browser.start, continue_with=ContinueWith.PAGE
        )
    except TokenRejected:
        await _roll_back(page, db)
        return page.render(
            "login.html",
            title="Sign in",
            status_code=401,
            error="That sign-in has expired or had too many attempts. Sign in again.",
            identifier=None,
        )
    except AppException as error:
        await _roll_back(page, db)
        message, status_code, headers = error_of(error)
        return second_step(page, flow, (), error=message, status_code=status_code, headers=headers)
    return await signed_in_response(
        page, browser, done.session, safe_return_to(done.continue_ref), upstream
    )


# --- signing out ---------------------------------------------------------------------


@router.get("/logout")
async def logout_page(page: PageDep) -> Response:
    """The confirmation: a GET changes nothing (links are followed by scanners and
    prefetchers); the button POSTs."""
    title = "Sign out" if page.browser is not None else "You are signed out"
    return page.render("logout.html", title=title)


@router.post("/logout")
async def logout(page: PageDep, browser: BrowserSessionsDep) -> Response:
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    await browser.end(page.request)
    response = page.render("logout.html", title="You are signed out", signed_in=None)
    browser.cookie.clear(response)
    return response


# --- registration and a forgotten password -------------------------------------------


@router.get("/register")
async def register_page(
    page: PageDep, settings: SettingsDep, return_to: str | None = None
) -> Response:
    return page.render(
        "register.html",
        title="Create an account",
        return_to=safe_return_to(return_to),
        email=None,
        username=None,
        errors=[],
        password_min_length=settings.password_min_length,
    )


@router.post("/register")
async def register(
    page: PageDep,
    registration: RegistrationDep,
    browser: BrowserSessionsDep,
    settings: SettingsDep,
    db: SessionDep,
) -> Response:
    """Create the account with the JSON API's rules, then sign it in (unless addresses
    must be confirmed first)."""
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    fields = {
        "email": text_field(form, "email", limit=1024).strip(),
        "username": text_field(form, "username", limit=1024).strip(),
        "password": text_field(form, "password", limit=4096),
    }
    target = safe_return_to(form.get("return_to"))

    def again(error: str, errors: list[str], status_code: int, headers: dict[str, str]) -> Response:
        return page.render(
            "register.html",
            title="Create an account",
            status_code=status_code,
            headers=headers,
            error=error,
            errors=errors,
            return_to=target,
            email=fields["email"],
            username=fields["username"],
            password_min_length=settings.password_min_length,
        )

    try:
        body = UserRegister.model_validate(fields)
    except ValidationError as invalid:
        found = field_errors(invalid.errors())
        messages = [f"{_LABELS.get(e['field'], e['field'])}: {e['message']}" for e in found]
        return again("The account was not created.", messages, 400, {})
    try:
        user = await registration.create_account(
            email=body.email, username=body.username, password=body.password
        )
        if settings.email_verification_required:
            return page.render(
                "message.html",
                title="Check your mail",
                notice="Account created. Confirm your address with the link we mailed you, "
                "then sign in.",
            )
        started = await browser.start(user, AMR_PASSWORD)
    except AppException as error:
        await _roll_back(page, db)
        message, status_code, headers = error_of(error)
        messages = [f"{_LABELS.get(e['field'], e['field'])}: {e['message']}" for e in error.errors]
        return again(message, messages, status_code, headers)
    if started is None:  # a user created in this transaction is active
        raise UserInactiveException()
    return await signed_in_response(page, browser, started, target)


# The form's labels, for messages about its fields.
_LABELS = {"email": "Email", "username": "Username", "password": "Password"}
_FORGOT_ANSWER = (
    "If an account uses that address, a link to choose a new password is on its way. "
    "It works once and for a limited time."
)


@router.get("/forgot-password")
async def forgot_password_page(page: PageDep) -> Response:
    return page.render("forgot_password.html", title="Forgot your password?", sent=False)


@router.post("/forgot-password")
async def forgot_password(page: PageDep, accounts: AccountServiceDep, db: SessionDep) -> Response:
    """The same answer whatever the address, as `POST /auth/password/forgot`."""
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    try:
        body = PasswordForgot.model_validate(
            {"email": text_field(form, "email", limit=1024).strip()}
        )
        await accounts.request_password_reset(body.email)
    except ValidationError:
        return page.render(
            "forgot_password.html",
            title="Forgot your password?",
            status_code=400,
            error="Enter the email address of your account.",
            sent=False,
        )
    except AppException as error:
        await _roll_back(page, db)
        message, status_code, headers = error_of(error)
        return page.render(
            "forgot_password.html",
            title="Forgot your password?",
            status_code=status_code,
            headers=headers,
            error=message,
            sent=False,
        )
    return page.render(
        "forgot_password.html", title="Check your mail", notice=_FORGOT_ANSWER, sent=True
    )


# --- the account page ----------------------------------------------------------------

_DONE = {
    "password": "Your password was changed. Other sessions were signed out.",
    "mfa-off": "Two-factor authentication is off.",
    "session": "The session was ended.",
    "others": "Every other session was ended.",
    "passkey-added": "The passkey was added: it signs you in on its own.",
    "passkey-renamed": "The passkey was renamed.",
    "passkey-removed": "The passkey was removed.",
    "linked": "The provider was linked: it signs you in from now on.",
    "unlinked": "The provider was unlinked.",
}
_SIGN_IN_FIRST = "/login?return_to=/account"


async def _account(
    page: Page,
    self_service: SelfService,
    two_factor: TwoFactor,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    assert page.browser is not None
    me = page.browser.principal()
    sessions = await self_service.list_sessions(me, limit=MAX_LIMIT)
    settings = page.request.app.state.settings
    values: dict[str, Any] = {
        "user": me.user,
        "providers": settings.upstream_providers,
        # The linked identity of each provider (one per provider and account).
        "identities": {
            identity.provider: identity
            for identity in await IdentityStore(
                self_service.session, clock=self_service.clock
            ).of_user(me.user.id)
        },
        "sessions": sessions.items,
        "enrolment": None,
        "recovery_codes": None,
        "remaining_codes": (
            await two_factor.remaining_recovery_codes(me.user.id) if me.user.mfa_enabled else 0
        ),
        "passkeys": await PasskeyStore(two_factor.session).of_user(me.user.id),
    }
    values.update(context)
    return page.render(
        "account.html", title="Your account", status_code=status_code, headers=headers, **values
    )


@router.get("/account")
async def account_page(
    page: PageDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    done: str | None = None,
) -> Response:
    if page.browser is None:
        return RedirectResponse(_SIGN_IN_FIRST, status_code=303)
    return await _account(page, self_service, two_factor, notice=_DONE.get(done or ""))


async def account_form(page: Page) -> FormData | Response:
    """The form of an account action, or the page to answer instead (403: not this
    browser's form; signed out: to the sign-in page)."""
    form = await page.request.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    if page.browser is None:
        return RedirectResponse(_SIGN_IN_FIRST, status_code=303)
    return form


async def account_refused(
    page: Page,
    db: AsyncSession,
    self_service: SelfService,
    two_factor: TwoFactor,
    error: AppException,
) -> Response:
    await _roll_back(page, db)
    message, status_code, headers = error_of(error)
    messages = [e["message"] for e in error.errors]
    if messages:
        message = f"{message}: {' '.join(messages)}" if message not in messages else message
    return await _account(
        page, self_service, two_factor, status_code=status_code, headers=headers, error=message
    )


def current_password(form: FormData) -> str | None:
    """An account form's re-authentication field (None: the sign-in is recent enough)."""
    return text_field(form, "current_password", limit=4096) or None


AccountAct = Callable[[FormData, BrowserSession], Awaitable[object]]


async def account_action(
    page: Page,
    db: AsyncSession,
    self_service: SelfService,
    two_factor: TwoFactor,
    act: AccountAct,
    *,
    done: str,
) -> Response:
    """An account form's action in the frame they share: the form (anti-CSRF, signed in),
    `act` with it and the browser's session, then back to the account page saying `done`,
    or the page with the refusal (the transaction rolled back)."""
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    try:
        await act(form, page.browser)
    except AppException as error:
        return await account_refused(page, db, self_service, two_factor, error)
    return _see_other(f"/account?done={done}")


@router.post("/account/password")
async def change_password(
    page: PageDep,
    accounts: AccountServiceDep,
    browser: BrowserSessionsDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    """A new password: every session ends (this one too), and this browser gets a new one."""
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    user = page.browser.user
    try:
        await accounts.replace_password(
            user,
            current_password(form),
            text_field(form, "new_password", limit=4096),
            auth_time=page.browser.auth_time,
        )
        started = await browser.start(user, AMR_PASSWORD)
    except AppException as error:
        return await account_refused(page, db, self_service, two_factor, error)
    if started is None:
        raise UserInactiveException()
    response = _see_other("/account?done=password")
    browser.cookie.set(response, started, now=browser.clock())
    return response


@router.post("/account/mfa")
async def start_two_factor(
    page: PageDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    """Turn on, step one: a new key, shown as a QR code and as text; nothing is on yet."""
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    try:
        enrolment = await two_factor.start(
            page.browser.user,
            current_password=current_password(form),
            auth_time=page.browser.auth_time,
        )
    except AppException as error:
        return await account_refused(page, db, self_service, two_factor, error)
    return await _account(page, self_service, two_factor, enrolment=enrolment)


@router.post("/account/mfa/confirm")
async def confirm_two_factor(
    page: PageDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    """Turn on, step two: a code of the new key; the recovery codes are shown once."""
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    try:
        codes = await two_factor.confirm(
            page.browser.user, text_field(form, "code", limit=64).strip()
        )
    except AppException as error:
        return await account_refused(page, db, self_service, two_factor, error)
    return await _account(
        page,
        self_service,
        two_factor,
        recovery_codes=codes,
        notice="Two-factor authentication is on.",
    )


@router.post("/account/mfa/off")
async def turn_off_two_factor(
    page: PageDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    async def act(form: FormData, browser: BrowserSession) -> None:
        await two_factor.disable_by_owner(
            browser.user, current_password=current_password(form), auth_time=browser.auth_time
        )

    return await account_action(page, db, self_service, two_factor, act, done="mfa-off")


@router.post("/account/sessions/{session_id}/end")
async def end_session(
    session_id: str,
    page: PageDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    browser: BrowserSessionsDep,
    db: SessionDep,
) -> Response:
    """End one session; ending this browser's own signs it out."""
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    try:
        await self_service.end_session(page.browser.principal(), session_id)
    except AppException as error:
        return await account_refused(page, db, self_service, two_factor, error)
    if session_id == page.browser.session_id:
        response = _see_other("/login")
        browser.cookie.clear(response)
        return response
    return _see_other("/account?done=session")


@router.post("/account/sessions/end-others")
async def end_other_sessions(page: PageDep, self_service: SelfServiceDep) -> Response:
    form = await account_form(page)
    if not isinstance(form, FormData):
        return form
    assert page.browser is not None
    await self_service.end_other_sessions(page.browser.principal())
    return _see_other("/account?done=others")


@router.post("/account/passkeys/options")
async def passkey_registration_options(page: PageDep, passkeys: PasskeysDep) -> Response:
    """For the page's script: the creation options of a new passkey (JSON), or the
    contract's error body (a sign-in too long ago: sign in again)."""
    form = await page.request.form()
    if not page.csrf_ok(form) or page.browser is None:
        return JSONResponse({"detail": "The form has expired: reload the page."}, status_code=403)
    try:
        options = await passkeys.registration_options(
            page.browser.user, current_password=None, auth_time=page.browser.auth_time
        )
    except AppException as error:
        message = error.detail
        if error.error_code == "REAUTHENTICATION_REQUIRED":
            message = "Sign out and in again, then add the passkey within a few minutes."
        return JSONResponse({"detail": message}, status_code=error.status_code)
    return JSONResponse(options)


@router.post("/account/passkeys")
async def add_passkey(
    page: PageDep,
    passkeys: PasskeysDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    async def act(form: FormData, browser: BrowserSession) -> None:
        name = text_field(form, "name", limit=64) or None
        await passkeys.add(browser.user, _credential(form) or {}, name)

    return await account_action(page, db, self_service, two_factor, act, done="passkey-added")


@router.post("/account/passkeys/{passkey_id:int}/rename")
async def rename_passkey(
    passkey_id: int,
    page: PageDep,
    passkeys: PasskeysDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    async def act(form: FormData, browser: BrowserSession) -> None:
        name = text_field(form, "name", limit=64).strip()
        if not name:
            raise ValidationException("Give the passkey a name")
        await passkeys.rename(browser.user, passkey_id, name)

    return await account_action(page, db, self_service, two_factor, act, done="passkey-renamed")


@router.post("/account/passkeys/{passkey_id:int}/remove")
async def remove_passkey(
    passkey_id: int,
    page: PageDep,
    passkeys: PasskeysDep,
    self_service: SelfServiceDep,
    two_factor: TwoFactorDep,
    db: SessionDep,
) -> Response:
    async def act(form: FormData, browser: BrowserSession) -> None:
        await passkeys.remove(
            browser.user,
            passkey_id,
            current_password=current_password(form),
            auth_time=browser.auth_time,
        )

    return await account_action(page, db, self_service, two_factor, act, done="passkey-removed")
