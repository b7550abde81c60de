"""HKDF keys per purpose and AES-GCM boxes bound to their row."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.signin.mfa import (
    RECOVERY_ALPHABET,
    TOTP_KEY_INFO,
    new_recovery_code,
    normalize_recovery_code,
    totp_box,
)
from app.utils.crypto import DecryptionError, SecretBox
from app.utils.keyed_hash import derive_key

KEY = "a-secret-key-that-is-long-enough-for-the-tests-0123456789"


def test_each_purpose_derives_its_own_key() -> None:
    totp = derive_key(KEY, info=TOTP_KEY_INFO)
    assert len(totp) == 32
    assert totp == derive_key(KEY.encode(), info=TOTP_KEY_INFO)
    assert totp != derive_key(KEY, info=b"authsvc another purpose v1")
    assert totp != derive_key(KEY + "x", info=TOTP_KEY_INFO)
    assert KEY.encode()[:32] != totp


def test_the_totp_key_is_hkdf_sha256_without_salt_so_stored_secrets_still_decrypt() -> None:
    # The derivation TOTP secrets were first encrypted under (before the shared derive_key).
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=TOTP_KEY_INFO)
    expected = hkdf.derive(KEY.encode())
    assert derive_key(KEY, info=TOTP_KEY_INFO) == expected
    box = totp_box(KEY)
    old_box = SecretBox(expected)
    stored = old_box.encrypt(b"JBSWY3DPEHPK3PXP", associated_data=b"user:1")
    assert box.decrypt(stored, associated_data=b"user:1") == b"JBSWY3DPEHPK3PXP"


def test_a_box_decrypts_what_it_encrypted_for_the_same_row_only() -> None:
    box = totp_box(KEY)
    sealed = box.encrypt(b"twenty bytes secret!", associated_data=b"user:1")

    assert sealed.startswith("v1.")
    assert box.decrypt(sealed, associated_data=b"user:1") == b"twenty bytes secret!"
    with pytest.raises(DecryptionError):
        box.decrypt(sealed, associated_data=b"user:2")  # moved to another user's row
    with pytest.raises(DecryptionError):
        totp_box(KEY + "x").decrypt(sealed, associated_data=b"user:1")  # SECRET_KEY changed
    assert box.encrypt(b"same", associated_data=b"a") != box.encrypt(b"same", associated_data=b"a")


@pytest.mark.parametrize("sealed", ["", "v2.AAAA", "v1.!!!!", "v1.AAAA", "v1." + "A" * 40])
def test_malformed_ciphertexts_are_refused(sealed: str) -> None:
    box = SecretBox(derive_key(KEY, info=TOTP_KEY_INFO))
    with pytest.raises(DecryptionError):
        box.decrypt(sealed, associated_data=b"user:1")


def test_recovery_codes_are_two_groups_of_five_unambiguous_characters() -> None:
    codes = {new_recovery_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        first, second = code.split("-")
        assert len(first) == len(second) == 5
        assert set(first + second) <= set(RECOVERY_ALPHABET)
    assert not set("01ilo") & set(RECOVERY_ALPHABET)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("abcde-fghjk", "abcdefghjk"),
        ("ABCDE FGHJK", "abcdefghjk"),
        (" abcdefghjk ", "abcdefghjk"),
        ("abcde-fghj", None),
        ("abcde-fghjo", None),
        ("123456", None),
    ],
)
def test_recovery_codes_are_read_as_people_type_them(typed: str, expected: str | None) -> None:
    assert normalize_recovery_code(typed) == expected
