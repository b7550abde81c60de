"""The signed-in user's sessions, recent activity, and deleting the account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.admin.schemas import (
    AccountDelete,
    AuditEventRead,
    AuditPage,
    SessionList,
    SessionRead,
)
from app.core.errors import (
    InvalidCurrentPasswordException,
    LastAdminException,
    NotFoundException,
    RateLimitedException,
    ReauthenticationRequiredException,
    ValidationException,
)
from app.dependencies import (
    CurrentPrincipal,
    JSONBody,
    PageCursor,
    PageLimit,
    SelfServiceDep,
    cursor_after,
)
from app.openapi import BEARER_ERRORS, BODY_ERRORS, error_responses
from app.utils.pagination import DEFAULT_LIMIT, next_cursor

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me/sessions",
    status_code=status.HTTP_200_OK,
    response_model=SessionList,
    summary="The signed-in user's sessions",
    responses=error_responses(*BEARER_ERRORS),
)
async def list_sessions(me: CurrentPrincipal, accounts: SelfServiceDep) -> SessionList:
    """Every live session (sign-in) of the account, newest first, with the address and
    browser it began from and when it was last refreshed; `current` marks this token's."""
    sessions = await accounts.list_sessions(me)
    return SessionList([SessionRead.model_validate(s) for s in sessions])


@router.delete(
    "/me/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End one session",
    responses=error_responses(*BEARER_ERRORS, NotFoundException),
)
async def end_session(
    session_id: Annotated[str, Path(description="The `id` of a session in the list")],
    me: CurrentPrincipal,
    accounts: SelfServiceDep,
) -> Response:
    """End a session of the signed-in user: its access and refresh tokens fail from now on,
    on every worker. A session that is not the caller's, or unknown, is 404."""
    await accounts.end_session(me, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/me/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Sign out everywhere else",
    responses=error_responses(*BEARER_ERRORS),
)
async def end_other_sessions(me: CurrentPrincipal, accounts: SelfServiceDep) -> Response:
    """End every session of the signed-in user except the one of this token."""
    await accounts.end_other_sessions(me)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/me",
    dependencies=[JSONBody],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete the account",
    responses=error_responses(
        *BODY_ERRORS,
        InvalidCurrentPasswordException,
        ReauthenticationRequiredException,
        *BEARER_ERRORS,
        LastAdminException,
        RateLimitedException,
    ),
)
async def delete_me(
    body: AccountDelete, me: CurrentPrincipal, accounts: SelfServiceDep
) -> Response:
    """Delete the signed-in account and everything tied to it, after checking its password
    again; its tokens answer 401 from now on. The audit trail keeps the account's events,
    by id only. Wrong passwords count toward the account's login throttle."""
    await accounts.delete_account(me, body.current_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/me/audit",
    status_code=status.HTTP_200_OK,
    response_model=AuditPage,
    summary="The signed-in user's recent activity",
    responses=error_responses(ValidationException, *BEARER_ERRORS),
)
async def my_activity(
    me: CurrentPrincipal,
    accounts: SelfServiceDep,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> AuditPage:
    """The audit events about the signed-in account (sign-ins, failed attempts, sessions
    ended, changes), newest first, a page at a time."""
    page = await accounts.activity(me, limit=limit, after=cursor_after(cursor))
    return AuditPage(
        items=[AuditEventRead.model_validate(e) for e in page.items],
        next_cursor=next_cursor(page.next_after),
    )
