"""Password hashing: argon2id by default, bcrypt selectable, upgrades, NFKC, no truncation."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from app.core.passwords import HASH_THREAD_NICENESS, PasswordHasher, normalize_password
from tests.support import FAST_HASHING


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(**FAST_HASHING)


def test_hash_is_argon2id_and_never_the_plain_password(hasher: PasswordHasher) -> None:
    hashed = hasher.hash_sync("s3cret-passphrase")
    assert hashed.startswith("$argon2id$")
    assert "s3cret-passphrase" not in hashed


def test_default_parameters_are_owasp_argon2id() -> None:
    hashed = PasswordHasher().hash_sync("s3cret-passphrase")
    assert "$m=19456,t=2,p=1$" in hashed


def test_same_password_hashes_differently_each_time(hasher: PasswordHasher) -> None:
    assert hasher.hash_sync("same password") != hasher.hash_sync("same password")


def test_right_password_verifies(hasher: PasswordHasher) -> None:
    hashed = hasher.hash_sync("right password")
    assert hasher.verify_sync("right password", hashed) == (True, None)


def test_wrong_password_fails(hasher: PasswordHasher) -> None:
    hashed = hasher.hash_sync("right password")
    assert hasher.verify_sync("right passwore", hashed) == (False, None)


def test_similar_passwords_have_unrelated_hashes(hasher: PasswordHasher) -> None:
    a, b = hasher.hash_sync("password-a1"), hasher.hash_sync("password-a2")
    assert a.split("$")[-1] != b.split("$")[-1]


def test_nfkc_equivalent_input_verifies(hasher: PasswordHasher) -> None:
    # U+FB01 (the "fi" ligature) is NFKC-equivalent to "fi"; U+212B (Angstrom) to U+00C5.
    hashed = hasher.hash_sync("\ufb01ne \u212bngstr\u00f6m")
    assert hasher.verify_sync("fine \u00c5ngstr\u00f6m", hashed)[0]
    assert normalize_password("\ufb01") == "fi"


def test_long_password_is_not_truncated(hasher: PasswordHasher) -> None:
    password = "x" * 100
    hashed = hasher.hash_sync(password)
    assert not hasher.verify_sync("x" * 72, hashed)[0]
    assert hasher.verify_sync(password, hashed)[0]


def test_bcrypt_scheme_hashes_bcrypt_and_refuses_over_72_bytes() -> None:
    bcrypt = PasswordHasher("bcrypt", bcrypt_rounds=4)
    assert bcrypt.hash_sync("short enough").startswith("$2b$04$")
    assert not bcrypt.fits("x" * 73)
    with pytest.raises(ValueError, match="72 bytes"):
        bcrypt.hash_sync("x" * 73)


def test_bcrypt_hash_verifies_under_argon2_and_asks_for_upgrade(hasher: PasswordHasher) -> None:
    legacy = PasswordHasher("bcrypt", bcrypt_rounds=4).hash_sync("old password")
    valid, new_hash = hasher.verify_sync("old password", legacy)
    assert valid
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert hasher.verify_sync("old password", new_hash) == (True, None)


def test_argon2_hash_with_other_parameters_is_upgraded(hasher: PasswordHasher) -> None:
    stronger = PasswordHasher(argon2_memory_kib=2048, argon2_time_cost=1).hash_sync("pw-12345")
    valid, new_hash = hasher.verify_sync("pw-12345", stronger)
    assert valid
    assert new_hash is not None
    assert "m=1024" in new_hash


def test_unknown_hash_format_does_not_verify(hasher: PasswordHasher) -> None:
    assert hasher.verify_sync("anything", "md5$abc$def") == (False, None)


def test_over_long_input_against_bcrypt_hash_is_a_mismatch(hasher: PasswordHasher) -> None:
    legacy = PasswordHasher("bcrypt", bcrypt_rounds=4).hash_sync("x" * 72)
    assert hasher.verify_sync("x" * 80, legacy) == (False, None)


async def test_async_hashing_runs_off_the_event_loop(hasher: PasswordHasher) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = hasher.hash_sync

    def spy(password: str) -> str:
        seen.append(threading.get_ident())
        return original(password)

    hasher.hash_sync = spy  # type: ignore[method-assign]
    try:
        hashed = await hasher.hash("off the loop")
    finally:
        del hasher.hash_sync
    assert seen
    assert seen[0] != loop_thread
    assert (await hasher.verify("off the loop", hashed))[0]


async def test_concurrent_hashes_reuse_a_fixed_set_of_threads() -> None:
    # Each argon2 buffer stays in its thread's malloc arena: a bounded set of hashing
    # threads is what bounds the worker's memory.
    hasher = PasswordHasher(max_concurrency=2, **FAST_HASHING)
    threads: set[str] = set()
    original = hasher.hash_sync

    def spy(password: str) -> str:
        threads.add(threading.current_thread().name)
        return original(password)

    hasher.hash_sync = spy  # type: ignore[method-assign]
    try:
        for _ in range(3):
            await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(12)))
    finally:
        hasher.close()
    assert 1 <= len(threads) <= 2
    assert all(name.startswith("password-hash") for name in threads)


async def test_hashing_threads_run_below_the_event_loops_priority() -> None:
    # When every core hashes, the loop must still get the CPU first to answer cheap requests.
    hasher = PasswordHasher(max_concurrency=1, **FAST_HASHING)
    loop_niceness = os.getpriority(os.PRIO_PROCESS, 0)
    seen: list[int] = []
    original = hasher.hash_sync

    def spy(password: str) -> str:
        seen.append(os.getpriority(os.PRIO_PROCESS, 0))
        return original(password)

    hasher.hash_sync = spy  # type: ignore[method-assign]
    try:
        await hasher.hash("priority")
    finally:
        hasher.close()
    assert seen == [min(loop_niceness + HASH_THREAD_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == loop_niceness  # the loop's own is unchanged


async def test_closed_hasher_refuses_new_work() -> None:
    hasher = PasswordHasher(**FAST_HASHING)
    hasher.close()
    with pytest.raises(RuntimeError):
        await hasher.hash("after shutdown")


async def test_loop_stays_responsive_while_hashing() -> None:
    hasher = PasswordHasher()  # real parameters: tens of milliseconds per hash
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(4)))
    done.set()
    await task
    assert ticks > 10  # the loop kept running other coroutines during the hashes


async def test_dummy_verification_returns_nothing_and_takes_a_real_verify(
    hasher: PasswordHasher,
) -> None:
    await hasher.verify_dummy("whatever")  # returns None by its signature; must not raise
