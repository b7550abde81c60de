"""Bodies of the sessions, administration and audit routes (API.md, Version 2)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictBool, model_validator
from pydantic.config import JsonDict

from app.models.role import MAX_ROLES, ROLE_PATTERN
from app.models.schemas import PASSWORD_INPUT_MAX, RequestModel, Timestamp, UserRead
from app.oauth2.clients import MAX_URIS, redirect_uri_problem

RoleName = Annotated[str, Field(pattern=ROLE_PATTERN, max_length=32)]
_TS = "2024-01-15T10:30:45.123Z"
_SID = "3f2b9c0e8d7a4b6c9e1f0a2b3c4d5e6f"


_SESSION_EXAMPLE: JsonDict = {
    "id": _SID,
    "created_at": _TS,
    "last_used_at": _TS,
    "expires_at": "2024-01-22T10:30:45.123Z",
    "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "current": True,
    "browser": False,
}
_ADMIN_USER_EXAMPLE: JsonDict = {
    "id": 1,
    "email": "alice@example.com",
    "username": "alice",
    "is_active": True,
    "email_verified": True,
    "created_at": _TS,
    "last_login": _TS,
    "roles": ["admin"],
    "updated_at": _TS,
}
_AUDIT_EXAMPLE: JsonDict = {
    "id": 42,
    "at": _TS,
    "event": "login.failed",
    "user_id": 7,
    "actor_id": None,
    "ip": "203.0.113.7",
    "user_agent": "curl/8.5.0",
    "request_id": "550e8400-e29b-41d4-a716-446655440000",
    "details": {"reason": "wrong_password"},
}
_CURSOR_EXAMPLE = "djE6NTA"


class SessionRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_SESSION_EXAMPLE]}
    )

    id: str
    created_at: Timestamp
    last_used_at: Timestamp = Field(description="The sign-in, or the latest refresh")
    expires_at: Timestamp = Field(description="When the session's refresh token expires")
    ip: str | None
    user_agent: str | None
    current: bool = Field(description="The session of the token that made this request")
    browser: bool = Field(
        False, description="A browser session of the hosted pages (signed in at /login)"
    )


class SessionList(RootModel[list[SessionRead]]):
    model_config = ConfigDict(json_schema_extra={"examples": [[_SESSION_EXAMPLE]]})


class AccountDelete(RequestModel):
    current_password: Annotated[str, Field(min_length=1, max_length=PASSWORD_INPUT_MAX)]

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"current_password": "correct horse battery staple"}]}
    )


class AdminUserRead(UserRead):
    model_config = ConfigDict(json_schema_extra={"examples": [_ADMIN_USER_EXAMPLE]})

    updated_at: Timestamp


class UserPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_ADMIN_USER_EXAMPLE], "next_cursor": _CURSOR_EXAMPLE}]
        }
    )

    items: list[AdminUserRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class AdminUserUpdate(RequestModel):
    """Any of the fields; an absent field is left as it is, `null` is refused."""

    is_active: StrictBool | None = None
    roles: Annotated[list[RoleName], Field(max_length=MAX_ROLES)] | None = None
    email_verified: StrictBool | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"is_active": False},
                {"roles": ["admin", "billing"]},
                {"email_verified": True},
            ]
        }
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> AdminUserUpdate:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may be left out, not null")
        return self


class AuditEventRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_AUDIT_EXAMPLE]}
    )

    id: int
    at: Timestamp
    event: str
    user_id: int | None = Field(description="The account the event is about")
    actor_id: int | None = Field(description="The signed-in account that caused it")
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_AUDIT_EXAMPLE], "next_cursor": None}]}
    )

    items: list[AuditEventRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


def _uri_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if len(values) > MAX_URIS:
        raise ValueError(f"at most {MAX_URIS} URIs")
    for uri in values:
        problem = redirect_uri_problem(uri)
        if problem is not None:
            raise ValueError(f"{uri[:100]!r} {problem}")
    return list(dict.fromkeys(values))


_CLIENT_EXAMPLE: JsonDict = {
    "client_id": "Vb1n0o1PqZ0kQ3q8yYV5uA",
    "name": "Shop",
    "redirect_uris": ["https://shop.example.com/callback"],
    "post_logout_redirect_uris": ["https://shop.example.com/"],
    "public": False,
    "first_party": False,
    "created_at": "2024-01-15T10:30:45.123Z",
}


class ClientCreate(RequestModel):
    """A new client: an OpenID Connect application (redirect URIs) or, without any, a
    resource server that calls introspection."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Shop",
                    "redirect_uris": ["https://shop.example.com/callback"],
                    "post_logout_redirect_uris": ["https://shop.example.com/"],
                    "public": False,
                    "first_party": False,
                }
            ]
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=100)]
    redirect_uris: list[str] = Field(default_factory=list)
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    public: StrictBool = False
    first_party: StrictBool = False

    @model_validator(mode="after")
    def _check_uris(self) -> ClientCreate:
        self.redirect_uris = _uri_list(self.redirect_uris) or []
        self.post_logout_redirect_uris = _uri_list(self.post_logout_redirect_uris) or []
        if self.public and not self.redirect_uris:
            raise ValueError("a public client needs a redirect URI")
        return self


class ClientUpdate(RequestModel):
    """Any of the fields; the others stay. A client stays public or confidential."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"redirect_uris": ["https://shop.example.com/cb"]}]}
    )

    name: Annotated[str | None, Field(None, min_length=1, max_length=100)]
    redirect_uris: list[str] | None = None
    post_logout_redirect_uris: list[str] | None = None
    first_party: StrictBool | None = None

    @model_validator(mode="after")
    def _check_uris(self) -> ClientUpdate:
        self.redirect_uris = _uri_list(self.redirect_uris)
        self.post_logout_redirect_uris = _uri_list(self.post_logout_redirect_uris)
        return self


class ClientRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_CLIENT_EXAMPLE]}
    )

    client_id: str
    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    public: bool
    first_party: bool
    created_at: Timestamp


class ClientList(RootModel[list[ClientRead]]):
    model_config = ConfigDict(json_schema_extra={"examples": [[_CLIENT_EXAMPLE]]})


class ClientCreated(ClientRead):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_CLIENT_EXAMPLE, "client_secret": "kPrK_qmxVW..."}]}
    )

    client_secret: str | None = Field(
        description="Shown this once (confidential clients); null for a public client"
    )
