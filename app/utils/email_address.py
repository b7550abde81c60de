"""One spelling per email address: the key registration stores and every look-up uses.

`canonical_email` turns what a person typed into the address the service keeps:

1. Unicode NFKC, so compatibility forms (fullwidth letters and at
   sign, U+FF41, U+FF20; ligatures) become the
   plain characters they stand for;
2. the plain `local@domain` form only (RFC 5322 addr-spec without quoting): no display
   name (`Name <addr>`), no comments, no quoted local part, no IP-literal domain;
3. the domain through IDNA (UTS #46 mapping, IDNA2008 validity) and kept as its Unicode
   form, so `bücher.example` and `xn--bcher-kva.example` are one domain;
4. lower case (the contract: addresses compare case-insensitively);
5. a confusable check: a local part or domain label mixing scripts (Latin with Cyrillic
   or Greek, ...) is refused, following UTS #39's "highly restrictive" level.

Parsing and IDNA are email_validator's (the library behind pydantic's EmailStr).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_INPUT = 320  # RFC 3696 errata: 64 + 1 + 255; anything longer is not an address

# UTS #39 §5.2 "Highly Restrictive": one script, or one of these combinations (the ones
# that the Chinese, Japanese and Korean writing systems need alongside Latin).
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Character names that do not start with their script's name, or name it differently.
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN"}
_NO_SCRIPT = frozenset({"MODIFIER", "DIGIT", "FULLWIDTH", "HALFWIDTH", "SMALL"})


class EmailAddressError(ValueError):
    """An address the service does not accept; the message says why, for the client."""


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


# A sign-in names the address up to four times (the throttle's account key, the look-up,
# the reset of its failure counts); parsing and IDNA cost more than the rest of the
# request's own work. A pure function of the text: the last few thousand are remembered
# (refusals are not, they raise).
@lru_cache(maxsize=4096)
def canonical_email(raw: str) -> str:
    """The stored form of an address; raises EmailAddressError when it is not acceptable."""
    if len(raw) > MAX_EMAIL_INPUT:
        raise EmailAddressError(f"An email address has at most {MAX_EMAIL_INPUT} characters")
    try:
        parsed = validate_email(
            _nfkc(raw).strip(),
            check_deliverability=False,
            allow_smtputf8=True,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_empty_local=False,
        )
    except EmailNotValidError as error:
        raise EmailAddressError(str(error)) from None
    # NFKC again after lower-casing: lower() can leave a string that is not in NFKC.
    local = _nfkc(_nfkc(parsed.local_part).lower())
    domain = _nfkc(parsed.domain.lower())
    for part in (local, *domain.split(".")):
        mixed = mixed_scripts(part)
        if mixed:
            raise EmailAddressError(
                f"An email address may not mix scripts in one part ({', '.join(mixed)}):"
                " look-alike addresses are refused"
            )
    return f"{local}@{domain}"


def email_key(raw: str) -> str:
    """The look-up key of any string offered as an email: its canonical form, or, when it is
    no acceptable address, its NFKC lower-cased text (which matches no canonical address
    but still finds an account stored before these rules)."""
    try:
        return canonical_email(raw)
    except EmailAddressError:
        return _nfkc(raw).strip().lower()


def mixed_scripts(text: str) -> list[str]:
    """The scripts of `text`'s letters when they mix beyond UTS #39's highly restrictive
    level, sorted; an empty list when `text` is fine. Digits, marks and punctuation belong
    to every script (Common/Inherited), so they never count."""
    scripts = {script for char in text if (script := _script(char)) is not None}
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        return []
    return sorted(script.title() for script in scripts)


def _script(char: str) -> str | None:
    # The Unicode character name starts with the script for the letters of every script in
    # use (LATIN SMALL LETTER A, CYRILLIC SMALL LETTER A, GREEK SMALL LETTER ALPHA, ...);
    # the standard library has no Script property, and this needs no data file.
    if not unicodedata.category(char).startswith("L"):
        return None
    first = unicodedata.name(char, "").split(" ", 1)[0]
    if not first or first in _NO_SCRIPT:
        return None
    return _SCRIPT_ALIASES.get(first, first)
