"""The real log output of real requests: JSON lines, one request id per request, no secrets."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import APIRouter, BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select, update
from typer.testing import CliRunner

from app.cli import cli as authsvc_cli
from app.core.signing_keys import KeyCipher
from app.database import Database
from app.models import SigningKey, User
from app.utils.logger import get_logger, setup_logging
from tests.support import (
    TEST_SECRET,
    TIMESTAMP,
    LogCapture,
    UserFactory,
    assert_error,
    build_settings,
    running_app,
)
from tests.support.apps import CLI_THREAD
from tests.support.mailbox import RESET_SUBJECT, VERIFY_SUBJECT, Mailbox, smtp_overrides
from tests.support.mfa import bearer, password_step, second_step, totp_code

LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def only(lines: list[dict[str, Any]], message: str) -> dict[str, Any]:
    found = [line for line in lines if line["message"] == message]
    assert len(found) == 1, (message, lines)
    return found[0]


async def test_every_line_is_a_json_object_with_the_stable_keys(
    client: httpx.AsyncClient, logs: LogCapture, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await client.post("/auth/login", json={"email": user.email, "password": user.password})
    await client.get("/users/me", headers=user.auth)
    await client.get("/nowhere")

    lines = logs.lines()
    assert [line["message"] for line in lines] == [
        "user registered",
        "request completed",
        "login succeeded",
        "request completed",
        "request completed",
        "request completed",
    ]
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "request_id"} <= set(line)
        assert TIMESTAMP.match(line["timestamp"]), line
        assert line["level"] in LEVELS


async def test_the_request_line_has_the_context_and_the_echoed_request_id(
    client: httpx.AsyncClient, logs: LogCapture, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.get("/users/me?page=2", headers=user.auth)

    request_id = response.headers["X-Request-ID"]
    line = only(logs.of_request(request_id), "request completed")
    assert line["level"] == "INFO"
    assert line["logger"] == "app.request"
    assert line["method"] == "GET"
    assert line["endpoint"] == "/users/me"
    assert line["route"] == "/users/me"
    assert line["query"] == "page=2"
    assert line["status_code"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["client_ip"] == "203.0.113.7"
    assert line["user_id"] == user.id


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": "203.0.113.0/24"}])
async def test_behind_a_trusted_proxy_every_line_carries_the_forwarded_client(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.post(
        "/auth/login",
        json={"username": "someone", "password": "whatever it is"},
        headers={"X-Forwarded-For": "198.51.100.23"},
    )
    lines = logs.of_request(response.headers["X-Request-ID"])
    assert [line["message"] for line in lines] == ["login failed", "request completed"]
    assert {line["client_ip"] for line in lines} == {"198.51.100.23"}  # not the proxy's


async def test_an_untrusted_peer_cannot_choose_its_logged_address(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.get("/nowhere", headers={"X-Forwarded-For": "198.51.100.23"})
    line = only(logs.of_request(response.headers["X-Request-ID"]), "request completed")
    assert line["client_ip"] == "203.0.113.7"


async def test_a_password_typed_into_the_username_field_is_not_logged(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    typed = "Tangerine-Gorilla-Pocket-52"
    first = await client.post("/auth/login", json={"username": typed, "password": "x" * 10})
    again = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": typed.upper(), "password": "y" * 10},
    )
    other = await client.post("/auth/login", json={"username": "someone-else", "password": "z" * 9})
    assert typed.lower() not in logs.text.lower()
    digests = [
        only(logs.of_request(r.headers["X-Request-ID"]), "login failed")["identifier_hmac"]
        for r in (first, again, other)
    ]
    # The same identifier, however typed, correlates; another one does not.
    assert digests[0] == digests[1] != digests[2]


async def test_a_client_request_id_is_on_every_line_of_its_request(
    client: httpx.AsyncClient, logs: LogCapture, user_factory: UserFactory
) -> None:
    user = await user_factory()
    response = await client.post(
        "/auth/login",
        json={"email": user.email, "password": "not the password"},
        headers={"X-Request-ID": "trace-login-1"},
    )
    assert_error(response, 401, "INVALID_CREDENTIALS")
    assert response.json()["request_id"] == "trace-login-1"

    lines = logs.of_request("trace-login-1")
    assert [line["message"] for line in lines] == ["login failed", "request completed"]
    failure = lines[0]
    assert failure["level"] == "WARNING"
    assert failure["reason"] == "wrong_password"
    assert failure["user_id"] == user.id
    assert failure["endpoint"] == "/auth/login"
    # Lines of the service that carry no request id are start-up and shut-down only.
    assert all(line["request_id"] is not None for line in logs.lines())


async def test_the_log_tells_unknown_user_from_wrong_password_the_client_cannot(
    client: httpx.AsyncClient, logs: LogCapture, user_factory: UserFactory
) -> None:
    user = await user_factory()
    unknown = await client.post("/auth/login", json={"username": "nobody", "password": "x" * 12})
    wrong = await client.post("/auth/login", json={"username": user.username, "password": "y" * 12})

    unknown_body, wrong_body = unknown.json(), wrong.json()
    for body in (unknown_body, wrong_body):
        body.pop("request_id"), body.pop("timestamp")
    assert unknown_body == wrong_body
    unknown_line = only(logs.of_request(unknown.headers["X-Request-ID"]), "login failed")
    wrong_line = only(logs.of_request(wrong.headers["X-Request-ID"]), "login failed")
    assert unknown_line["reason"] == "unknown_user"
    assert re.fullmatch(r"[0-9a-f]{16}", unknown_line["identifier_hmac"])
    assert "user_id" not in unknown_line  # nothing of the earlier requests leaked into it
    assert wrong_line["reason"] == "wrong_password"


async def _deactivate(database: Database, user_id: int) -> None:
    async with database.session() as session:
        await session.execute(update(User).where(User.id == user_id).values(is_active=False))


async def test_each_application_event_has_its_stable_message_and_fields(
    client: httpx.AsyncClient, logs: LogCapture, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    login = {"username": user.username, "password": user.password}
    await client.post("/auth/login", json=login)
    await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    await client.get("/users/me", headers={"Authorization": f"Bearer {user.refresh_token}"})
    await client.post("/auth/refresh", json={"refresh_token": "not-a-jwt"})
    await _deactivate(database, user.id)
    await client.post("/auth/login", json=login)

    events = [
        {k: v for k, v in line.items() if k in {"message", "reason", "token_type", "user_id"}}
        for line in logs.lines()
        # The modules of registration, sign-in and sessions (one AuthService before).
        if line["logger"]
        in {"app.registration.service", "app.signin.service", "app.sessions.tokens"}
    ]
    assert events == [
        {"message": "user registered", "user_id": user.id},
        {"message": "login succeeded", "user_id": user.id},
        {"message": "token refreshed", "user_id": user.id},
        {"message": "token rejected", "reason": "wrong_type", "token_type": "access"},
        {"message": "token rejected", "reason": "malformed", "token_type": "refresh"},
        {"message": "login failed", "reason": "inactive", "user_id": user.id},
    ]


@pytest.fixture
def crashing_app(app: FastAPI) -> FastAPI:
    router = APIRouter()
    log = get_logger("app.routes.test")

    @router.post("/boom")
    async def boom(request: Request) -> dict[str, Any]:
        log.info("about to fail", headers=dict(request.headers))
        # A careless message that quotes the credentials it was given.
        raise RuntimeError(f"cannot handle {request.headers.get('authorization')}")

    app.include_router(router)
    return app


async def test_a_crash_logs_its_traceback_with_the_request_id_server_side_only(
    crashing_app: FastAPI, client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.post("/boom", headers={"X-Request-ID": "crash-7"})

    assert_error(response, 500, "INTERNAL_ERROR")
    assert "Traceback" not in response.text
    lines = logs.of_request("crash-7")
    assert [line["message"] for line in lines] == [
        "about to fail",
        "unhandled exception",
        "request completed",
    ]
    error = lines[1]
    assert error["level"] == "ERROR"
    assert error["error_type"] == "RuntimeError"
    assert error["exception"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: cannot handle None" in error["exception"]
    assert lines[2]["status_code"] == 500
    assert lines[2]["level"] == "ERROR"


@pytest.fixture
def background_app(app: FastAPI) -> FastAPI:
    router = APIRouter()
    log = get_logger("app.routes.test")

    async def after_response() -> None:
        log.info("background work done")

    async def spawned() -> None:
        log.info("spawned task done")

    @router.post("/later", status_code=202)
    async def later(tasks: BackgroundTasks) -> dict[str, str]:
        await asyncio.create_task(spawned())
        tasks.add_task(after_response)
        return {"status": "accepted"}

    app.include_router(router)
    return app


async def test_tasks_and_background_work_of_a_request_log_its_request_id(
    background_app: FastAPI, client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.post("/later", headers={"X-Request-ID": "bg-1"})

    assert response.status_code == 202
    assert [line["message"] for line in logs.of_request("bg-1")] == [
        "spawned task done",
        "background work done",
        "request completed",
    ]


@pytest.fixture
def interrupted_app(app: FastAPI) -> FastAPI:
    router = APIRouter()

    @router.get("/gone")
    async def gone() -> None:
        # What the server does to the request's task when the client disconnects.
        raise asyncio.CancelledError

    @router.get("/cut")
    async def cut() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk"
            raise RuntimeError("the stream broke")

        return StreamingResponse(chunks(), media_type="text/plain")

    app.include_router(router)
    return app


async def test_a_request_the_client_abandoned_is_still_logged_and_counted(
    interrupted_app: FastAPI,
    client: httpx.AsyncClient,
    loopback_client: httpx.AsyncClient,
    logs: LogCapture,
) -> None:
    with pytest.raises(asyncio.CancelledError):
        await client.get("/gone", headers={"X-Request-ID": "gone-1"})

    line = only(logs.of_request("gone-1"), "request completed")
    assert line["status_code"] == 499
    assert line["interrupted"] == "cancelled"
    assert line["level"] == "WARNING"
    assert 'route="/gone",status="499"' in (await loopback_client.get("/metrics")).text


async def test_a_response_that_breaks_midway_is_logged_as_an_error(
    interrupted_app: FastAPI, client: httpx.AsyncClient, logs: LogCapture
) -> None:
    with pytest.raises(RuntimeError, match="the stream broke"):
        await client.get("/cut", headers={"X-Request-ID": "cut-1"})

    lines = logs.of_request("cut-1")
    assert [line["message"] for line in lines] == ["unhandled exception", "request completed"]
    assert lines[1]["status_code"] == 200
    assert lines[1]["interrupted"] == "error"
    assert lines[1]["level"] == "ERROR"


async def test_a_database_failure_logs_the_error_and_the_breaker_change_on_the_request(
    client: httpx.AsyncClient, app: FastAPI, database: Database, logs: LogCapture
) -> None:
    broken = Database(
        database.settings.model_copy(
            update={
                "database_url": "sqlite+aiosqlite:////nonexistent-dir/sub/auth.db",
                "circuit_breaker_threshold": 1,
            }
        )
    )
    app.state.database = broken
    try:
        response = await client.post(
            "/auth/login", json={"username": "alice", "password": "a password"}
        )
    finally:
        app.state.database = database
        await broken.dispose()

    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert "Traceback" not in response.text
    lines = logs.of_request(response.headers["X-Request-ID"])
    error = only(lines, "database error")
    assert error["level"] == "ERROR"
    assert error["error_type"] == "OperationalError"
    assert "Traceback (most recent call last)" in error["exception"]
    change = only(lines, "circuit breaker state changed")
    assert change["level"] == "WARNING"
    assert (change["breaker"], change["from_state"], change["to_state"]) == (
        "database",
        "closed",
        "open",
    )
    assert only(lines, "request completed")["status_code"] == 503


async def test_health_docs_metrics_and_static_assets_are_not_logged(
    client: httpx.AsyncClient, loopback_client: httpx.AsyncClient, logs: LogCapture
) -> None:
    quiet = ["/health", "/health/live", "/docs", "/redoc", "/openapi.json"]
    responses = [await client.get(path) for path in quiet]
    responses.append(await loopback_client.get("/metrics"))
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    asset = re.search(r'src="([^"]+\.js)"', responses[2].text)
    assert asset is not None
    assert (await client.get(asset.group(1))).status_code == 200
    logged = await client.get("/health/nope")

    assert [line["endpoint"] for line in logs.lines() if "endpoint" in line] == ["/health/nope"]
    assert logs.lines()[-1]["request_id"] == logged.headers["X-Request-ID"]


async def test_secret_query_parameters_are_redacted_in_the_request_line(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.get("/nowhere?access_token=abc123def&password=hunter2hunter2&page=3")

    line = only(logs.of_request(response.headers["X-Request-ID"]), "request completed")
    assert line["query"] == "access_token=[REDACTED]&password=[REDACTED]&page=3"
    assert line["route"] is None
    assert "abc123def" not in logs.text
    assert "hunter2hunter2" not in logs.text


FORGED = '{"level":"CRITICAL","message":"forged","request_id":"forged"}'


@pytest.mark.parametrize(
    "identifier",
    [
        f"alice\r\n{FORGED}",
        f"alice\n{FORGED}",
        f"alice\x00\x1b[31m\x07\u2028{FORGED}\u2029\x85",
    ],
)
async def test_a_username_with_line_breaks_cannot_forge_a_log_line(
    client: httpx.AsyncClient, logs: LogCapture, identifier: str
) -> None:
    response = await client.post(
        "/auth/login", json={"username": identifier, "password": "some password"}
    )
    assert_error(response, 401, "INVALID_CREDENTIALS")

    lines = logs.lines()  # every LF-separated line parses as one JSON object
    assert "forged" not in [line["message"] for line in lines]
    assert all(line["request_id"] != "forged" for line in lines)
    assert len(logs.text.splitlines()) == len(lines)  # no Unicode line break either
    failure = only(logs.of_request(response.headers["X-Request-ID"]), "login failed")
    assert "identifier" not in failure  # only its keyed hash is kept
    assert re.fullmatch(r"[0-9a-f]{16}", failure["identifier_hmac"])


async def test_a_path_with_encoded_line_breaks_cannot_forge_a_log_line(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.get("/x%0d%0a" + FORGED.replace('"', "%22") + "?q=%0a" + "%7b%7d")

    line = only(logs.of_request(response.headers["X-Request-ID"]), "request completed")
    assert line["endpoint"] == "/x\r\n" + FORGED
    assert "forged" not in logs.messages()


# --- the canary test ------------------------------------------------------------------------

CANARY_PASSWORD = "Vermilion-Otter-Lantern-7f3a9c"
CANARY_WRONG = "Cobalt-Heron-Teapot-41d2"


async def test_no_flow_puts_a_password_a_token_or_the_secret_key_in_the_log(
    crashing_app: FastAPI, client: httpx.AsyncClient, logs: LogCapture, database: Database
) -> None:
    """Every flow, with canary values; then search the whole captured output for them."""
    email, username = "canary@example.com", "canary"
    registered = await client.post(
        "/auth/register", json={"email": email, "username": username, "password": CANARY_PASSWORD}
    )
    assert registered.status_code == 201
    tokens = [registered.json()["access_token"], registered.json()["refresh_token"]]

    for identifier in ({"email": email}, {"username": username.upper()}):
        ok = await client.post("/auth/login", json={**identifier, "password": CANARY_PASSWORD})
        assert ok.status_code == 200
        tokens += [ok.json()["access_token"], ok.json()["refresh_token"]]
    for body in (
        {"email": email, "password": CANARY_WRONG},
        {"username": "ghost", "password": CANARY_PASSWORD},
        {"username": username, "password": CANARY_PASSWORD, "is_admin": True},
        {"email": email, "username": username, "password": CANARY_PASSWORD},
    ):
        assert (await client.post("/auth/login", json=body)).status_code in {400, 401}
    weak = {"email": "weak@example.com", "username": "weakling", "password": "weakling1"}
    assert (await client.post("/auth/register", json=weak)).status_code == 400
    assert (
        await client.post(
            "/auth/register",
            content=f'{{"email": "{email}", "password": "{CANARY_PASSWORD}"',
            headers={"Content-Type": "application/json"},
        )
    ).status_code == 400

    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens[1]})
    assert refreshed.status_code == 200
    tokens.append(refreshed.json()["access_token"])
    access, refresh = tokens[0], tokens[1]
    for headers in (
        {"Authorization": f"Bearer {access}"},
        {"Authorization": f"Bearer {refresh}"},
        {"Authorization": f"Bearer {access[:-4]}AAAA"},
        {"Authorization": f"Basic {CANARY_PASSWORD}"},
        {"Authorization": access},
        {"Cookie": f"session={access}"},
    ):
        await client.get("/users/me", headers=headers)
    await client.post("/auth/refresh", json={"refresh_token": access})
    await client.post("/auth/refresh", json={"refresh_token": refresh[:-4] + "AAAA"})
    await client.get(f"/users/me?access_token={access}&password={CANARY_PASSWORD}")
    await client.get(f"/nowhere?jwt={access}&pw={CANARY_PASSWORD}&id_token={refresh}")
    await client.post("/auth/login", json={"username": CANARY_PASSWORD, "password": "x" * 10})
    await client.post("/auth/login", json={"email": f"{CANARY_WRONG}@x.io", "password": "x" * 10})
    await client.get(f"/nowhere/{access}")
    crash = await client.post("/boom", headers={"Authorization": f"Bearer {access}"})
    assert crash.status_code == 500
    bearer = {"Authorization": f"Bearer {tokens[-1]}"}
    assert (await client.get("/users/me/sessions", headers=bearer)).status_code == 200
    for password in (CANARY_WRONG, CANARY_PASSWORD + "x"):
        wrong = await client.request(
            "DELETE", "/users/me", json={"current_password": password}, headers=bearer
        )
        assert wrong.status_code == 400
    await _deactivate(database, registered.json()["user"]["id"])
    await client.post("/auth/login", json={"email": email, "password": CANARY_PASSWORD})
    await client.get("/users/me", headers={"Authorization": f"Bearer {access}"})

    output = logs.text
    assert len(logs.lines()) > 30
    assert "unhandled exception" in logs.messages()  # the crash path was really logged
    for secret in [CANARY_PASSWORD, CANARY_WRONG, TEST_SECRET, *tokens]:
        assert secret not in output
    for token in tokens:  # nor any of a token's signature, in case a token was cut
        assert token.rsplit(".", 1)[1] not in output
    assert "$argon2" not in output


async def test_no_two_factor_flow_puts_a_totp_secret_a_code_or_an_mfa_token_in_the_log(
    client: httpx.AsyncClient, logs: LogCapture, user_factory: UserFactory
) -> None:
    user = await user_factory(password=CANARY_PASSWORD)
    enrolment = (await client.post("/users/me/mfa/totp", headers=user.auth)).json()
    secret = enrolment["secret"]
    now = datetime.now(UTC)
    codes = [totp_code(secret, now), totp_code(secret, now + timedelta(seconds=30))]
    confirmed = await client.post(
        "/users/me/mfa/totp/confirm", json={"code": codes[0]}, headers=user.auth
    )
    assert confirmed.status_code == 200, confirmed.text
    regenerated = await client.post(
        "/users/me/mfa/recovery-codes", json={"code": codes[1]}, headers=user.auth
    )
    assert regenerated.status_code == 200, regenerated.text
    recovery = confirmed.json()["recovery_codes"] + regenerated.json()["recovery_codes"]

    mfa_tokens = [await password_step(client, user.username, CANARY_PASSWORD)]
    wrong = f"{(int(codes[1]) + 1) % 1_000_000:06d}"
    assert (await second_step(client, mfa_tokens[0], wrong)).status_code == 401
    assert (await second_step(client, mfa_tokens[0], recovery[0])).status_code == 401  # replaced
    assert (await second_step(client, mfa_tokens[0], recovery[-1])).status_code == 200
    grant = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user.email, "password": CANARY_PASSWORD},
    )
    mfa_tokens.append(grant.json()["mfa_token"])
    await client.get("/users/me", headers=bearer(mfa_tokens[1]))
    await client.post("/auth/refresh", json={"refresh_token": mfa_tokens[1]})
    await client.get(f"/nowhere?mfa_token={mfa_tokens[1]}&code={codes[1]}")
    await client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": CANARY_WRONG}, headers=user.auth
    )

    output = logs.text
    assert "second factor required" in logs.messages()  # the flows were really logged
    raw = base64.b32decode(secret)
    forms = [secret, secret.lower(), raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode()]
    forms += [enrolment["otpauth_uri"], CANARY_PASSWORD, CANARY_WRONG, *mfa_tokens]
    for code in recovery:
        forms += [code, code.replace("-", ""), code.upper()]
    for form in forms:
        assert form not in output, form
    for code in [*codes, wrong]:  # six digits may occur by chance: look for them as values
        assert f'"{code}"' not in output
        assert f"={code}" not in output


class TestMailFlows:
    @pytest.fixture
    def settings_overrides(self, smtp_server: Mailbox) -> dict[str, Any]:
        return smtp_overrides(smtp_server)

    async def test_no_mail_flow_puts_a_link_a_token_or_a_mail_body_in_the_log(
        self, client: httpx.AsyncClient, logs: LogCapture, smtp_server: Mailbox
    ) -> None:
        # The test's SMTP server is not the service: its own lines stay out of the capture.
        logging.getLogger("mail.log").disabled = True
        try:
            await self._flows(client, logs, smtp_server)
        finally:
            logging.getLogger("mail.log").disabled = False

    async def _flows(
        self, client: httpx.AsyncClient, logs: LogCapture, smtp_server: Mailbox
    ) -> None:
        email = "canary-mail@example.com"
        smtp_server.rcpt_replies["bounce@example.com"] = "550 5.1.1 no such user"
        registered = await client.post(
            "/auth/register",
            json={"email": email, "username": "canarymail", "password": CANARY_PASSWORD},
        )
        auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        verification = await smtp_server.one(email, VERIFY_SUBJECT)
        await client.get(f"/verify-email?token={verification.token}")
        assert (
            await client.post("/auth/verify-email", json={"token": verification.token})
        ).is_success
        await client.post("/auth/verify-email", json={"token": verification.token})
        await client.post("/auth/password/forgot", json={"email": email})
        reset = await smtp_server.one(email, RESET_SUBJECT)
        await client.get(f"/reset-password?token={reset.token}")
        done = await client.post(
            "/auth/password/reset", json={"token": reset.token, "new_password": CANARY_WRONG}
        )
        assert done.status_code == 204
        await client.post(
            "/auth/password/reset", json={"token": reset.token, "new_password": CANARY_WRONG}
        )
        login = await client.post("/auth/login", json={"email": email, "password": CANARY_WRONG})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        changed = await client.put(
            "/users/me/password",
            json={"current_password": CANARY_WRONG, "new_password": CANARY_PASSWORD},
            headers=auth,
        )
        auth = {"Authorization": f"Bearer {changed.json()['access_token']}"}
        await client.put(
            "/users/me/email",
            json={"new_email": "bounce@example.com", "current_password": CANARY_PASSWORD},
            headers=auth,
        )
        await client.post("/auth/password/forgot", json={"email": "nobody@example.com"})
        # Every mail of the flows has been handled (sent, failed or dropped).
        deadline = asyncio.get_running_loop().time() + 20
        while "mail failed" not in logs.messages() or len(smtp_server.received()) < 5:
            assert asyncio.get_running_loop().time() < deadline, logs.messages()
            await asyncio.sleep(0.05)

        output = logs.text
        assert "mail sent" in logs.messages()
        mails = smtp_server.received()
        secrets = [CANARY_PASSWORD, CANARY_WRONG]
        for mail in mails:
            if "token=" in mail.text:
                secrets += [mail.token, mail.link]
            # A line of each body that no log line has reason to contain.
            secrets.append(max(mail.text.splitlines(), key=len))
        for secret in secrets:
            assert secret not in output
        pages = [line for line in logs.lines() if line.get("route") == "/reset-password"]
        assert [line["query"] for line in pages] == ["token=[REDACTED]"]


# --- private signing keys ------------------------------------------------------------------


def _private_forms(key: Any) -> tuple[list[bytes], list[str]]:
    """Every encoding of a private key someone might leak: DER, PEM, base64, JWK members."""
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        scalars = [key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())]
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        scalars = [key.private_numbers().private_value.to_bytes(32, "big")]
    else:
        numbers = key.private_numbers()
        scalars = [
            n.to_bytes((n.bit_length() + 7) // 8, "big") for n in (numbers.d, numbers.p, numbers.q)
        ]
    raw = [der, *scalars]
    texts = [line for line in pem.splitlines() if "PRIVATE KEY" not in line]
    for blob in raw:
        texts += [
            base64.b64encode(blob).decode()[:40],
            base64.urlsafe_b64encode(blob).rstrip(b"=").decode()[:40],
            blob.hex()[:40],
        ]
    return raw, texts


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
async def test_no_private_key_material_in_a_log_line_an_answer_or_the_database(
    database_url: str, tmp_path: Path, algorithm: str
) -> None:
    settings = build_settings(database_url, tmp_path, jwt_algorithm=algorithm)
    runner = CliRunner()

    outputs: list[str] = []

    async def cli(*args: str) -> str:
        result = await asyncio.get_running_loop().run_in_executor(
            CLI_THREAD,
            lambda: runner.invoke(authsvc_cli, list(args), obj=settings, catch_exceptions=False),
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.output)  # stdout and stderr (its log lines) alike
        return result.stdout

    stream = io.StringIO()
    answers: list[str] = []
    async with running_app(settings) as (app, client):
        for command in (["keys", "rotate"], ["keys", "list"], ["keys", "list", "--json"]):
            await cli(*command)
        created = json.loads(await cli("clients", "create", "canary-rs", "--json"))
        setup_logging("DEBUG", "json", stream=stream, secrets=[TEST_SECRET])
        await app.state.keyring.reload()
        basic = httpx.BasicAuth(created["client_id"], created["client_secret"])
        registered = await client.post(
            "/auth/register",
            json={"email": "pk@example.com", "username": "pkcanary", "password": CANARY_PASSWORD},
        )
        tokens = registered.json()
        for response in (
            registered,
            await client.post(
                "/auth/login", json={"username": "pkcanary", "password": CANARY_PASSWORD}
            ),
            await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
            await client.get(
                "/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            ),
            await client.get("/.well-known/jwks.json"),
            await client.get("/.well-known/oauth-authorization-server"),
            await client.post(
                "/auth/introspect", data={"token": tokens["access_token"]}, auth=basic
            ),
            await client.post("/auth/revoke", data={"token": tokens["access_token"]}),
            await client.get("/openapi.json"),
        ):
            assert response.status_code < 400, response.text
            answers.append(response.text)
        async with app.state.database.session() as session:
            rows = (await session.scalars(select(SigningKey))).all()
            dump = " ".join(repr(tuple(vars(row).values())) for row in rows)
        cipher = KeyCipher(TEST_SECRET)
        keys = [
            cipher.decrypt(r.private_key_encrypted, kid=r.kid, algorithm=r.algorithm) for r in rows
        ]
    setup_logging(settings.log_level, settings.log_format, secrets=[TEST_SECRET])

    # Two access keys (rotated); with EdDSA or ES256 the ID tokens' RS256 key as well (the
    # JWKS request made it), and its material is looked for too.
    assert len(keys) == (2 if algorithm == "RS256" else 3)
    log_text = stream.getvalue()
    assert "signing key loaded" in log_text  # the key-handling paths really logged
    files = b""
    if settings.is_sqlite:
        db_path = Path(settings.database_url.split("///", 1)[1])
        files = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    everything = "\n".join([log_text, *answers, *outputs, dump])
    for key in keys:
        raw, texts = _private_forms(key)
        for text in texts:
            assert text not in everything
        for blob in raw:
            assert blob not in files
            assert blob not in dump.encode()
