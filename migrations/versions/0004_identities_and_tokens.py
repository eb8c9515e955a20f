"""Identities, signing keys, refresh tokens, API keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 22:40:00+00:00

Hand-written to match agency/db/models_identity.py and the ``users`` columns in
agency/db/models.py (tests/integration/test_migrations.py keeps them identical).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _uuid_pk() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _timestamp(name: str, *, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _scopes() -> sa.Column:
    return sa.Column(
        "scopes", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False
    )


def _jsonb(name: str) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), nullable=False)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column("users", _timestamp("disabled_at", nullable=True))

    op.create_table(
        "service_identities",
        _uuid_pk(),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _scopes(),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        _timestamp("disabled_at", nullable=True),
        _tenant_fk("service_identities"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_identities")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_service_identities_tenant_id_name")),
    )

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        _jsonb("public_jwk"),
        _jsonb("private_jwk"),
        _timestamp("created_at", nullable=False),
        _timestamp("retired_at", nullable=True),
        _timestamp("verify_until", nullable=True),
        sa.CheckConstraint(
            "verify_until IS NULL OR retired_at IS NOT NULL",
            name=op.f("ck_signing_keys_verify_until_only_when_retired"),
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )

    op.create_table(
        "refresh_tokens",
        _uuid_pk(),
        sa.Column("family_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("service_identity_id", sa.UUID(), nullable=True),
        _timestamp("issued_at", nullable=False),
        _timestamp("expires_at", nullable=False),
        _timestamp("family_expires_at", nullable=False),
        _timestamp("used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (service_identity_id IS NULL)",
            name=op.f("ck_refresh_tokens_exactly_one_subject"),
        ),
        sa.CheckConstraint(
            "expires_at <= family_expires_at", name=op.f("ck_refresh_tokens_expires_within_family")
        ),
        _tenant_fk("refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_refresh_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["service_identity_id"],
            ["service_identities.id"],
            name=op.f("fk_refresh_tokens_service_identity_id_service_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"], unique=False)

    op.create_table(
        "api_keys",
        _uuid_pk(),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("lookup_id", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        _scopes(),
        _timestamp("created_at", nullable=False),
        _timestamp("expires_at", nullable=True),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
        sa.Column("replaced_by_id", sa.UUID(), nullable=True),
        _timestamp("overlap_until", nullable=True),
        sa.CheckConstraint("name <> ''", name=op.f("ck_api_keys_name_not_empty")),
        _tenant_fk("api_keys"),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["api_keys.id"],
            name=op.f("fk_api_keys_replaced_by_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("lookup_id", name=op.f("uq_api_keys_lookup_id")),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"], unique=False)


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes and constraints.
    for table in ("api_keys", "refresh_tokens", "signing_keys", "service_identities"):
        op.drop_table(table)
    op.drop_column("users", "disabled_at")
    op.drop_column("users", "password_hash")
