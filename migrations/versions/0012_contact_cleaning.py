"""Contact imports: uploads, staged rows, the chunk ledger and the quarantine of rejected records.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 11:45:00+00:00

Hand-written to match agency/db/models_imports.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _jsonb() -> postgresql.JSONB:
    return postgresql.JSONB(astext_type=sa.Text())


def _import_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["import_id"], ["contact_imports.id"], name=op.f(f"fk_{table}_import_id_contact_imports"), ondelete="CASCADE"
    )


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "contact_imports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="received", nullable=False),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("upload", sa.LargeBinary(), nullable=True),
        sa.Column("upload_bytes", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("rows_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("clean", sa.Integer(), server_default="0", nullable=False),
        sa.Column("merged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quarantined", sa.Integer(), server_default="0", nullable=False),
        sa.Column("passes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('received', 'processing', 'completed', 'failed')", name=op.f("ck_contact_imports_status_valid")
        ),
        sa.CheckConstraint("clean + merged + quarantined = rows_done", name=op.f("ck_contact_imports_counts_add_up")),
        sa.CheckConstraint(
            "rows_total IS NULL OR rows_done <= rows_total", name=op.f("ck_contact_imports_rows_done_within_total")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_contact_imports_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_imports")),
    )
    op.create_index(op.f("ix_contact_imports_tenant_id"), "contact_imports", ["tenant_id"], unique=False)

    op.create_table(
        "contact_import_rows",
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("raw", _jsonb(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('inserted', 'merged', 'quarantined')",
            name=op.f("ck_contact_import_rows_outcome_valid"),
        ),
        _import_fk("contact_import_rows"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contact_import_rows_contact_id_contacts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("import_id", "row_number", name=op.f("pk_contact_import_rows")),
    )

    op.create_table(
        "contact_import_chunks",
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("pass_number", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), server_default="0", nullable=False),
        sa.Column("clean", sa.Integer(), server_default="0", nullable=False),
        sa.Column("merged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quarantined", sa.Integer(), server_default="0", nullable=False),
        _now("finished_at"),
        _import_fk("contact_import_chunks"),
        sa.PrimaryKeyConstraint("import_id", "pass_number", "chunk", name=op.f("pk_contact_import_chunks")),
    )

    op.create_table(
        "import_quarantine",
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("raw", _jsonb(), nullable=False),
        sa.Column("reasons", _jsonb(), nullable=False),
        sa.Column("status", sa.Text(), server_default="quarantined", nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("reprocessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('quarantined', 'reprocessed')", name=op.f("ck_import_quarantine_status_valid")
        ),
        _import_fk("import_quarantine"),
        sa.PrimaryKeyConstraint("import_id", "row_number", name=op.f("pk_import_quarantine")),
    )


def downgrade() -> None:
    op.drop_table("import_quarantine")
    op.drop_table("contact_import_chunks")
    op.drop_table("contact_import_rows")
    op.drop_index(op.f("ix_contact_imports_tenant_id"), table_name="contact_imports")
    op.drop_table("contact_imports")
