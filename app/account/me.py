"""The signed-in user's own account."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.dependencies import CurrentSessionUser
from app.models.schemas import UserRead
from app.openapi import BEARER_ERRORS, error_responses

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    status_code=status.HTTP_200_OK,
    response_model=UserRead,
    summary="The signed-in user",
    responses=error_responses(*BEARER_ERRORS),
)
async def read_me(user: CurrentSessionUser) -> Response:
    """The account the bearer access token belongs to. A refresh token, an expired or
    tampered token, or no `Authorization: Bearer` header at all is a 401 with a
    `WWW-Authenticate: Bearer` challenge (RFC 6750 §3)."""
    # Serialised once by the bearer check (UserRead, the documented response_model).
    return Response(user.body, media_type="application/json")
