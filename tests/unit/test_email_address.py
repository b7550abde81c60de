"""The canonical email form: stable, one spelling per address, look-alikes refused."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from app.models.schemas import Email
from app.utils.email_address import (
    EmailAddressError,
    canonical_email,
    email_key,
    mixed_scripts,
)

SPELLINGS = [
    ("Jose\u0301@Example.COM", "jos\u00e9@example.com"),
    ("\uff41lice\uff20example.com", "alice@example.com"),  # fullwidth letters and at sign
    ("\ufb01le@example.com", "file@example.com"),  # the fi ligature
    ("  bob@example.com ", "bob@example.com"),
    ("ann@xn--bcher-kva.example", "ann@b\u00fccher.example"),
    ("\u01c5x@example.com", "d\u017ex@example.com"),  # title-case digraph: lower() then NFKC
]


@pytest.mark.parametrize(("typed", "canonical"), SPELLINGS)
def test_every_spelling_maps_to_one_stable_canonical_form(typed: str, canonical: str) -> None:
    assert canonical_email(typed) == canonical
    assert canonical_email(canonical) == canonical  # normalising again changes nothing


@pytest.mark.parametrize(
    ("text", "scripts"),
    [
        ("\u0430lice", ["Cyrillic", "Latin"]),
        ("p\u0430ypal", ["Cyrillic", "Latin"]),
        ("\u03b1lice", ["Greek", "Latin"]),
        ("alice", []),
        ("\u0430\u0441\u0435", []),
        ("user.name-42_x", []),  # digits and punctuation belong to every script
        ("\u5c71\u7530\u305f\u308d\u3046", []),  # Han + Hiragana (Japanese)
        ("kim\ud55c\uad6d", []),  # Latin + Hangul (Korean)
        ("\u0430\u5c71", ["Cyrillic", "Han"]),
        ("a\u02b0", []),  # a modifier letter has no script of its own
    ],
)
def test_mixed_scripts_beyond_the_highly_restrictive_level_are_named(
    text: str, scripts: list[str]
) -> None:
    assert mixed_scripts(text) == scripts


def test_an_over_long_input_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(EmailAddressError, match="at most 320 characters"):
        canonical_email("a" * 300 + "@" + "b" * 30 + ".example")


def test_a_look_up_key_of_a_refused_address_is_its_plain_lower_cased_text() -> None:
    """It matches no canonical address, but still finds a row stored before the rules."""
    assert email_key("\u0430LICE@Example.com") == "\u0430lice@example.com"
    assert email_key("Name <A@example.com>") == "name <a@example.com>"
    assert email_key("A@Example.com") == "a@example.com"


def test_the_account_email_is_at_most_100_characters_as_typed_and_as_stored() -> None:
    adapter: TypeAdapter[str] = TypeAdapter(Email)
    fits = "a" * 60 + "@" + "b" * 31 + ".example"
    assert len(fits) == 100
    assert adapter.validate_python(fits) == fits
    with pytest.raises(ValidationError, match="Must be at most 100 characters"):
        adapter.validate_python("a" + fits)
    # 99 characters typed, 101 stored: NFKC spells the ffi ligature out in three letters.
    expanding = "a" * 58 + "\ufb03@" + "b" * 31 + ".example"
    assert len(expanding) == 99
    with pytest.raises(ValidationError, match="Must be at most 100 characters"):
        adapter.validate_python(expanding)
