"""The logging pipeline itself: format, levels, stdlib loggers, redaction."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from app.utils.logger import (
    REDACTED,
    Redactor,
    bind_context,
    get_logger,
    setup_logging,
    uvicorn_log_config,
)
from app.utils.logger import redact_query as sanitize_query

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyJ9"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
ARGON2 = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
BCRYPT = "$2b$12$" + "a" * 53


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    setup_logging("INFO", "json", stream=buffer, secrets=["the-signing-key-0123456789"])
    yield buffer
    setup_logging("INFO", "json")


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_has_the_stable_keys_first_and_the_fields_after(stream: io.StringIO) -> None:
    get_logger("app.test").info("user registered", user_id=7)

    [line] = lines(stream)
    assert list(line)[:5] == ["timestamp", "level", "logger", "message", "request_id"]
    assert line["level"] == "INFO"
    assert line["logger"] == "app.test"
    assert line["message"] == "user registered"
    assert line["request_id"] is None
    assert line["user_id"] == 7


def test_the_request_context_comes_after_the_event_fields_in_a_fixed_order(
    stream: io.StringIO,
) -> None:
    structlog.contextvars.bind_contextvars(client_ip="192.0.2.1", endpoint="/x", method="GET")
    try:
        get_logger("app.test").info("token rejected", reason="expired", token_type="access")
    finally:
        structlog.contextvars.unbind_contextvars("client_ip", "endpoint", "method")
    [line] = lines(stream)
    assert list(line)[5:] == ["reason", "token_type", "method", "endpoint", "client_ip"]


def test_lines_below_the_level_are_dropped() -> None:
    buffer = io.StringIO()
    setup_logging("WARNING", "json", stream=buffer)
    log = get_logger("app.test")
    log.info("quiet")
    log.warning("loud")
    assert [line["message"] for line in lines(buffer)] == ["loud"]


def test_library_loggers_share_the_format_and_the_redaction(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("some.library").warning("got header Authorization: Bearer %s", JWT)
    logging.getLogger("uvicorn.access").info("GET / 200")  # the middleware's line replaces it

    uvicorn_line, library_line = lines(stream)
    assert uvicorn_line["logger"] == "uvicorn.error"
    assert uvicorn_line["message"] == "Started server process [42]"
    assert library_line["level"] == "WARNING"
    assert library_line["message"] == f"got header Authorization: Bearer {REDACTED}"


def test_context_bound_for_a_task_is_on_every_line(stream: io.StringIO) -> None:
    bind_context(user_id=3)
    try:
        get_logger("app.test").info("one")
        logging.getLogger("lib").info("two")
    finally:
        structlog.contextvars.unbind_contextvars("user_id")
    assert [line.get("user_id") for line in lines(stream)] == [3, 3]


def test_console_format_is_readable_text_not_json() -> None:
    buffer = io.StringIO()
    setup_logging("INFO", "console", stream=buffer)
    get_logger("app.test").info("login succeeded", user_id=5, password="hunter2hunter2")

    output = buffer.getvalue()
    assert "login succeeded" in output
    assert "user_id=5" in output
    assert "hunter2hunter2" not in output
    assert not output.startswith("{")
    assert "\x1b[" not in output  # no colour codes when the stream is not a terminal


def test_uvicorn_log_config_renders_uvicorn_lines_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.config.dictConfig(uvicorn_log_config("INFO", "json"))
    try:
        logging.getLogger("uvicorn.error").info("Application startup complete.")
        logging.getLogger("uvicorn.access").info("GET / 200")
    finally:
        setup_logging("INFO", "json")
    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["message"] == "Application startup complete."
    assert line["logger"] == "uvicorn.error"


# --- redaction ------------------------------------------------------------------------------


def redact(**event: Any) -> dict[str, Any]:
    return dict(Redactor(["the-signing-key-0123456789"])(None, "info", event))


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "access_token",
        "refresh_token",
        "client_secret",
        "Authorization",
        "cookie",
        "set-cookie",
        "api_key",
        "X-API-Key",
        "hashed_password",
        "code",
        "otp",
        "recovery_codes",
        "mfa_code",
    ],
)
def test_secret_named_keys_are_redacted_at_any_depth(key: str) -> None:
    event = redact(**{key: "s3cret-value"}, nested={"deeper": [{key: "s3cret-value"}]})
    assert event[key] == REDACTED
    assert event["nested"] == {"deeper": [{key: REDACTED}]}


def test_innocent_keys_and_values_stay() -> None:
    event = redact(
        user_id=1,
        token_type="access",
        reason="wrong_password",
        ok=True,
        ratio=0.5,
        status_code=401,
        error_code="INVALID_MFA_CODE",
    )
    assert event == {
        "user_id": 1,
        "token_type": "access",
        "reason": "wrong_password",
        "ok": True,
        "ratio": 0.5,
        "status_code": 401,
        "error_code": "INVALID_MFA_CODE",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {JWT} refused", f"token {REDACTED} refused"),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
        ("basic Zm9vOmJhcg==", f"basic {REDACTED}"),
        (f"row ('alice', '{ARGON2}', 1)", f"row ('alice', '{REDACTED}', 1)"),
        (f"hash={BCRYPT}", f"hash={REDACTED}"),
        (
            "connect postgresql://authsvc:pa55word@db:5432/auth failed",
            f"connect postgresql://authsvc:{REDACTED}@db:5432/auth failed",
        ),
        ("key is the-signing-key-0123456789!", f"key is {REDACTED}!"),
    ],
)
def test_secrets_inside_text_are_masked(text: str, expected: str) -> None:
    assert redact(message=text)["message"] == expected
    assert redact(detail=[text])["detail"] == [expected]


def test_objects_are_rendered_and_masked_and_deep_nesting_is_dropped() -> None:
    class Header:
        def __str__(self) -> str:
            return f"Bearer {JWT}"

    deep: dict[str, Any] = {"a": {"b": {"c": {"d": {"e": {"f": {"g": "too deep"}}}}}}}
    event = redact(header=Header(), raw=f"Bearer {JWT}".encode(), deep=deep)
    assert event["header"] == f"Bearer {REDACTED}"
    assert event["raw"] == f"Bearer {REDACTED}"
    assert "too deep" not in json.dumps(event["deep"])


def test_short_configured_secrets_are_not_used_as_masks() -> None:
    event = Redactor(["abc", ""])(None, "info", {"message": "abcdef"})
    assert event["message"] == "abcdef"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("page=2&sort=name", "page=2&sort=name"),
        ("access_token=abc&page=1", f"access_token={REDACTED}&page=1"),
        ("password=x&API_KEY=y&code=z", f"password={REDACTED}&API_KEY={REDACTED}&code={REDACTED}"),
        ("jwt=a.b.c&pw=hunter2&q=1", f"jwt={REDACTED}&pw={REDACTED}&q=1"),
        ("%70w=hunter2&p%61sswd=x", f"pw={REDACTED}&passwd={REDACTED}"),  # encoded names
        *[
            (f"{name}=v&sort=name", f"{name}={REDACTED}&sort=name")
            for name in (
                "id_token",
                "refresh_token",
                "mfa_token",
                "client_secret",
                "secret",
                "key",
                "token",
                "pwd",
                "otp",
                "signature",
            )
        ],
    ],
)
def test_secret_query_parameters_are_redacted(query: str, expected: str) -> None:
    assert sanitize_query(query) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /cb?code=abc&state=1 HTTP/1.1", f"GET /cb?code={REDACTED}&state=1 HTTP/1.1"),
        ("https://h/x?jwt=a.b&page=2", f"https://h/x?jwt={REDACTED}&page=2"),
        ("login pw=hunter2 failed", f"login pw={REDACTED} failed"),
        ("a == b; x=1 and page=2", "a == b; x=1 and page=2"),
    ],
)
def test_secret_query_parameters_inside_text_are_masked(text: str, expected: str) -> None:
    assert Redactor()(None, "info", {"message": text})["message"] == expected


def test_a_query_field_is_parsed_before_it_is_masked() -> None:
    event = Redactor()(None, "info", {"query": "%6Awt=abc.def&page=3"})
    assert event["query"] == f"jwt={REDACTED}&page=3"


def test_a_later_setup_masks_its_secrets_in_loggers_already_used(stream: io.StringIO) -> None:
    log = get_logger("test.cached")
    log.info("first", note="the-signing-key-0123456789")  # structlog caches the chain now
    setup_logging("INFO", "json", stream=stream, secrets=["a-second-secret-value-4242"])
    log.info("second", note="a-second-secret-value-4242")
    assert [line["note"] for line in lines(stream)] == [REDACTED, REDACTED]
