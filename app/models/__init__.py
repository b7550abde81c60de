"""ORM models and API schemas."""

from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.role import UserRole
from app.models.session import AuthSession
from app.models.user import User

__all__ = ["AuditEvent", "AuthSession", "Base", "User", "UserRole"]
