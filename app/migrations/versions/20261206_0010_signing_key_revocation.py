"""signing_keys.revoked_at: a key withdrawn at once (`authsvc keys revoke`)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("signing_keys", sa.Column("revoked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # In place, on SQLite (>= 3.35) too, as in 0007.
    op.drop_column("signing_keys", "revoked_at")
