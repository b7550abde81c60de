"""Password rules of NIST SP 800-63B §3.1.1.2 and OWASP ASVS 5.0 §6.2.

Length counts characters after NFKC; there are no composition rules; a password is refused
when it appears in a list of commonly used passwords or is built from the account's own
username or email local part. Each failure names the rule it broke.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from app.core.passwords import normalize_password

MAX_PASSWORD_LENGTH = 128
_MIN_DISTINCT_CHARACTERS = 3


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # The 30 000 most common passwords of public breach corpora, as zxcvbn 4.5 ranks them
    # (lower-cased; MIT licence beside the file). A set lookup costs nothing, unlike
    # zxcvbn's estimator on long input, and the file alone spares every worker the 14 MB
    # of dictionaries that importing zxcvbn's frequency lists would keep in memory.
    text = files("app.data").joinpath("common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(text.splitlines())


def password_problems(
    password: str,
    *,
    username: str | None = None,
    email: str | None = None,
    min_length: int = 8,
) -> list[str]:
    """Return the rules the password breaks, as messages for the client (empty: acceptable)."""
    normalized = normalize_password(password)
    length = len(normalized)
    if length < min_length:
        return [f"Password must be at least {min_length} characters long"]
    if length > MAX_PASSWORD_LENGTH:
        return [f"Password must be at most {MAX_PASSWORD_LENGTH} characters long"]

    folded = normalized.casefold()
    problems: list[str] = []
    # NIST SP 800-63B §3.1.1.2 lists repetitive characters ("aaaaaaaa", eight spaces)
    # beside dictionary words among the values a verifier should refuse.
    if len(set(folded)) < _MIN_DISTINCT_CHARACTERS:
        problems.append("Password is too repetitive; use more different characters")
    if folded in _common_passwords() or folded.strip("0123456789!.") in _common_passwords():
        problems.append("Password is too common; choose a less predictable one")
    personal = [username or "", (email or "").partition("@")[0]]
    for part in (p.casefold() for p in personal if len(p) >= 3):
        if part in folded:
            problems.append("Password must not contain the username or email address")
            break
    return problems
