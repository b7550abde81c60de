"""Re-normalise stored emails to the one canonical form (NFKC, IDNA domain, lower case)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Until now an address was stored as pydantic's EmailStr left it (NFC, not NFKC) in lower
case, so `alice@…` typed in fullwidth letters and in plain ones were two accounts, and a
login never found an account whose stored address differed from the typed one by
normalisation. Every look-up
now uses `app.utils.email_address`; this rewrites each stored address to that form.

An address is left as it is, with a warning naming the user id (never the address), when
its canonical form is already another account's (the two were the look-alike duplicates
this fixes: the account keeps working by username, and by the exact old address), or when
it is no longer accepted (a mixed-script local part). No schema change.

Downgrade changes nothing: canonical addresses are lower-case, which is all the previous
code assumed, so it finds every account as before.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from app.utils.email_address import EmailAddressError, canonical_email

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

_CHUNK = 5_000
_users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))


def upgrade() -> None:
    if context.is_offline_mode():
        # `authsvc migrate --sql` prints DDL; a data rewrite needs the rows, so it is not
        # expressible there: run `authsvc migrate` against the database instead.
        log.warning("0003 re-normalises stored emails only when run against a database")
        return
    connection = op.get_bind()
    current: dict[int, str] = {}
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(_users.c.id, _users.c.email)
            .where(_users.c.id > last_id)
            .order_by(_users.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        current.update((row.id, row.email) for row in rows)
        last_id = rows[-1].id

    held = {email: user_id for user_id, email in current.items()}
    changes: dict[int, str] = {}
    for user_id, email in current.items():
        try:
            target = canonical_email(email)
        except EmailAddressError:
            log.warning("email of user %d is no longer accepted; left as it is", user_id)
            continue
        if target == email:
            continue
        # The canonical form is idempotent, so an address already in it never changes: a
        # target held by another row stays that row's, and the later claimant keeps its own.
        owner = held.get(target)
        if owner is not None and owner != user_id:
            log.warning(
                "email of user %d is a look-alike of user %d's; left as it is", user_id, owner
            )
            continue
        held[target] = user_id
        changes[user_id] = target

    for user_id, target in changes.items():
        connection.execute(_users.update().where(_users.c.id == user_id).values(email=target))
    if changes:
        log.info("re-normalised %d stored email address(es)", len(changes))


def downgrade() -> None:
    """Nothing to undo: see the module docstring."""
