"""The OpenID provider: clients with redirect URIs, authorization requests, codes,
consents, application sessions as children of a browser session, ID-token keys

Revision ID: 0013
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from app.models.base import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _before(name: str) -> sa.Table | None:
    """The table as the previous revision left it, for `authsvc migrate --sql`: without a
    database to reflect, SQLite's batch mode needs it to write the copy-and-move."""
    if not context.is_offline_mode():
        return None
    meta = sa.MetaData()
    if name == "oauth_clients":
        return sa.Table(
            name,
            meta,
            sa.Column("client_id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("secret_hash", sa.String(64), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
        )
    if name == "auth_sessions":
        return sa.Table(
            name,
            meta,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("user_id", sa.Integer(), nullable=False, index=True),
            sa.Column("refresh_jti", sa.String(32), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
            sa.Column("last_used_at", UTCDateTime()),
            sa.Column("ip", sa.String(45)),
            sa.Column("user_agent", sa.String(256)),
            sa.Column("browser_key", sa.String(64), unique=True),
            sa.Column("auth_time", UTCDateTime()),
            sa.Column("amr", sa.JSON()),
        )
    return sa.Table(
        name,
        meta,
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("current", sa.Boolean()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("activated_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), index=True),
        sa.Column("revoked_at", UTCDateTime()),
        sa.UniqueConstraint("current", name="uq_signing_keys_current"),
    )


def upgrade() -> None:
    # Clients of version 2 (introspection only) keep their secret and get no redirect URI.
    with op.batch_alter_table("oauth_clients", copy_from=_before("oauth_clients")) as batch:
        batch.alter_column("secret_hash", existing_type=sa.String(length=64), nullable=True)
        batch.add_column(sa.Column("redirect_uris", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("first_party", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("updated_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("auth_sessions", copy_from=_before("auth_sessions")) as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("client_id", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            op.f("fk_auth_sessions_parent_id_auth_sessions"),
            "auth_sessions",
            ["parent_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            op.f("fk_auth_sessions_client_id_oauth_clients"),
            "oauth_clients",
            ["client_id"],
            ["client_id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_auth_sessions_parent_id"), ["parent_id"])
    with op.batch_alter_table("signing_keys", copy_from=_before("signing_keys")) as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="access")
        )
        batch.drop_constraint(op.f("uq_signing_keys_current"), type_="unique")
        batch.create_unique_constraint(op.f("uq_signing_keys_purpose"), ["purpose", "current"])
    op.create_table(
        "oauth_authorization_requests",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("scope", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.String(length=2048), nullable=True),
        sa.Column("nonce", sa.String(length=512), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("prompt", sa.String(length=64), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("login_hint", sa.String(length=320), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_authorization_requests_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorization_requests")),
    )
    op.create_index(
        op.f("ix_oauth_authorization_requests_expires_at"),
        "oauth_authorization_requests",
        ["expires_at"],
    )
    op.create_table(
        "oauth_codes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("scope", sa.String(length=1024), nullable=False),
        sa.Column("nonce", sa.String(length=512), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("browser_session_id", sa.String(length=32), nullable=False),
        sa.Column("auth_time", UTCDateTime(), nullable=False),
        sa.Column("amr", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("grant_session_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_codes_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oauth_codes_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["browser_session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_oauth_codes_browser_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_codes")),
    )
    op.create_index(op.f("ix_oauth_codes_expires_at"), "oauth_codes", ["expires_at"])
    op.create_index(
        op.f("ix_oauth_codes_browser_session_id"), "oauth_codes", ["browser_session_id"]
    )
    op.create_table(
        "oauth_consents",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oauth_consents_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_oauth_consents_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "client_id", name=op.f("pk_oauth_consents")),
    )


def downgrade() -> None:
    op.drop_table("oauth_consents")
    op.drop_index(op.f("ix_oauth_codes_browser_session_id"), table_name="oauth_codes")
    op.drop_index(op.f("ix_oauth_codes_expires_at"), table_name="oauth_codes")
    op.drop_table("oauth_codes")
    op.drop_index(
        op.f("ix_oauth_authorization_requests_expires_at"),
        table_name="oauth_authorization_requests",
    )
    op.drop_table("oauth_authorization_requests")
    # Keys of the ID tokens have no place in the older schema.
    op.execute("DELETE FROM signing_keys WHERE purpose <> 'access'")
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_constraint(op.f("uq_signing_keys_purpose"), type_="unique")
        batch.create_unique_constraint(op.f("uq_signing_keys_current"), ["current"])
        batch.drop_column("purpose")
    # Application sessions cannot exist without their columns: they end.
    op.execute("DELETE FROM auth_sessions WHERE parent_id IS NOT NULL")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_index(op.f("ix_auth_sessions_parent_id"))
        batch.drop_constraint(op.f("fk_auth_sessions_client_id_oauth_clients"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_auth_sessions_parent_id_auth_sessions"), type_="foreignkey")
        batch.drop_column("client_id")
        batch.drop_column("parent_id")
    # Public clients have no secret, which the older schema requires: they go.
    op.execute("DELETE FROM oauth_clients WHERE secret_hash IS NULL")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("first_party")
        batch.drop_column("public")
        batch.drop_column("post_logout_redirect_uris")
        batch.drop_column("redirect_uris")
        batch.alter_column("secret_hash", existing_type=sa.String(length=64), nullable=False)
