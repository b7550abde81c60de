"""ORM models and API schemas."""

from app.models.base import Base
from app.models.mfa import MfaChallenge, MfaRecoveryCode, MfaTotp
from app.models.session import AuthSession
from app.models.user import User

__all__ = ["AuthSession", "Base", "MfaChallenge", "MfaRecoveryCode", "MfaTotp", "User"]
