"""The signed-in user's own account."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.dependencies import CurrentUser
from app.models.schemas import UserRead
from app.routes.responses import error_responses

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    status_code=status.HTTP_200_OK,
    response_model=UserRead,
    responses=error_responses(401, 500, 503),
)
async def read_me(user: CurrentUser) -> UserRead:
    """The account the bearer access token belongs to."""
    return UserRead.model_validate(user)
