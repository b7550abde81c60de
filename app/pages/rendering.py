"""Rendering the hosted pages: Jinja2 templates (app/pages/templates) with autoescaping,
one base layout, and the page's anti-CSRF token and signed-in person in every context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app.middleware.security import allow_form_action
from app.pages.guards import Csrf
from app.sessions.browser import BrowserSession
from app.signin.methods.passkey.relying_party import RelyingParty

SERVICE_NAME = "authsvc"
# The pages whose forms lead to another provider ("Continue with", "Link").
_PROVIDER_FORMS = frozenset({"login.html", "account.html"})

_templates = Environment(
    loader=PackageLoader("app.pages", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    # A typo in a template fails the test that renders it instead of printing nothing.
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


@dataclass(slots=True)
class Page:
    """One request's page: renders a template with the browser's anti-CSRF token (and sets
    the pre-session cookie the first time)."""

    request: Request
    csrf: Csrf
    browser: BrowserSession | None

    @property
    def session_id(self) -> str | None:
        return self.browser.session_id if self.browser is not None else None

    def render(
        self,
        template: str,
        *,
        title: str,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        browser_id = self.csrf.browser_id(self.request)
        new_browser = browser_id is None
        if browser_id is None:
            browser_id = self.csrf.new_browser_id()
        values: dict[str, Any] = {
            "title": title,
            "service_name": SERVICE_NAME,
            "signed_in": self.browser.user if self.browser is not None else None,
            "csrf_token": self.csrf.token(browser_id, self.session_id),
            "error": None,
            "notice": None,
            "return_to": None,
            "passkeys_available": RelyingParty.from_settings(
                self.request.app.state.settings
            ).unavailable_reason
            is None,
            # "Continue with {provider}" on the sign-in pages (app.signin.upstream_routes).
            "providers": self.request.app.state.settings.upstream_providers,
        }
        values.update(context)
        if values["providers"] and template in _PROVIDER_FORMS:
            for client in self.request.app.state.upstream_clients.values():
                allow_form_action(self.request.scope, *client.form_origins())
        html = _templates.get_template(template).render(values)
        response = HTMLResponse(html, status_code=status_code, headers=headers)
        if new_browser:
            self.csrf.set_cookie(response, browser_id)
        return response

    def forbidden(self) -> HTMLResponse:
        """The answer to a form POST without this browser's anti-CSRF token."""
        return self.render(
            "forbidden.html",
            title="This form has expired",
            status_code=403,
            error="The form was not sent from this page in this browser, or it has expired.",
        )

    def csrf_ok(self, form: Any) -> bool:
        return self.csrf.valid(self.request, form.get("csrf_token"), self.session_id)
