"""The tests' software authenticator (testkit/webauthn.py) checked once against
py_webauthn's own verification: what the passkey tests send is what a real authenticator
and browser send, not merely what the service's code expects."""

from __future__ import annotations

import json

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json
from webauthn.helpers.structs import UserVerificationRequirement

from testkit.webauthn import ORIGIN, RP_ID, SoftAuthenticator, from_b64url


def test_registration_and_assertion_verify_with_py_webauthn() -> None:
    authenticator = SoftAuthenticator()
    creation = json.loads(
        options_to_json(
            generate_registration_options(rp_id=RP_ID, rp_name="authsvc", user_name="ada")
        )
    )
    created = authenticator.create(creation)
    registered = verify_registration_response(
        credential=created,
        expected_challenge=from_b64url(creation["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )
    assert registered.credential_id == authenticator.credentials[0].credential_id

    request = json.loads(
        options_to_json(
            generate_authentication_options(
                rp_id=RP_ID, user_verification=UserVerificationRequirement.REQUIRED
            )
        )
    )
    asserted = authenticator.get(request)
    verified = verify_authentication_response(
        credential=asserted,
        expected_challenge=from_b64url(request["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=registered.credential_public_key,
        credential_current_sign_count=registered.sign_count,
        require_user_verification=True,
    )
    assert verified.new_sign_count == 1
    assert verified.user_verified
    assert from_b64url(asserted["response"]["userHandle"]) == from_b64url(creation["user"]["id"])
