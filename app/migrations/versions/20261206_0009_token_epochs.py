"""one-time tokens bound to the account's state: users.token_epoch, one_time_tokens.epoch

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "one_time_tokens",
        sa.Column("epoch", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("one_time_tokens") as batch:
        batch.drop_column("epoch")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_epoch")
