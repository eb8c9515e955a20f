"""The tenant's contact and company store (imports clean into it, CRM sync mirrors it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 11:40:00+00:00

Hand-written to match agency/db/models_contacts.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _jsonb_object(name: str) -> sa.Column:
    return sa.Column(
        name, postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
    )


def _sync_columns(table: str) -> list:
    return [
        _jsonb_object("properties"),
        _jsonb_object("field_modified_at"),
        sa.Column("source", sa.Text(), server_default="api", nullable=False),
        sa.Column("crm_id", sa.Text(), nullable=True),
        sa.Column("synced_hash", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("source IN ('import', 'crm', 'api')", name=op.f(f"ck_{table}_source_valid")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=True),
        *_sync_columns("companies"),
    )
    op.create_index(op.f("ix_companies_tenant_id"), "companies", ["tenant_id"])
    op.create_index(
        "uq_companies_tenant_id_domain_live", "companies", ["tenant_id", "domain"], unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND domain IS NOT NULL"),
    )
    op.create_index(
        "uq_companies_tenant_id_crm_id", "companies", ["tenant_id", "crm_id"], unique=True,
        postgresql_where=sa.text("crm_id IS NOT NULL"),
    )

    op.create_table(
        "contacts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("job_title", sa.Text(), nullable=True),
        sa.Column("lifecycle_stage", sa.Text(), nullable=True),
        sa.Column("company_id", sa.UUID(), nullable=True),
        _jsonb_object("utm"),
        *_sync_columns("contacts"),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_contacts_company_id_companies"), ondelete="SET NULL"
        ),
    )
    op.create_index(op.f("ix_contacts_tenant_id"), "contacts", ["tenant_id"])
    op.create_index(op.f("ix_contacts_company_id"), "contacts", ["company_id"])
    op.create_index(
        "uq_contacts_tenant_id_email_live", "contacts", ["tenant_id", "email"], unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
    )
    op.create_index(
        "uq_contacts_tenant_id_crm_id", "contacts", ["tenant_id", "crm_id"], unique=True,
        postgresql_where=sa.text("crm_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("contacts")
    op.drop_table("companies")
