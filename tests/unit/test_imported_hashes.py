"""Which foreign password hashes can be kept as they are (and upgraded at the next login)."""

from __future__ import annotations

from typing import Any

import argon2
import bcrypt
import pytest

from app.core.passwords import HashFloor, PasswordHasher, hash_scheme, imported_hash_problem

# The floor of a service configured like the test suite's (argon2 m=1 MiB, t=1).
FLOOR = HashFloor(argon2_memory_kib=1024, argon2_time_cost=1)
# The floor of the production defaults (argon2id m=19 MiB, t=2).
DEFAULT_FLOOR = PasswordHasher(max_concurrency=1).import_floor


# Fixed salts: the hashes are test parameters, and every pytest-xdist worker must collect
# the same ones.
BCRYPT_SALT = b"N9qo8uLOickgx2ZMRZoMye"
ARGON2_SALT = b"imported-hash-salt"


def _argon2(kind: argon2.Type = argon2.Type.ID, **params: int) -> str:
    options: dict[str, Any] = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1, **params}
    return argon2.PasswordHasher(type=kind, **options).hash("pw", salt=ARGON2_SALT)


@pytest.mark.parametrize(
    "hashed",
    [
        bcrypt.hashpw(b"pw", b"$2a$10$" + BCRYPT_SALT).decode(),
        bcrypt.hashpw(b"pw", b"$2b$10$" + BCRYPT_SALT).decode(),
        "$2y$10$" + "a" * 53,
        _argon2(argon2.Type.ID),
        _argon2(argon2.Type.I),
        _argon2(argon2.Type.D),
    ],
)
def test_standard_bcrypt_and_argon2_hashes_are_kept(hashed: str) -> None:
    assert imported_hash_problem(hashed, floor=FLOOR) is None


@pytest.mark.parametrize(
    ("hashed", "problem"),
    [
        ("plain text", "not a bcrypt or argon2 hash"),
        ("$2x$04$" + "a" * 53, "not a bcrypt or argon2 hash"),  # the buggy-crypt_blowfish variant
        ("$2b$04$" + "a" * 52, "not a bcrypt or argon2 hash"),
        ("$2b$17$" + "a" * 53, "bcrypt cost must be between 4 and 16"),
        ("$2b$03$" + "a" * 53, "bcrypt cost must be between 4 and 16"),
        ("$argon2id$v=19$m=65536,t=3,p=4", "not a bcrypt or argon2 hash"),  # no salt, no digest
        ("$argon2id$v=16$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g", "not a bcrypt or argon2"),
        ("$argon2id$v=19$m=1,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g", "not a valid argon2 hash"),
        ("$argon2id$" + "x" * 300, "longer than 255"),
    ],
)
def test_other_strings_are_refused(hashed: str, problem: str) -> None:
    assert problem in (imported_hash_problem(hashed, floor=FLOOR) or "")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"memory_cost": 512 * 1024}, "memory cost"),
        ({"time_cost": 17}, "time cost"),
        ({"parallelism": 17, "memory_cost": 17 * 8}, "parallelism"),
    ],
)
def test_argon2_hashes_too_costly_to_verify_are_refused(
    params: dict[str, int], problem: str
) -> None:
    # Built by hand: computing a 512 MiB hash in a test would be its own denial of service.
    m, t, p = (
        params.get("memory_cost", 1024),
        params.get("time_cost", 1),
        params.get("parallelism", 1),
    )
    hashed = (
        f"$argon2id$v=19$m={m},t={t},p={p}$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
    )
    assert problem in (imported_hash_problem(hashed, floor=FLOOR) or "")


@pytest.mark.parametrize(
    ("hashed", "floor", "problem"),
    [
        ("$2b$04$" + "a" * 53, FLOOR, "bcrypt cost 4 is below 10"),
        ("$2b$09$" + "a" * 53, FLOOR, "bcrypt cost 9 is below 10"),
        (_argon2(memory_cost=8), DEFAULT_FLOOR, "argon2 m=8,t=1 is cheaper"),
        (_argon2(memory_cost=16384, time_cost=2), DEFAULT_FLOOR, "argon2 m=16384,t=2 is cheaper"),
        # As slow as the service's own hash, but with too little memory to resist GPUs.
        (_argon2(memory_cost=4096, time_cost=10), DEFAULT_FLOOR, "memory at least 7168 KiB"),
        (_argon2(memory_cost=512), FLOOR, "argon2 m=512,t=1 is cheaper"),
    ],
)
def test_imported_hashes_cheaper_than_the_services_own_are_refused(
    hashed: str, floor: HashFloor, problem: str
) -> None:
    assert problem in (imported_hash_problem(hashed, floor=floor) or "")


@pytest.mark.parametrize(
    "hashed",
    [
        "$2b$10$" + "a" * 53,
        # OWASP's equivalent settings: less time, more memory, and the configured one.
        _argon2(memory_cost=47104, time_cost=1),
        _argon2(memory_cost=19456, time_cost=2),
        _argon2(memory_cost=65536, time_cost=3, parallelism=4),
    ],
)
def test_imported_hashes_as_costly_as_the_services_own_are_kept(hashed: str) -> None:
    assert imported_hash_problem(hashed, floor=DEFAULT_FLOOR) is None


def test_a_kept_bcrypt_hash_verifies_and_comes_back_as_argon2id() -> None:
    hasher = PasswordHasher(argon2_memory_kib=1024, argon2_time_cost=1)
    legacy = bcrypt.hashpw(b"old password", bcrypt.gensalt(4)).decode()

    valid, upgraded = hasher.verify_sync("old password", legacy)

    assert valid
    assert upgraded is not None
    assert hash_scheme(upgraded) == "argon2id"
    assert hasher.verify_sync("old password", upgraded) == (True, None)


@pytest.mark.parametrize(
    ("hashed", "scheme"),
    [
        ("$2b$04$x", "bcrypt"),
        ("$argon2id$v=19$x", "argon2id"),
        ("$argon2i$v=19$x", "argon2i"),
        ("x", "unknown"),
    ],
)
def test_hash_scheme_names_the_scheme(hashed: str, scheme: str) -> None:
    assert hash_scheme(hashed) == scheme
