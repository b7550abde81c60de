"""A real SMTP server for the tests (aiosmtpd in a thread) and what it received.

Messages are parsed with the standard library, as a mail client would; links and tokens
are read from the text part, the way a person reads the mail.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.servers import free_port

LINK = re.compile(r"https?://\S+")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43,}$")
DEFAULT_WAIT_S = 20.0  # generous: catches a hang, asserts no speed


@dataclass
class Delivered:
    """One received message, with its SMTP envelope."""

    envelope_to: list[str]
    message: EmailMessage
    received_at: float

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())

    @property
    def link(self) -> str:
        links = LINK.findall(self.text)
        assert len(links) == 1, self.text
        return str(links[0])

    @property
    def token(self) -> str:
        token = parse_qs(urlsplit(self.link).query)["token"][0]
        assert TOKEN.match(token), token
        return token


def parse(data: bytes, envelope_to: list[str]) -> Delivered:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return Delivered(envelope_to, message, time.monotonic())


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        await asyncio.to_thread(self.box.wait_at_gate, "RCPT")
        reply = self.box.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        await asyncio.to_thread(self.box.wait_at_gate, "QUIT")
        return "221 Bye"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        with self.box.lock:
            self.box.messages.append(parse(content, list(envelope.rcpt_tos)))
            self.box.logins.append(bool(session.authenticated))
        return "250 Message accepted"


class Mailbox:
    """aiosmtpd on a port of its own; `start()` may come late (the server "comes up")."""

    def __init__(self, port: int | None = None, *, credentials: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.credentials = credentials
        self.messages: list[Delivered] = []
        self.logins: list[bool] = []
        # RCPT address -> SMTP reply, to make the server refuse a recipient.
        self.rcpt_replies: dict[str, str] = {}
        self.lock = threading.Lock()
        self._controller: Controller | None = None
        # `hold()`: RCPT (or QUIT) waits here, mid-conversation, until `release()` (a slow
        # server, or one that answers while the sender's database is away). None: nobody
        # waits.
        self._gate = threading.Condition()
        self._gate_at = "RCPT"
        self._passes: int | None = None
        self.held = 0  # conversations that have waited at the gate so far

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self.credentials is not None
            and isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs = {
                "authenticator": self._authenticate,
                "auth_require_tls": False,
                "auth_required": True,
            }
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )
        self._controller.start()

    def hold(self, *, after: int = 0, at: str = "RCPT") -> None:
        """Let the next `after` conversations through, then hold each at `at` (RCPT: before
        the message; QUIT: after the server accepted it)."""
        with self._gate:
            self._passes, self._gate_at = after, at
            self._gate.notify_all()

    def release(self) -> None:
        with self._gate:
            self._passes = None
            self._gate.notify_all()

    def wait_at_gate(self, command: str) -> None:
        """Called by the server for each RCPT and QUIT (in a thread); bounded so no thread
        outlives a failed test by long."""
        with self._gate:
            if self._passes is None or command != self._gate_at:
                return
            if self._passes == 0:
                self.held += 1
                self._gate.wait_for(
                    lambda: self._passes is None or self._passes > 0, timeout=DEFAULT_WAIT_S * 3
                )
            if self._passes:
                self._passes -= 1

    async def wait_until_held(self, count: int = 1, *, within: float = DEFAULT_WAIT_S) -> None:
        """Until `count` conversations in all have waited at the gate."""
        deadline = time.monotonic() + within
        while self.held < count:
            assert time.monotonic() < deadline, f"{self.held} of {count} held within {within}s"
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self, predicate: Callable[[Delivered], bool] | None = None) -> list[Delivered]:
        with self.lock:
            return [m for m in self.messages if predicate is None or predicate(m)]

    async def wait_for(
        self,
        predicate: Callable[[Delivered], bool] | None = None,
        *,
        count: int = 1,
        within: float = DEFAULT_WAIT_S,
    ) -> list[Delivered]:
        """The matching messages once there are `count` of them; polls up to a deadline."""
        deadline = time.monotonic() + within
        while True:
            found = self.received(predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} mails within {within}s; all: "
                    f"{[(m.to, m.subject) for m in self.received()]}"
                )
            await asyncio.sleep(0.02)

    async def one(
        self, to: str, subject: str | None = None, *, within: float = DEFAULT_WAIT_S
    ) -> Delivered:
        """The mail to `to` (with that subject), waiting for it; exactly one must come."""

        def match(m: Delivered) -> bool:
            return m.to == to and (subject is None or m.subject == subject)

        found = await self.wait_for(match, within=within)
        assert len(found) == 1, [(m.to, m.subject) for m in found]
        return found[0]


def read_eml_dir(directory: Path) -> list[Delivered]:
    """Every `.eml` file the file backend wrote, parsed."""
    return [
        parse(path.read_bytes(), [])
        for path in sorted(directory.glob("*.eml"))
        if not path.name.startswith(".")
    ]


def smtp_overrides(box: Mailbox) -> dict[str, Any]:
    """Settings that make the service deliver to `box` (plain SMTP on localhost)."""
    return {
        "mail_backend": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": box.port,
        "smtp_tls": "none",
        "smtp_timeout": 5,
        "mail_poll_interval_seconds": 0.2,
        "mail_sender_enabled": True,
    }


RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Confirm your email address"
CHANGE_SUBJECT = "Confirm your new email address"
CHANGE_NOTICE_SUBJECT = "Your email address is being changed"
PASSWORD_CHANGED_SUBJECT = "Your password was changed"
