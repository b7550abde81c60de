"""`user_roles`: the roles of each user, one row per (user, role).

A table rather than a list-valued column: it holds the same way on SQLite and PostgreSQL,
a unique pair is a constraint the database keeps, and "everyone with role R" is an index
look-up. The token check still reads a user's roles in the statement that loads the user
(see `User.roles_text`), so roles cost no extra round trip.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

ROLE_PATTERN = r"^[a-z][a-z0-9_.-]{0,31}$"
MAX_ROLES = 20
ADMIN_ROLE = "admin"


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)

    def __repr__(self) -> str:
        return f"UserRole(user_id={self.user_id!r}, role={self.role!r})"
