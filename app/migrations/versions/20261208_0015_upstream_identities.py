"""sign-in with other providers: upstream_identities, upstream_states, signin_flows.provider

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upstream_identities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("provider", "subject", name="uq_upstream_identities_subject"),
        sa.UniqueConstraint("user_id", "provider", name="uq_upstream_identities_user_provider"),
    )
    op.create_index("ix_upstream_identities_user_id", "upstream_identities", ["user_id"])
    op.create_table(
        "upstream_states",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("browser", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("nonce", sa.String(64), nullable=True),
        sa.Column("code_verifier", sa.String(128), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("return_to", sa.String(2048), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_upstream_states_browser", "upstream_states", ["browser"])
    op.create_index("ix_upstream_states_expires_at", "upstream_states", ["expires_at"])
    with op.batch_alter_table("signin_flows") as batch:
        batch.add_column(sa.Column("provider", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signin_flows") as batch:
        batch.drop_column("provider")
    op.drop_index("ix_upstream_states_expires_at", table_name="upstream_states")
    op.drop_index("ix_upstream_states_browser", table_name="upstream_states")
    op.drop_table("upstream_states")
    op.drop_index("ix_upstream_identities_user_id", table_name="upstream_identities")
    op.drop_table("upstream_identities")
