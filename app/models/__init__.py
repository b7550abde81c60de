"""ORM models and API schemas."""

from app.models.base import Base
from app.models.mail import OutboxMail
from app.models.one_time_token import OneTimeToken
from app.models.session import AuthSession
from app.models.user import User

__all__ = ["AuthSession", "Base", "OneTimeToken", "OutboxMail", "User"]
