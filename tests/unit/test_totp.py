"""TOTP verification (RFC 6238): the RFC's own test vectors, the window, the matched step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core import totp

RFC_SECRET = b"12345678901234567890"  # RFC 6238 Appendix B, SHA-1


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize(
    ("seconds", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_codes_are_those_of_rfc_6238_appendix_b(seconds: int, eight_digits: str) -> None:
    # The 6-digit code is the low 6 digits of the RFC's 8-digit value (RFC 4226 §5.3).
    code = eight_digits[-6:]
    assert totp.matching_step(RFC_SECRET, code, at(seconds)) == seconds // 30


def test_one_step_either_side_matches_and_names_its_step() -> None:
    now = 1234567890
    step = now // 30
    early = "005924"  # the code of step `step`, seen from one step later and earlier
    assert totp.matching_step(RFC_SECRET, early, at(now + 30)) == step
    assert totp.matching_step(RFC_SECRET, early, at(now - 30)) == step
    assert totp.matching_step(RFC_SECRET, early, at(now + 60)) is None
    assert totp.matching_step(RFC_SECRET, early, at(now - 60)) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", " 05924", "٠٠٥٩٢٤"])
def test_anything_but_six_ascii_digits_never_matches(code: str) -> None:
    assert totp.matching_step(RFC_SECRET, code, at(1234567890)) is None


def test_secret_is_160_bits_and_base32_without_padding() -> None:
    secret = totp.new_secret()
    assert len(secret) == 20
    assert len(totp.to_base32(secret)) == 32
    assert totp.new_secret() != secret


def test_qr_code_is_one_svg_element_without_xml_declaration() -> None:
    svg = totp.qr_svg("otpauth://totp/authsvc:a%40example.com?secret=GEZDGNBV&issuer=authsvc")
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert svg.endswith("</svg>")
    assert svg.count("<svg") == 1
    assert "<?xml" not in svg
    assert "example.com" not in svg  # the URI is only in the modules, never as text
