"""Reading what a browser sent (PublicKeyCredential.toJSON()) and checking it with
py_webauthn, off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from webauthn import verify_authentication_response, verify_registration_response
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AuthenticationCredential, RegistrationCredential
from webauthn.registration.verify_registration_response import VerifiedRegistration

from app.signin.methods.passkey.relying_party import RelyingParty

# Ed25519, ES256, RS256: what the creation options offer, in order of preference.
ALGORITHMS = (
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
)


class Rejected(Exception):
    """The credential does not verify; `reason` is for the log, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_assertion(credential: Mapping[str, object]) -> tuple[AuthenticationCredential, bytes]:
    """The assertion and the challenge its client data names. Raises Rejected."""
    try:
        parsed = parse_authentication_credential_json(dict(credential))
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise Rejected("malformed") from None
    return parsed, challenge


def parse_attestation(credential: Mapping[str, object]) -> tuple[RegistrationCredential, bytes]:
    """The new credential and the challenge its client data names. Raises Rejected."""
    try:
        parsed = parse_registration_credential_json(dict(credential))
        challenge = parse_client_data_json(parsed.response.client_data_json).challenge
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise Rejected("malformed") from None
    return parsed, challenge


async def check_assertion(
    parsed: AuthenticationCredential,
    *,
    challenge: bytes,
    rp: RelyingParty,
    public_key: bytes,
    require_user_verification: bool,
) -> VerifiedAuthentication:
    """Type, challenge, origin, RP ID hash, user presence (and verification), signature.
    The counter is the caller's rule (app.signin.methods.passkey.method): py_webauthn is
    given 0 so that its own stricter rule does not refuse synced passkeys. Raises Rejected.
    """
    try:
        return await asyncio.to_thread(
            verify_authentication_response,
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=require_user_verification,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise Rejected("assertion") from None


async def check_attestation(
    parsed: RegistrationCredential, *, challenge: bytes, rp: RelyingParty
) -> VerifiedRegistration:
    """Type, challenge, origin, RP ID hash, user presence, the algorithm, and the
    attestation statement's own signature (format `none` carries none). Raises Rejected."""
    try:
        return await asyncio.to_thread(
            verify_registration_response,
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            require_user_presence=True,
            supported_pub_key_algs=list(ALGORITHMS),
        )
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise Rejected("attestation") from None
