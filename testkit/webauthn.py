"""A software authenticator and the browser around it, for the passkey tests and the
benchmark's passkey scenario (bench/run.py signs its assertions with it).

It does what a platform authenticator and `navigator.credentials` do, from the options
the service sends: it makes a P-256 key pair (ES256) per credential, returns an
attestation of format `none` with the key as COSE, and signs assertions over the
authenticator data and the hash of the client data. Everything is written here on
`cryptography` and `cbor2`, independently of py_webauthn (tests/unit/test_software_
authenticator.py checks it once against py_webauthn's own verification). The results are
what `PublicKeyCredential.toJSON()` gives (WebAuthn Level 3 §5.1.8).

Each knob a test turns to make a refusal (another origin, another RP ID, no user
verification, another user handle, a counter value) is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "http://localhost:8000"  # the default PUBLIC_URL's origin
RP_ID = "localhost"

# Authenticator data flags (WebAuthn Level 3 §6.1).
UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(32, "big")


@dataclass
class SoftCredential:
    """One credential the authenticator holds: its id, key, user handle and counter."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0
    # Synced passkeys are backup eligible and backed up; device-bound ones neither.
    backup_eligible: bool = False
    backed_up: bool = False

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        # EC2 key, ES256, P-256 (RFC 9053 §7.1.1; COSE labels 1, 3, -1, -2, -3).
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: _int_bytes(numbers.x), -3: _int_bytes(numbers.y)}
        )

    def flags(self, *, user_verified: bool) -> int:
        value = UP | (UV if user_verified else 0)
        value |= BE if self.backup_eligible else 0
        value |= BS if self.backed_up else 0
        return value


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
        separators=(",", ":"),
    ).encode()


@dataclass
class SoftAuthenticator:
    """Holds credentials like a platform authenticator; answers creation and request
    options like the browser's `navigator.credentials` with `toJSON()`."""

    origin: str = ORIGIN
    credentials: list[SoftCredential] = field(default_factory=list)

    @classmethod
    def holding_unregistered(cls, credential_id: bytes, user_handle: bytes) -> SoftAuthenticator:
        """A device with a credential for this RP that the service never registered."""
        credential = SoftCredential(
            credential_id=credential_id,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=RP_ID,
            user_handle=user_handle,
        )
        return cls(credentials=[credential])

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        synced: bool = False,
        challenge: str | None = None,
        reuse: SoftCredential | None = None,
    ) -> dict[str, Any]:
        """A new credential for the creation options (their `rp.id` and `user.id`)."""
        rp = rp_id or options["rp"]["id"]
        credential = reuse or SoftCredential(
            credential_id=secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=from_b64url(options["user"]["id"]),
            backup_eligible=synced,
            backed_up=synced,
        )
        client_data = _client_data(
            "webauthn.create", challenge or options["challenge"], origin or self.origin
        )
        attested = (
            bytes(16)  # AAGUID: none, as with attestation "none"
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([credential.flags(user_verified=user_verified) | AT])
            + struct.pack(">I", credential.sign_count)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        if reuse is None:
            self.credentials.append(credential)
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: SoftCredential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool = True,
        user_handle: bytes | None = None,
        sign_count: int | None = None,
        challenge: str | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict[str, Any]:
        """An assertion for the request options, by `credential` (else the last one made
        for the options' `rpId`). The counter moves on by one unless `sign_count` is given;
        a backed-up credential keeps 0, as synced passkeys do."""
        rp = rp_id or options["rpId"]
        chosen = credential or next(
            c for c in reversed(self.credentials) if c.rp_id == options["rpId"]
        )
        if sign_count is not None:
            chosen.sign_count = sign_count
        elif not chosen.backed_up:
            chosen.sign_count += 1
        client_data = _client_data(
            "webauthn.get", challenge or options["challenge"], origin or self.origin
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([chosen.flags(user_verified=user_verified)])
            + struct.pack(">I", chosen.sign_count)
        )
        key = signing_key or chosen.private_key
        signature = key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = chosen.user_handle if user_handle is None else user_handle
        return {
            "id": b64url(chosen.credential_id),
            "rawId": b64url(chosen.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(handle),
            },
        }
