"""sign-in flows: signin_flows replaces mfa_challenges, recovery-code lookup tags, an
optional password

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-06

`mfa_challenges` held nothing but sign-ins waiting for a second factor, for five minutes at
most: it is dropped, not copied, so a second step under way during the upgrade starts over
with the password. Recovery codes issued before keep no lookup tag (null) and are still
found, the slow way, until the user makes new ones.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from app.models.base import UTCDateTime

revision: str = "0008"
# After 0009 and 0010 (made on other branches at the same time): one line of revisions.
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Placed in the column where a downgrade finds no password: no hasher recognises it, so
# such an account cannot sign in with a password under the older code either.
_NO_PASSWORD = "!"  # noqa: S105 - a marker, not a password


def upgrade() -> None:
    _password_nullable(True)
    op.add_column("mfa_recovery_codes", sa.Column("lookup", sa.String(length=32), nullable=True))
    op.create_index(
        "ix_mfa_recovery_codes_user_id_lookup", "mfa_recovery_codes", ["user_id", "lookup"]
    )
    op.drop_index(op.f("ix_mfa_challenges_expires_at"), table_name="mfa_challenges")
    op.drop_index(op.f("ix_mfa_challenges_user_id"), table_name="mfa_challenges")
    op.drop_table("mfa_challenges")
    op.create_table(
        "signin_flows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("throttle_key", sa.String(length=64), nullable=False),
        sa.Column("methods_done", sa.JSON(), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("next_step", sa.String(length=32), nullable=False),
        sa.Column("offered", sa.JSON(), nullable=False),
        sa.Column("continue_with", sa.String(length=32), nullable=False),
        sa.Column("continue_ref", sa.String(length=2048), nullable=True),
        sa.Column("credential_stamp", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_signin_flows_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_flows")),
    )
    op.create_index(op.f("ix_signin_flows_user_id"), "signin_flows", ["user_id"])
    op.create_index(op.f("ix_signin_flows_expires_at"), "signin_flows", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_signin_flows_expires_at"), table_name="signin_flows")
    op.drop_index(op.f("ix_signin_flows_user_id"), table_name="signin_flows")
    op.drop_table("signin_flows")
    op.create_table(
        "mfa_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("throttle_key", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_mfa_challenges_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_challenges")),
    )
    op.create_index(op.f("ix_mfa_challenges_user_id"), "mfa_challenges", ["user_id"])
    op.create_index(op.f("ix_mfa_challenges_expires_at"), "mfa_challenges", ["expires_at"])
    op.drop_index("ix_mfa_recovery_codes_user_id_lookup", table_name="mfa_recovery_codes")
    # In place, on SQLite (>= 3.35) too: no batch rebuild (see _password_nullable).
    op.drop_column("mfa_recovery_codes", "lookup")
    op.execute(
        sa.text(
            "UPDATE users SET hashed_password = :none WHERE hashed_password IS NULL"
        ).bindparams(none=_NO_PASSWORD)
    )
    _password_nullable(False)


def _password_nullable(nullable: bool) -> None:
    """Drop or restore NOT NULL on users.hashed_password.

    SQLite cannot alter a column, and the batch mode's copy-and-rename would DROP `users`:
    with foreign keys on, that deletes every row of every table that references it
    (ON DELETE CASCADE). Adding or removing NOT NULL changes nothing on disk, so SQLite's
    own procedure for such a change applies instead: edit the table's definition in
    `sqlite_schema` and bump the schema version (sqlite.org, "ALTER TABLE", section 7).
    The edit is one UPDATE, so `authsvc migrate --sql` prints it too.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.alter_column(
            "users", "hashed_password", existing_type=sa.String(length=255), nullable=nullable
        )
        return
    without = "hashed_password VARCHAR(255),"
    constrained = "hashed_password VARCHAR(255) NOT NULL,"
    old, new = (constrained, without) if nullable else (without, constrained)
    edit = sa.text(
        "UPDATE sqlite_master SET sql = replace(sql, :old, :new)"
        " WHERE type = 'table' AND name = 'users'"
    ).bindparams(old=old, new=new)
    op.execute("PRAGMA writable_schema = ON")
    op.execute(edit)
    if not context.is_offline_mode():
        # Open connections reread the schema when its version moves.
        version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
        bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    op.execute("PRAGMA writable_schema = OFF")
    if not context.is_offline_mode():
        sql = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'")
        ).scalar_one()
        if new not in sql:
            raise RuntimeError("users.hashed_password: unexpected table definition")
