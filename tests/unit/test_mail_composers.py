"""Every kind of mail the outbox can hold has a flow that says what it says."""

from __future__ import annotations

import pytest

import app.main  # noqa: F401 - every flow, and with it every composer, as a server loads them
from app.mail.composers import composer_of
from app.mail.outbox import SUBJECTS
from app.models.mail import MailKind


@pytest.mark.parametrize("kind", list(MailKind))
def test_each_kind_has_a_composer_and_a_subject(kind: MailKind) -> None:
    assert callable(composer_of(kind))
    assert SUBJECTS[kind]
