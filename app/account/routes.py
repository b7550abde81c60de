"""The signed-in user's sessions, recent activity, and deleting the account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

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
    ValidationException,
)
from app.dependencies import (
    CurrentPrincipal,
    JSONBody,
    PageCursor,
    PageLimit,
    SelfServiceDep,
)
from app.openapi import BEARER_ERRORS, BODY_ERRORS, error_responses
from app.utils.pagination import (
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
    cursor_after,
    next_cursor,
)

router = APIRouter(prefix="/users", tags=["users"])

# The sessions list stays a bare list (its contract); the next page travels in `Link`.
SessionCursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description='The `cursor` of the previous page\'s `Link: <…>; rel="next"` URL',
    ),
]


@router.get(
    "/me/sessions",
    status_code=status.HTTP_200_OK,
    response_model=SessionList,
    summary="The signed-in user's sessions",
    responses=error_responses(ValidationException, *BEARER_ERRORS),
)
async def list_sessions(
    request: Request,
    response: Response,
    me: CurrentPrincipal,
    accounts: SelfServiceDep,
    limit: PageLimit = MAX_LIMIT,
    cursor: SessionCursor = None,
) -> SessionList:
    """The live sessions (sign-ins) of the account, newest first, with the address and
    browser each began from and when it was last refreshed; `current` marks this token's.
    At most `limit` of them (default 200); when more follow, a `Link` header (RFC 8288)
    names the next page's URL with `rel="next"`: pass its `cursor` on."""
    page = await accounts.list_sessions(me, limit=limit, offset=cursor_after(cursor) or 0)
    if page.next_after is not None:
        following = request.url.include_query_params(cursor=next_cursor(page.next_after))
        response.headers["Link"] = f'<{following}>; rel="next"'
    return SessionList([SessionRead.model_validate(s) for s in page.items])


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
