"""ORM models and API schemas."""

from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.client import OAuthClient
from app.models.mail import OutboxMail
from app.models.mfa import MfaRecoveryCode, MfaTotp
from app.models.oidc import AuthorizationCode, AuthorizationRequest, Consent
from app.models.one_time_token import OneTimeToken
from app.models.passkey import Passkey, PasskeyUserHandle, WebauthnChallenge
from app.models.role import UserRole
from app.models.session import AuthSession
from app.models.signin_flow import SignInFlow
from app.models.signing_key import SigningKey
from app.models.upstream import UpstreamIdentity, UpstreamState
from app.models.user import User

__all__ = [
    "AuditEvent",
    "AuthSession",
    "AuthorizationCode",
    "AuthorizationRequest",
    "Base",
    "Consent",
    "MfaRecoveryCode",
    "MfaTotp",
    "OAuthClient",
    "OneTimeToken",
    "OutboxMail",
    "Passkey",
    "PasskeyUserHandle",
    "SignInFlow",
    "SigningKey",
    "UpstreamIdentity",
    "UpstreamState",
    "User",
    "UserRole",
    "WebauthnChallenge",
]
