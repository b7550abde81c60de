"""The sign-in methods' declarations and the re-authentication rule, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.account.reauth import Reauthentication
from app.core.errors import InvalidCurrentPasswordException, ReauthenticationRequiredException
from app.core.passwords import PasswordHasher
from app.models.user import User
from app.signin import methods
from app.signin.methods.base import Factor, Step

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_every_method_declares_a_unique_id_its_amr_factor_and_steps() -> None:
    ids = [method.id for method in methods.METHODS]
    assert len(ids) == len(set(ids))
    for method in methods.METHODS:
        assert method.amr, method.id
        assert isinstance(method.factor, Factor)
        assert method.steps <= set(Step), method.id
    second = ["totp", "recovery_code", "passkey"]
    assert [m.id for m in methods.for_step(Step.SECOND_FACTOR)] == second
    assert [m.id for m in methods.for_step(Step.FIRST_FACTOR)] == ["password", "passkey", "fed"]
    assert methods.by_id("password") is not None
    assert methods.by_id("carrier-pigeon") is None


class _NoTransaction:
    async def end_read(self) -> None:
        raise AssertionError("an account without a password never reaches the hash")


def _reauth() -> Reauthentication:
    hasher = PasswordHasher("argon2id", argon2_memory_kib=8, argon2_time_cost=1)
    return Reauthentication(
        _NoTransaction(),  # type: ignore[arg-type]
        hasher=hasher,
        clock=lambda: NOW,
        max_age=timedelta(minutes=5),
    )


def _passwordless() -> User:
    return User(id=7, email="p@example.com", username="p", hashed_password=None)


async def test_without_a_password_a_recent_sign_in_is_the_proof() -> None:
    reauth = _reauth()
    user = _passwordless()

    await reauth.confirm(
        user,
        current_password="ignored",
        auth_time=NOW - timedelta(minutes=5),
        during="t",
        password_required=True,
    )
    with pytest.raises(ReauthenticationRequiredException):
        await reauth.confirm(
            user,
            current_password=None,
            auth_time=NOW - timedelta(minutes=6),
            during="t",
            password_required=True,
        )
    with pytest.raises(ReauthenticationRequiredException):  # a token without auth_time
        await reauth.confirm(user, current_password=None, auth_time=None, during="t")


async def test_with_a_password_an_operation_that_takes_it_requires_it() -> None:
    user = User(id=8, email="q@example.com", username="q", hashed_password="$argon2id$x")

    with pytest.raises(InvalidCurrentPasswordException):
        await _reauth().confirm(
            user, current_password=None, auth_time=NOW, during="t", password_required=True
        )
