"""roles, session details (ip, user agent, last use) and the audit trail

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role", name=op.f("pk_user_roles")),
    )
    op.create_index(op.f("ix_user_roles_role"), "user_roles", ["role"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])
    op.create_index(op.f("ix_audit_events_event"), "audit_events", ["event"])
    op.create_index("ix_audit_events_user_id_id", "audit_events", ["user_id", "id"])

    # Sessions that exist already were last used, as far as anyone knows, when they began.
    # (Left nullable: making it NOT NULL would need SQLite's table copy, which
    # `authsvc migrate --sql` cannot print.)
    op.add_column("auth_sessions", sa.Column("last_used_at", UTCDateTime(), nullable=True))
    op.add_column("auth_sessions", sa.Column("ip", sa.String(length=45), nullable=True))
    op.add_column("auth_sessions", sa.Column("user_agent", sa.String(length=256), nullable=True))
    op.execute("UPDATE auth_sessions SET last_used_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("user_agent")
        batch.drop_column("ip")
        batch.drop_column("last_used_at")
    op.drop_index("ix_audit_events_user_id_id", table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_event"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_user_roles_role"), table_name="user_roles")
    op.drop_table("user_roles")
