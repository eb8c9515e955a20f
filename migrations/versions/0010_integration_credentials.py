"""Tenant credentials for provider adapters, encrypted at rest, with versions for rotation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 11:45:00+00:00

Hand-written to match agency/db/models_integrations.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "integration_credentials"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=True),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("retire_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "provider IN ('hubspot', 'ga4', 'google-ads', 'linkedin', 'x', 'resend')",
            name=op.f(f"ck_{_TABLE}_provider_valid"),
        ),
        sa.CheckConstraint("status IN ('active', 'retiring', 'retired')", name=op.f(f"ck_{_TABLE}_status_valid")),
        sa.CheckConstraint("version >= 1", name=op.f(f"ck_{_TABLE}_version_positive")),
        sa.CheckConstraint(
            "ciphertext IS NOT NULL OR status = 'retired'", name=op.f(f"ck_{_TABLE}_ciphertext_until_retired")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{_TABLE}_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{_TABLE}")),
        sa.UniqueConstraint(
            "tenant_id", "provider", "version", name=op.f(f"uq_{_TABLE}_tenant_id_provider_version")
        ),
    )
    op.create_index(op.f(f"ix_{_TABLE}_tenant_id"), _TABLE, ["tenant_id"], unique=False)
    op.create_index(
        "uq_integration_credentials_tenant_id_provider_active", _TABLE, ["tenant_id", "provider"], unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )


def downgrade() -> None:
    op.drop_index("uq_integration_credentials_tenant_id_provider_active", table_name=_TABLE)
    op.drop_index(op.f(f"ix_{_TABLE}_tenant_id"), table_name=_TABLE)
    op.drop_table(_TABLE)
