"""TOTP codes (RFC 6238) as every authenticator app reads them: SHA-1, 6 digits, 30 s.

pyotp computes the codes; this module adds what a verifier needs beyond it: the time step
a code matched, so the caller can refuse a step that was already used (RFC 6238 §5.2), and
a window of one step either side for clock drift and typing time (§6). The QR code is an
inline SVG made by segno: only path data, no text and no XML declaration, safe to inline.
"""

from __future__ import annotations

import base64
import hmac
import io
import re
import secrets
from datetime import datetime

import pyotp

DIGITS = 6
INTERVAL_SECONDS = 30
WINDOW_STEPS = 1
SECRET_BYTES = 20  # 160 bits, the length RFC 4226 §4 recommends for the shared secret

_CODE = re.compile(r"[0-9]{6}")


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def to_base32(secret: bytes) -> str:
    """The secret as authenticator apps take it: base32, upper case, without padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // INTERVAL_SECONDS


def looks_like_code(text: str) -> bool:
    return _CODE.fullmatch(text) is not None


def matching_step(secret: bytes, code: str, now: datetime) -> int | None:
    """The time step, within one step of `now`, whose code is `code`; None when none is.

    All candidate steps are compared in constant time, so timing does not tell which step
    (or whether any) was close. When two steps share the code, the later one is returned.
    """
    if not looks_like_code(code):
        return None
    totp = pyotp.TOTP(to_base32(secret), digits=DIGITS, interval=INTERVAL_SECONDS)
    current = time_step(now)
    found = None
    for step in range(current - WINDOW_STEPS, current + WINDOW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def provisioning_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/Issuer:account?secret=...&issuer=Issuer` URI of the key."""
    totp = pyotp.TOTP(to_base32(secret), digits=DIGITS, interval=INTERVAL_SECONDS)
    return totp.provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code: one `<svg>` element (with its namespace, so it also works as a
    file or a data URI), a white quiet zone so it scans on dark pages too."""
    # Imported here: only an MFA enrolment draws a QR code; other workers never load segno.
    import segno

    buffer = io.BytesIO()
    segno.make(uri, error="m").save(
        buffer,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        scale=4,
        border=4,
        dark="#000",
        light="#fff",
        svgclass=None,
        lineclass=None,
    )
    return buffer.getvalue().decode("ascii")
