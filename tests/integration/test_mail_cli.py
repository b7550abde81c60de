"""`authsvc mail list|retry` and the outbox's metrics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support import CliInvoker, UserFactory
from tests.support.mailbox import RESET_SUBJECT, VERIFY_SUBJECT, Mailbox, smtp_overrides


@pytest.fixture
def settings_overrides(smtp_server: Mailbox) -> dict[str, Any]:
    return {**smtp_overrides(smtp_server), "mail_max_attempts": 1}


async def _settled(app: FastAPI, run_cli: CliInvoker, count: int) -> list[dict[str, Any]]:
    """`mail list --json` once `count` mails are listed and none is pending any more."""
    deadline = time.monotonic() + 20
    while True:
        listed = json.loads((await run_cli("mail", "list", "--json")).stdout)
        if len(listed) >= count and all(m["status"] != "pending" for m in listed):
            return list(listed)
        assert time.monotonic() < deadline, listed
        await app.state.mail_sender.run_once()


async def test_mail_list_shows_the_queue_without_bodies_and_retry_sends_a_failed_mail(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    smtp_server: Mailbox,
    run_cli: CliInvoker,
) -> None:
    user = await user_factory()
    smtp_server.rcpt_replies[user.email] = "550 5.2.1 mailbox disabled"
    await client.post("/auth/password/forgot", json={"email": user.email})

    listed = await _settled(app, run_cli, 2)

    assert [set(m) for m in listed] == [
        {"id", "to", "subject", "status", "attempts", "created_at"}
    ] * 2
    assert [(m["subject"], m["status"], m["attempts"]) for m in listed] == [
        (RESET_SUBJECT, "failed", 1),
        (VERIFY_SUBJECT, "failed", 1),
    ]
    assert {m["to"] for m in listed} == {user.email}
    failed = json.loads((await run_cli("mail", "list", "--failed", "--json")).stdout)
    assert len(failed) == 2
    table = await run_cli("mail", "list")
    assert table.exit_code == 0
    assert "recipient refused (550)" in table.stdout
    assert "token" not in table.stdout
    assert "http" not in table.stdout

    del smtp_server.rcpt_replies[user.email]
    retried = await run_cli("mail", "retry", str(listed[0]["id"]))
    assert retried.exit_code == 0, retried.output
    mail = await smtp_server.one(user.email, RESET_SUBJECT)
    assert len(mail.token) >= 43
    after = await _settled(app, run_cli, 2)
    assert [m["status"] for m in after] == ["sent", "failed"]

    again = await run_cli("mail", "retry", str(listed[0]["id"]))
    assert again.exit_code == 1
    assert "is sent" in again.output
    unknown = await run_cli("mail", "retry", "999999")
    assert unknown.exit_code == 1
    assert "no mail with id 999999" in unknown.output


async def test_metrics_count_sent_failed_and_pending_mail(
    app: FastAPI,
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    loopback_client: httpx.AsyncClient,
    smtp_server: Mailbox,
    run_cli: CliInvoker,
) -> None:
    smtp_server.rcpt_replies["refused@example.com"] = "550 no"
    await user_factory(email="refused@example.com")
    await user_factory(email="fine@example.com")
    await _settled(app, run_cli, 2)

    # /metrics answers loopback peers only (no METRICS_TOKEN set here). The pending gauge
    # is refreshed at the end of each sender cycle: the one that recorded the last mail
    # may still be finishing.
    deadline = time.monotonic() + 20
    while "authsvc_mail_pending 0.0" not in (text := (await loopback_client.get("/metrics")).text):
        assert time.monotonic() < deadline, text
        await asyncio.sleep(0.02)

    assert "authsvc_mail_sent_total 1.0" in text
    assert "authsvc_mail_failed_total 1.0" in text
    assert "authsvc_mail_pending 0.0" in text
    assert "authsvc_mail_retried_total" in text
    assert 'authsvc_circuit_breaker_state{breaker="mail"} 0.0' in text
