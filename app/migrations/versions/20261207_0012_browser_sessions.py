"""browser sessions: auth_sessions.browser_key, auth_time, amr

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("browser_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("auth_time", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("amr", sa.JSON(), nullable=True))
        batch.create_index("ix_auth_sessions_browser_key", ["browser_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_index("ix_auth_sessions_browser_key")
        batch.drop_column("amr")
        batch.drop_column("auth_time")
        batch.drop_column("browser_key")
