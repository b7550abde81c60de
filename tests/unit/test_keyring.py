"""The per-worker key set: snapshot swaps, expiry by the injected clock, the rate-limited
reload for unknown kids, and the codec signing and verifying with it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.core.jwt import TokenCodec, TokenExpired, TokenRejected, TokenType, UnknownKeyId
from app.core.signing_keys import KeyCipher, generate_private_key, public_jwk, thumbprint
from app.keys.keyring import KeyRing, NoSigningKeyError
from app.keys.store import StoredKey

SECRET = "unit-test-secret-" + "x" * 40
LIFETIME = timedelta(days=7)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        self.mono = 100.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


def stored(algorithm: str, *, current: bool, retired_at: datetime | None = None) -> StoredKey:
    key = generate_private_key(algorithm)
    kid = thumbprint(key.public_key())
    return StoredKey(
        kid=kid,
        algorithm=algorithm,
        public_jwk=public_jwk(key.public_key(), kid=kid, algorithm=algorithm),
        private_key_encrypted=KeyCipher(SECRET).encrypt(key, kid=kid, algorithm=algorithm),
        current=current,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        activated_at=datetime(2026, 11, 1, tzinfo=UTC),
        retired_at=retired_at,
    )


class Table:
    """What the database would answer, and how often it was asked."""

    def __init__(self, rows: list[StoredKey]) -> None:
        self.rows = rows
        self.loads = 0
        self.gate: asyncio.Event | None = None

    async def load(self, retired_after: datetime) -> Sequence[StoredKey]:
        self.loads += 1
        if self.gate is not None:
            await self.gate.wait()
        return [r for r in self.rows if r.retired_at is None or r.retired_at > retired_after]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def ring_of(table: Table, clock: Clock, revocations: Revocations | None = None) -> KeyRing:
    return KeyRing(
        loader=table.load,
        cipher=KeyCipher(SECRET),
        max_token_lifetime=LIFETIME,
        clock=clock,
        monotonic=clock.monotonic,
        unknown_kid_cooldown=5.0,
        usable=revocations.usable if revocations else None,
        version=(lambda: revocations.version) if revocations else None,
    )


def codec_of(ring: KeyRing, clock: Clock) -> TokenCodec:
    return TokenCodec(
        keys=ring,
        issuer="authsvc",
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=timedelta(days=7),
        algorithm="EdDSA",
        clock=clock,
    )


async def test_an_empty_ring_cannot_sign(clock: Clock) -> None:
    ring = ring_of(Table([]), clock)
    with pytest.raises(NoSigningKeyError):
        ring.signing_key()
    assert ring.jwks() == {"keys": []}


async def test_a_codec_without_a_key_set_neither_signs_nor_verifies(clock: Clock) -> None:
    """What the CLI builds for the password policy: it must not sign with anything."""
    bare = TokenCodec(
        issuer="authsvc",
        audience="authsvc",
        access_ttl=timedelta(minutes=1),
        refresh_ttl=timedelta(days=1),
        algorithm="ES256",
    )
    ring = ring_of(Table([stored("ES256", current=True)]), clock)
    await ring.reload()
    token = codec_of(ring, clock).issue("1", TokenType.ACCESS).token

    with pytest.raises(RuntimeError, match="key set"):
        bare.issue("1", TokenType.ACCESS)
    with pytest.raises(UnknownKeyId):
        await bare.verify(token, TokenType.ACCESS)


async def test_tokens_carry_the_current_kid_and_verify(clock: Clock) -> None:
    current = stored("EdDSA", current=True)
    ring = ring_of(Table([current]), clock)
    await ring.reload()
    codec = codec_of(ring, clock)

    issued = codec.issue("7", TokenType.ACCESS)

    assert (await codec.verify(issued.token, TokenType.ACCESS)).subject == "7"
    assert ring.current_kid == current.kid
    clock.now += timedelta(hours=1)
    with pytest.raises(TokenExpired):
        codec.decode(issued.token, TokenType.ACCESS)


async def test_a_retired_key_verifies_until_its_tokens_expired_then_is_unpublished(
    clock: Clock,
) -> None:
    old = stored("ES256", current=False, retired_at=clock.now)
    new = stored("EdDSA", current=True)
    ring = ring_of(Table([new, old]), clock)
    await ring.reload()

    assert {k["kid"] for k in ring.jwks()["keys"]} == {old.kid, new.kid}
    found = ring.verification_key(old.kid)
    assert found is not None
    assert found[0] == "ES256"  # each key keeps its own algorithm
    clock.now += LIFETIME - timedelta(seconds=1)
    assert ring.verification_key(old.kid) is not None
    clock.now += timedelta(seconds=2)
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid]
    assert ring.verification_key(old.kid) is None


async def test_an_unknown_kid_reloads_once_per_cooldown_and_callers_share_it(
    clock: Clock,
) -> None:
    table = Table([stored("EdDSA", current=True)])
    ring = ring_of(table, clock)
    await ring.reload()
    table.gate = asyncio.Event()

    waiting = [asyncio.create_task(ring.reload_for_unknown_kid()) for _ in range(5)]
    await asyncio.sleep(0)
    table.gate.set()
    results = await asyncio.gather(*waiting)

    assert results == [True] * 5
    assert table.loads == 2  # the start, then one shared reload
    assert await ring.reload_for_unknown_kid() is False  # within the cool-down
    assert table.loads == 2
    clock.mono += 5.0
    assert await ring.reload_for_unknown_kid() is True
    assert table.loads == 3


async def test_a_failing_reload_refuses_and_keeps_the_old_keys(clock: Clock) -> None:
    current = stored("EdDSA", current=True)
    table = Table([current])
    ring = ring_of(table, clock)
    await ring.reload()

    async def broken(_: datetime) -> Sequence[StoredKey]:
        raise ConnectionError("database down")

    ring._loader = broken
    assert await ring.reload_for_unknown_kid() is False
    assert ring.current_kid == current.kid


async def test_the_codec_reloads_for_an_unknown_kid_then_accepts(clock: Clock) -> None:
    first, second = stored("EdDSA", current=True), stored("EdDSA", current=True)
    signer_table, verifier_table = Table([second]), Table([first])
    signer, verifier = ring_of(signer_table, clock), ring_of(verifier_table, clock)
    await signer.reload()
    await verifier.reload()
    token = codec_of(signer, clock).issue("9", TokenType.ACCESS).token
    codec = codec_of(verifier, clock)
    with pytest.raises(UnknownKeyId):
        codec.decode(token, TokenType.ACCESS)

    verifier_table.rows = [second, first]
    claims = await codec.verify(token, TokenType.ACCESS)

    assert claims.subject == "9"
    stranger = ring_of(Table([stored("EdDSA", current=True)]), clock)
    await stranger.reload()
    unknown = codec_of(stranger, clock).issue("9", TokenType.ACCESS).token
    loads = verifier_table.loads
    with pytest.raises(UnknownKeyId):  # within the cool-down: refused without a reload
        await codec.verify(unknown, TokenType.ACCESS)
    assert verifier_table.loads == loads


async def test_a_key_refreshes_periodically(clock: Clock) -> None:
    first, second = stored("EdDSA", current=True), stored("EdDSA", current=True)
    table = Table([first])
    ring = ring_of(table, clock)
    await ring.reload()
    table.rows = [second]

    task = asyncio.create_task(ring.refresh_periodically(0.01))
    try:
        async with asyncio.timeout(5):
            while ring.current_kid != second.kid:  # noqa: ASYNC110 - polling the refresh
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert ring.verification_key(first.kid) is None


class Revocations:
    """The `revoked_at` column as the ring reads it, how often it was asked, and the
    database's data version (moved by every commit)."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.asked = 0
        self.version: int | None = 1

    async def usable(self, kid: str) -> bool:
        self.asked += 1
        return kid not in self.revoked

    def revoke(self, kid: str) -> None:
        self.revoked.add(kid)
        if self.version is not None:
            self.version += 1


async def test_a_key_revoked_elsewhere_is_refused_on_the_next_verification(clock: Clock) -> None:
    current = stored("EdDSA", current=True)
    revocations = Revocations()
    ring = ring_of(Table([current]), clock, revocations)
    await ring.reload()
    codec = codec_of(ring, clock)
    token = codec.issue("1", TokenType.ACCESS).token
    assert (await codec.verify(token, TokenType.ACCESS)).subject == "1"

    revocations.revoke(current.kid)

    with pytest.raises(TokenRejected) as refused:
        await codec.verify(token, TokenType.ACCESS)
    assert refused.value.reason == "revoked_key"


async def test_while_the_database_version_stands_still_no_question_is_asked(
    clock: Clock,
) -> None:
    current = stored("EdDSA", current=True)
    revocations = Revocations()
    ring = ring_of(Table([current]), clock, revocations)
    await ring.reload()
    codec = codec_of(ring, clock)
    token = codec.issue("1", TokenType.ACCESS).token

    for _ in range(3):
        await codec.verify(token, TokenType.ACCESS)
    assert revocations.asked == 1

    revocations.version = None  # unknown (PostgreSQL, or the file unreadable): always ask
    for _ in range(3):
        await codec.verify(token, TokenType.ACCESS)
    assert revocations.asked == 4


async def test_before_signing_a_revoked_current_key_is_replaced_without_a_cool_down(
    clock: Clock,
) -> None:
    old = stored("EdDSA", current=True)
    table = Table([old])
    revocations = Revocations()
    ring = ring_of(table, clock, revocations)
    await ring.reload()
    await ring.reload_for_unknown_kid()  # the cool-down now runs: it must not matter
    new = stored("EdDSA", current=True)
    table.rows = [new]  # what `revoke_key` leaves: the old key gone from the live set
    revocations.revoke(old.kid)
    codec = codec_of(ring, clock)

    await codec.prepare_to_sign()

    token = codec.issue("1", TokenType.ACCESS).token
    assert jwt.get_unverified_header(token)["kid"] == new.kid
    assert ring.jwks() == {"keys": [new.public_jwk]}
