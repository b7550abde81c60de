"""`/admin`: accounts and the audit trail, for bearers of the `admin` role only.

The role is checked by the router itself (`dependencies=`), so no route added here can
forget it; tests/integration/test_admin_routes.py walks the OpenAPI document to be sure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.admin.schemas import (
    AdminUserRead,
    AdminUserUpdate,
    AuditEventRead,
    AuditPage,
    ClientCreate,
    ClientCreated,
    ClientList,
    ClientRead,
    ClientUpdate,
    UserPage,
)
from app.admin.service import UserChanges, UserFilter
from app.audit.log import EVENT_PATTERN, AuditLog, Event
from app.core.errors import (
    AccountInactiveException,
    ForbiddenException,
    LastAdminException,
    NotFoundException,
    ValidationException,
)
from app.dependencies import (
    AdminServiceDep,
    AdminUser,
    JSONBody,
    OutboxDep,
    PageCursor,
    PageLimit,
    SessionDep,
    TwoFactorDep,
    cursor_after,
    require_admin,
)
from app.models.client import OAuthClient
from app.models.role import ROLE_PATTERN
from app.models.schemas import AcceptedResponse
from app.oauth2.clients import ClientService
from app.openapi import BEARER_ERRORS, BODY_ERRORS, error_responses
from app.sessions.responses import NO_STORE
from app.utils.clock import utc_now
from app.utils.pagination import DEFAULT_LIMIT, next_cursor

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

ADMIN_ERRORS = (*BEARER_ERRORS, ForbiddenException)


def _utc(value: datetime | None) -> datetime | None:
    """A timestamp without a zone is read as UTC (the service's only zone)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.get(
    "/users",
    status_code=status.HTTP_200_OK,
    response_model=UserPage,
    summary="List accounts",
    responses=error_responses(ValidationException, *ADMIN_ERRORS),
)
async def list_users(
    admin: AdminServiceDep,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Part of the email or username"),
    ] = None,
    is_active: bool | None = None,
    role: Annotated[str | None, Query(pattern=ROLE_PATTERN, max_length=32)] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> UserPage:
    """Accounts ordered by id, a page at a time; `q` matches a part of the email or the
    username, whatever the case. Rows added while paging neither repeat nor shift pages."""
    page = await admin.page_of_users(
        UserFilter(q=q, is_active=is_active, role=role), limit=limit, after=cursor_after(cursor)
    )
    return UserPage(
        items=[AdminUserRead.model_validate(u) for u in page.items],
        next_cursor=next_cursor(page.next_after),
    )


@router.get(
    "/users/{user_id}",
    status_code=status.HTTP_200_OK,
    response_model=AdminUserRead,
    summary="One account",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException, ValidationException),
)
async def get_user(user_id: int, admin: AdminServiceDep) -> AdminUserRead:
    """The account with this id, with its roles and when it last changed."""
    return AdminUserRead.model_validate(await admin.get_user(user_id))


@router.patch(
    "/users/{user_id}",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=AdminUserRead,
    summary="Change an account: active, roles, email verified",
    responses=error_responses(*BODY_ERRORS, *ADMIN_ERRORS, NotFoundException, LastAdminException),
)
async def update_user(
    user_id: int, body: AdminUserUpdate, me: AdminUser, admin: AdminServiceDep
) -> AdminUserRead:
    """Change any of `is_active`, `roles` (the whole list) and `email_verified`
    (vouching for an address, or asking for it to be proven again). Deactivation ends every
    session of the account at once; a role change counts on /admin at the next request.
    The last active admin cannot be deactivated or demoted (409 LAST_ADMIN)."""
    changes = UserChanges(
        is_active=body.is_active, roles=body.roles, email_verified=body.email_verified
    )
    return AdminUserRead.model_validate(await admin.update_user(user_id, changes, actor_id=me.id))


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete an account",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException, LastAdminException, 400),
)
async def delete_user(user_id: int, me: AdminUser, admin: AdminServiceDep) -> Response:
    """Delete the account and everything tied to it, as `DELETE /users/me` does; its
    tokens answer 401 from now on. The last active admin cannot be deleted."""
    await admin.delete_user(user_id, actor_id=me.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign an account out everywhere",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException, 400),
)
async def end_user_sessions(user_id: int, me: AdminUser, admin: AdminServiceDep) -> Response:
    """End every session of the account: all its access and refresh tokens fail at once."""
    await admin.end_sessions(user_id, actor_id=me.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Turn an account's two-factor authentication off",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException, 400),
)
async def reset_user_mfa(
    user_id: int, me: AdminUser, admin: AdminServiceDep, two_factor: TwoFactorDep
) -> Response:
    """Turn the account's two-factor authentication off (a lost authenticator): its TOTP
    key, recovery codes and pending sign-ins are deleted, and `mfa.disabled` names the admin
    in the audit trail, and the account's address gets a notice. The user signs in with the
    password and may enrol again."""
    await two_factor.disable(await admin.get_user(user_id), actor_id=me.id, via="admin")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedResponse,
    summary="Mail an account a password-reset link",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException, AccountInactiveException, 400),
)
async def request_password_reset(
    user_id: int, me: AdminUser, admin: AdminServiceDep, outbox: OutboxDep
) -> AcceptedResponse:
    """Mail the account's address a one-time link to choose a new password, the mail its
    owner gets from "forgot password". The current password and sessions stay until the
    link is used. A deactivated account is refused (409 ACCOUNT_INACTIVE)."""
    await admin.request_password_reset(user_id, actor_id=me.id, outbox=outbox)
    return AcceptedResponse(detail="A password-reset link is being mailed to the account")


@router.get(
    "/audit",
    status_code=status.HTTP_200_OK,
    response_model=AuditPage,
    summary="The audit trail",
    responses=error_responses(ValidationException, *ADMIN_ERRORS),
)
async def audit_trail(
    session: SessionDep,
    user_id: Annotated[int | None, Query(description="Events about this account")] = None,
    event: Annotated[
        str | None, Query(pattern=EVENT_PATTERN, max_length=64, description="e.g. login.failed")
    ] = None,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Before (ISO 8601)")] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> AuditPage:
    """Security events, newest first, a page at a time, filtered by account, event name
    and time. Timestamps without a zone are UTC."""
    page = await AuditLog(session).page(
        user_id=user_id,
        event=event,
        since=_utc(since),
        until=_utc(until),
        limit=limit,
        after=cursor_after(cursor),
    )
    return AuditPage(
        items=[AuditEventRead.model_validate(e) for e in page.items],
        next_cursor=next_cursor(page.next_after),
    )


# --- clients ---------------------------------------------------------------------------


async def _client(clients: ClientService, client_id: str) -> OAuthClient:
    client = await clients.get(client_id)
    if client is None:
        raise NotFoundException("No client with this id")
    return client


@router.get(
    "/clients",
    status_code=status.HTTP_200_OK,
    response_model=ClientList,
    summary="List the registered clients",
    responses=error_responses(*ADMIN_ERRORS),
)
async def list_clients(session: SessionDep) -> ClientList:
    """Every client, oldest first; never a secret."""
    return ClientList([ClientRead.model_validate(c) for c in await ClientService(session).all()])


@router.post(
    "/clients",
    dependencies=[JSONBody],
    status_code=status.HTTP_201_CREATED,
    response_model=ClientCreated,
    summary="Register a client",
    responses=error_responses(*BODY_ERRORS, *ADMIN_ERRORS),
)
async def create_client(
    body: ClientCreate, me: AdminUser, session: SessionDep, response: Response
) -> ClientCreated:
    """An OpenID Connect application (`redirect_uris`: https, loopback http or a private-use
    scheme, never a fragment) or a resource server. A confidential client's
    `client_secret` is in this answer only; it is kept as a hash."""
    created = await ClientService(session).create(
        body.name.strip(),
        utc_now(),
        redirect_uris=body.redirect_uris,
        post_logout_redirect_uris=body.post_logout_redirect_uris,
        public=body.public,
        first_party=body.first_party,
    )
    AuditLog(session).record(
        Event.CLIENT_CREATED,
        user_id=None,
        actor_id=me.id,
        details={"client_id": created.client.client_id, "public": body.public},
    )
    response.headers.update(NO_STORE)
    read = ClientRead.model_validate(created.client).model_dump()
    return ClientCreated(**read, client_secret=created.secret)


@router.get(
    "/clients/{client_id}",
    status_code=status.HTTP_200_OK,
    response_model=ClientRead,
    summary="A registered client",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException),
)
async def get_client(client_id: str, session: SessionDep) -> ClientRead:
    """The client with this id (never its secret)."""
    return ClientRead.model_validate(await _client(ClientService(session), client_id))


@router.patch(
    "/clients/{client_id}",
    dependencies=[JSONBody],
    status_code=status.HTTP_200_OK,
    response_model=ClientRead,
    summary="Change a client: name, redirect URIs, first-party",
    responses=error_responses(*BODY_ERRORS, *ADMIN_ERRORS, NotFoundException),
)
async def update_client(
    client_id: str, body: ClientUpdate, me: AdminUser, session: SessionDep
) -> ClientRead:
    """A redirect URI taken away is refused from the next authorization request on."""
    client = await _client(ClientService(session), client_id)
    changed = body.model_dump(exclude_none=True)
    for field, value in changed.items():
        setattr(client, field, value.strip() if field == "name" else value)
    client.updated_at = utc_now()
    await session.flush()
    AuditLog(session).record(
        Event.CLIENT_UPDATED,
        user_id=None,
        actor_id=me.id,
        details={"client_id": client_id, "changed": sorted(changed)},
    )
    return ClientRead.model_validate(client)


@router.delete(
    "/clients/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a client",
    responses=error_responses(*ADMIN_ERRORS, NotFoundException),
)
async def delete_client(client_id: str, me: AdminUser, session: SessionDep) -> Response:
    """Its credentials stop working at once, and every token issued to it ends."""
    if not await ClientService(session).delete(client_id):
        raise NotFoundException("No client with this id")
    AuditLog(session).record(
        Event.CLIENT_DELETED, user_id=None, actor_id=me.id, details={"client_id": client_id}
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
