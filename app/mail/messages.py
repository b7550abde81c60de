"""The messages the service sends, built with the standard library's EmailMessage.

Each has a text/plain part with the link (or the notice) and an HTML alternative. Values
that come from a person (username, addresses) are escaped in the HTML part.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr


@dataclass(frozen=True, slots=True)
class Content:
    """What a mail says: a greeting line, paragraphs, and an optional link with its label."""

    paragraphs: tuple[str, ...]
    link: str | None = None
    link_label: str = ""
    closing: str = ""


def sender_domain(mail_from: str) -> str:
    """The domain of MAIL_FROM, for Message-IDs (`localhost` when it has none)."""
    _, address = parseaddr(mail_from)
    _, at, domain = address.rpartition("@")
    return domain if at and domain else "localhost"


def build_message(
    *,
    mail_from: str,
    to: str,
    subject: str,
    content: Content,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """An RFC 5322 message: headers, a text part and an HTML alternative."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = Address(addr_spec=to)
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: machine-written; autoresponders must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    # Paragraphs wrapped at 76 columns and the link on a line of its own, sent as 7bit
    # when it is ASCII: the raw message (an .eml file) then shows the link as it is,
    # where quoted-printable would split it and turn `=` into `=3D`.
    text_lines = [textwrap.fill(p, width=76) for p in content.paragraphs]
    if content.link is not None:
        text_lines += [f"{content.link_label}:", content.link]
    if content.closing:
        text_lines.append(textwrap.fill(content.closing, width=76))
    text = "\n\n".join(text_lines) + "\n"
    message.set_content(text, cte=_transfer_encoding(text))
    page = _html(subject, content)
    message.add_alternative(page, subtype="html", cte=_transfer_encoding(page))
    return message


def _transfer_encoding(text: str) -> str:
    return "7bit" if text.isascii() else "quoted-printable"


def _html(subject: str, content: Content) -> str:
    parts = [f"<p>{html.escape(textwrap.fill(p, width=76))}</p>" for p in content.paragraphs]
    if content.link is not None:
        href = html.escape(content.link, quote=True)
        parts.append(f'<p><a href="{href}">{html.escape(content.link_label)}</a></p>')
        parts.append(f"<p>{html.escape(content.link)}</p>")
    if content.closing:
        parts.append(f"<p>{html.escape(textwrap.fill(content.closing, width=76))}</p>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
