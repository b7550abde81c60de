"""Where messages go: `.eml` files in a directory, or an SMTP server (aiosmtplib).

A backend raises `MailServerUnavailable` when it could not reach its server (connection,
timeout, TLS, login, a full disk): the mail is deferred and the circuit breaker counts it.
`MailRejected` means the server answered and refused this message: a 5xx is permanent,
anything else is retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import aiosmtplib


class MailServerUnavailable(Exception):
    """The mail server (or the mail directory) could not be reached."""


class MailRejected(Exception):
    """The server refused the message; `permanent` for a 5xx answer."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


class MailBackend(Protocol):
    async def send(self, message: EmailMessage, *, name: str) -> None:
        """Deliver `message`; `name` is stable per outbox row (a repeat overwrites).

        Returns as soon as the message is accepted, so that the sender records it at once.
        """

    async def close(self) -> None:
        """Finish what `send` left running (an SMTP goodbye); called when the sender stops."""


class FileBackend:
    """One RFC 5322 `.eml` file per message, written atomically (aside, then renamed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage, *, name: str) -> None:
        try:
            await asyncio.to_thread(self._write, message.as_bytes(policy=SMTP), name)
        except OSError as error:
            raise MailServerUnavailable(type(error).__name__) from error

    def _write(self, data: bytes, name: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
        try:
            # The file holds a live link: readable by the service's user only.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # A reader never sees half a message: the name appears complete or not at all.
            os.replace(tmp, self.directory / f"{name}.eml")
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    async def close(self) -> None:
        return None


class SmtpBackend:
    """Delivery over SMTP: STARTTLS (required, not opportunistic), implicit TLS or none."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: Literal["starttls", "tls", "none"],
        username: str | None,
        password: str | None,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self._goodbyes: set[asyncio.Task[None]] = set()

    async def send(self, message: EmailMessage, *, name: str) -> None:
        # Imported here: a worker on the default file backend never loads aiosmtplib.
        import aiosmtplib

        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            username=self.username or None,
            password=self.password if self.username else None,
            timeout=self.timeout,
        )
        try:
            await client.connect()
            try:
                await client.send_message(message)
            except BaseException:
                await self._goodbye(client)
                raise
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            raise MailRejected(
                f"recipient refused ({codes[0] if codes else '?'})",
                permanent=all(code >= 500 for code in codes),
            ) from error
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPConnectResponseError) as error:
            # Login or greeting refused: the server's (or our configuration's) problem, not
            # this message's; every mail would meet it, so it defers and trips the breaker.
            raise MailServerUnavailable(f"{type(error).__name__} ({error.code})") from error
        except aiosmtplib.SMTPResponseException as error:
            raise MailRejected(
                f"{type(error).__name__} ({error.code})", permanent=error.code >= 500
            ) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            # Connection refused or lost, timeouts, TLS not offered or failing.
            raise MailServerUnavailable(type(error).__name__) from error
        # The server's 250 to the message delivered it, whatever QUIT meets. The sender
        # records it now and the goodbye runs beside that: a process that dies between the
        # answer and the record sends the mail again (RFC 1047), so that time is kept short.
        goodbye = asyncio.create_task(self._goodbye(client))
        self._goodbyes.add(goodbye)
        goodbye.add_done_callback(self._goodbyes.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._goodbyes, return_exceptions=True)

    async def _goodbye(self, client: aiosmtplib.SMTP) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await client.quit()
        except Exception:  # noqa: S110 (the outcome is decided; a goodbye lost is harmless)
            pass
        finally:
            client.close()
