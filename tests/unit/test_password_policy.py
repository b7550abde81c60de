"""Password policy of NIST SP 800-63B / ASVS: length after NFKC, common list, personal data."""

from __future__ import annotations

import pytest

from app.core.password_policy import password_problems


def test_good_passphrase_passes() -> None:
    assert password_problems("correct horse battery staple", username="alice") == []


@pytest.mark.parametrize("password", ["short", "1234567"])
def test_too_short_is_refused_with_the_rule(password: str) -> None:
    assert password_problems(password) == ["Password must be at least 8 characters long"]


def test_length_counts_characters_after_nfkc() -> None:
    # Eight ligature characters NFKC-normalise to sixteen; "\u00e9" x 7 stays seven.
    assert password_problems("\ufb01" * 4 + "zq") == []
    assert password_problems("\u00e9" * 7) != []


def test_minimum_is_configurable() -> None:
    assert password_problems("tqbfjotld", min_length=12) == [
        "Password must be at least 12 characters long"
    ]


def test_128_characters_pass_129_do_not() -> None:
    assert password_problems("Zq7-" * 32) == []
    assert password_problems("Zq7-" * 32 + "x") == ["Password must be at most 128 characters long"]


@pytest.mark.parametrize(
    "password", ["password", "12345678", "Password1", "iloveyou", "qwertyuiop"]
)
def test_common_passwords_are_refused(password: str) -> None:
    assert "too common" in password_problems(password)[0]


@pytest.mark.parametrize("password", [" " * 8, "zzzzzzzzzz", "xyxyxyxyxy"])
def test_repetitive_passwords_are_refused(password: str) -> None:
    assert password_problems(password)[0] == (
        "Password is too repetitive; use more different characters"
    )


def test_password_containing_the_username_is_refused() -> None:
    problems = password_problems("Alice-in-2024-land", username="alice")
    assert problems == ["Password must not contain the username or email address"]


def test_password_containing_the_email_local_part_is_refused() -> None:
    problems = password_problems("my bobsmith house", email="bobsmith@example.com")
    assert problems == ["Password must not contain the username or email address"]


def test_common_password_list_is_shipped_complete_and_lower_case() -> None:
    from app.core.password_policy import _common_passwords

    common = _common_passwords()
    assert len(common) == 30_000
    assert {"password", "123456", "qwerty", "iloveyou"} <= common
    assert all(p == p.lower() and p.strip() == p and p for p in common)
