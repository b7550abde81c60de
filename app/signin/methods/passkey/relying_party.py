"""The relying party passkeys are bound to: its id, name and accepted origins."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from app.config import Settings
from app.core.errors import PasskeysUnavailableException


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    name: str
    origins: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> RelyingParty:
        return cls(
            id=settings.passkey_rp_id,
            name=settings.webauthn_rp_name,
            origins=tuple(settings.passkey_origins),
        )

    @property
    def unavailable_reason(self) -> str | None:
        """Why passkeys cannot work here, or None. Browsers run WebAuthn only for a domain
        name as RP ID (WebAuthn Level 3 §5.1.3 and the "valid domain" of the URL
        standard): on an IP address no passkey could ever be created or used."""
        if _is_ip_address(self.id):
            return (
                f"Passkeys are unavailable: the relying party id {self.id} is an IP address; "
                "set PUBLIC_URL to a domain name (http://localhost:<port> in development)"
            )
        return None

    def require(self) -> None:
        """Raises PasskeysUnavailableException where passkeys cannot work."""
        reason = self.unavailable_reason
        if reason is not None:
            raise PasskeysUnavailableException(reason)
