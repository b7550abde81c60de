"""JWT issue and verification: claims, expiry with a fake clock, strict rejection (RFC 8725)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest

from app.core.errors import InvalidTokenException, TokenExpiredException
from app.core.jwt import TokenCodec, TokenRejected, TokenType
from tests.support import codec_on

KEY = "unit-test-key-" + "0123456789abcdef" * 4


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codec(clock: FakeClock) -> TokenCodec:
    return codec_on(clock, key=KEY)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, object]:
    decoded: dict[str, object] = pyjwt.decode(token, options={"verify_signature": False})
    return decoded


def test_access_token_carries_the_contract_claims(codec: TokenCodec, clock: FakeClock) -> None:
    issued = codec.issue("42", TokenType.ACCESS)
    claims = _claims(issued.token)
    assert set(claims) >= {"sub", "type", "iat", "exp", "jti", "iss", "aud"}
    assert claims["sub"] == "42"
    assert claims["type"] == "access"
    assert claims["exp"] == int((clock.now + timedelta(minutes=30)).timestamp())
    assert pyjwt.get_unverified_header(issued.token)["alg"] == "HS256"


def test_access_token_with_custom_lifetime(codec: TokenCodec, clock: FakeClock) -> None:
    issued = codec.issue("42", TokenType.ACCESS, ttl=timedelta(minutes=5))
    assert issued.expires_at == clock.now + timedelta(minutes=5)


def test_refresh_token_lives_seven_days(codec: TokenCodec, clock: FakeClock) -> None:
    issued = codec.issue("42", TokenType.REFRESH)
    assert _claims(issued.token)["type"] == "refresh"
    assert issued.expires_at == clock.now + timedelta(days=7)


def test_valid_token_verifies_and_yields_the_user_id(codec: TokenCodec) -> None:
    issued = codec.issue("42", TokenType.ACCESS, extra={"sid": "s1"})
    claims = codec.decode(issued.token, TokenType.ACCESS)
    assert claims.subject == "42"
    assert claims.jti == issued.jti
    assert claims.extra == {"sid": "s1"}


def test_each_token_gets_a_unique_jti(codec: TokenCodec) -> None:
    assert codec.issue("1", TokenType.ACCESS).jti != codec.issue("1", TokenType.ACCESS).jti


def test_expired_token_raises_token_expired(codec: TokenCodec, clock: FakeClock) -> None:
    issued = codec.issue("42", TokenType.ACCESS)
    clock.advance(timedelta(minutes=30, seconds=6))
    with pytest.raises(TokenExpiredException):
        codec.decode(issued.token, TokenType.ACCESS)


def test_token_within_leeway_is_still_accepted(codec: TokenCodec, clock: FakeClock) -> None:
    issued = codec.issue("42", TokenType.ACCESS)
    clock.advance(timedelta(minutes=30, seconds=2))
    assert codec.decode(issued.token, TokenType.ACCESS).subject == "42"


def test_tampered_payload_fails_verification(codec: TokenCodec) -> None:
    header, _, signature = codec.issue("42", TokenType.ACCESS).token.split(".")
    forged = _claims(codec.issue("42", TokenType.ACCESS).token) | {"sub": "1"}
    with pytest.raises(TokenRejected) as caught:
        codec.decode(f"{header}.{_b64(forged)}.{signature}", TokenType.ACCESS)
    assert caught.value.reason == "signature"


def test_garbage_raises_invalid_token(codec: TokenCodec) -> None:
    with pytest.raises(InvalidTokenException):
        codec.decode("not-a-token", TokenType.ACCESS)


def test_access_token_is_refused_as_refresh_and_vice_versa(codec: TokenCodec) -> None:
    access = codec.issue("42", TokenType.ACCESS).token
    refresh = codec.issue("42", TokenType.REFRESH).token
    with pytest.raises(TokenRejected, match="Invalid token"):
        codec.decode(access, TokenType.REFRESH)
    with pytest.raises(TokenRejected):
        codec.decode(refresh, TokenType.ACCESS)


def test_other_key_is_rejected(codec: TokenCodec, clock: FakeClock) -> None:
    other = TokenCodec(
        key="another-key-0123456789-0123456789-abcdef",
        issuer="authsvc",
        audience="authsvc",
        access_ttl=timedelta(minutes=30),
        refresh_ttl=timedelta(days=7),
        clock=clock,
    )
    with pytest.raises(TokenRejected):
        codec.decode(other.issue("42", TokenType.ACCESS).token, TokenType.ACCESS)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_rejected(codec: TokenCodec, alg: str) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token)
    token = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(payload)}."
    with pytest.raises(TokenRejected):
        codec.decode(token, TokenType.ACCESS)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithm_is_rejected(codec: TokenCodec, alg: str) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token)
    token = pyjwt.encode(payload, KEY, algorithm=alg)
    with pytest.raises(TokenRejected) as caught:
        codec.decode(token, TokenType.ACCESS)
    assert caught.value.reason == "algorithm"


@pytest.mark.parametrize("header", ["kid", "jku", "x5u", "jwk"])
def test_key_locating_headers_are_rejected(codec: TokenCodec, header: str) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token)
    token = pyjwt.encode(payload, KEY, algorithm="HS256", headers={header: "https://evil/k"})
    with pytest.raises(TokenRejected) as caught:
        codec.decode(token, TokenType.ACCESS)
    assert caught.value.reason == "header"


def test_jwe_with_five_segments_is_rejected(codec: TokenCodec) -> None:
    with pytest.raises(TokenRejected):
        codec.decode("a.b.c.d.e", TokenType.ACCESS)


def test_bad_base64_is_rejected(codec: TokenCodec) -> None:
    with pytest.raises(TokenRejected):
        codec.decode("!!!.@@@.###", TokenType.ACCESS)


def test_huge_token_is_rejected_before_parsing(codec: TokenCodec) -> None:
    token = f"{_b64({'alg': 'HS256', 'pad': 'x' * 10_000})}.e30.sig"
    with pytest.raises(TokenRejected) as caught:
        codec.decode(token, TokenType.ACCESS)
    assert caught.value.reason == "too_long"


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti", "type", "sub"])
def test_missing_required_claim_is_rejected(codec: TokenCodec, claim: str) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token)
    del payload[claim]
    with pytest.raises(TokenRejected):
        codec.decode(pyjwt.encode(payload, KEY, algorithm="HS256"), TokenType.ACCESS)


@pytest.mark.parametrize(("claim", "value"), [("iss", "someone-else"), ("aud", "other-api")])
def test_wrong_issuer_or_audience_is_rejected(codec: TokenCodec, claim: str, value: str) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token) | {claim: value}
    with pytest.raises(TokenRejected):
        codec.decode(pyjwt.encode(payload, KEY, algorithm="HS256"), TokenType.ACCESS)


def test_token_issued_in_the_future_is_rejected(codec: TokenCodec, clock: FakeClock) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token)
    payload["iat"] = int((clock.now + timedelta(hours=1)).timestamp())
    with pytest.raises(TokenRejected) as caught:
        codec.decode(pyjwt.encode(payload, KEY, algorithm="HS256"), TokenType.ACCESS)
    assert caught.value.reason == "issued_in_future"


def test_non_numeric_exp_is_rejected(codec: TokenCodec) -> None:
    payload = _claims(codec.issue("42", TokenType.ACCESS).token) | {"exp": "tomorrow"}
    with pytest.raises(TokenRejected):
        codec.decode(pyjwt.encode(payload, KEY, algorithm="HS256"), TokenType.ACCESS)
