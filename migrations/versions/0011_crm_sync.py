"""CRM sync state: cursors, conflicts waiting for review, deletion tracking.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 11:45:00+00:00

Hand-written to match agency/db/models_sync.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OBJECT_TYPES = "object_type IN ('companies', 'contacts')"


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def _jsonb_object(name: str) -> sa.Column:
    return sa.Column(
        name, postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
    )


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "crm_sync_states",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("pull_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pull_after", sa.Text(), nullable=True),
        sa.Column("pull_max_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("push_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("push_after_id", sa.UUID(), nullable=True),
        sa.Column("archived_after", sa.Text(), nullable=True),
        sa.Column("archived_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rounds", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_round_at", sa.DateTime(timezone=True), nullable=True),
        _jsonb_object("last_stats"),
        _jsonb_object("totals"),
        *_timestamps(),
        sa.CheckConstraint(_OBJECT_TYPES, name=op.f("ck_crm_sync_states_object_type_valid")),
        _tenant_fk("crm_sync_states"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_sync_states")),
        sa.UniqueConstraint("tenant_id", "object_type", name=op.f("uq_crm_sync_states_tenant_id_object_type")),
    )

    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("local_id", sa.UUID(), nullable=False),
        sa.Column("crm_id", sa.Text(), nullable=True),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("ours", sa.Text(), nullable=True),
        sa.Column("theirs", sa.Text(), nullable=True),
        sa.Column("ours_modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("theirs_modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_value", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(_OBJECT_TYPES, name=op.f("ck_sync_conflicts_object_type_valid")),
        sa.CheckConstraint("status IN ('pending', 'resolved')", name=op.f("ck_sync_conflicts_status_valid")),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('ours', 'theirs', 'value', 'superseded')",
            name=op.f("ck_sync_conflicts_resolution_valid"),
        ),
        _tenant_fk("sync_conflicts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )
    op.create_index(
        "uq_sync_conflicts_pending_field", "sync_conflicts", ["tenant_id", "object_type", "local_id", "field"],
        unique=True, postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_sync_conflicts_tenant_id_status", "sync_conflicts", ["tenant_id", "status"])

    op.create_table(
        "crm_sync_deletions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("local_id", sa.UUID(), nullable=True),
        sa.Column("crm_id", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(_OBJECT_TYPES, name=op.f("ck_crm_sync_deletions_object_type_valid")),
        sa.CheckConstraint("side IN ('crm', 'ours')", name=op.f("ck_crm_sync_deletions_side_valid")),
        sa.CheckConstraint(
            "action IN ('tombstone', 'recreate', 'review', 'archive', 'keep')",
            name=op.f("ck_crm_sync_deletions_action_valid"),
        ),
        _tenant_fk("crm_sync_deletions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_sync_deletions")),
        sa.UniqueConstraint(
            "tenant_id", "object_type", "crm_id", "side", name=op.f("uq_crm_sync_deletions_tenant_id_object_type_crm_id_side")
        ),
    )


def downgrade() -> None:
    op.drop_table("crm_sync_deletions")
    op.drop_table("sync_conflicts")
    op.drop_table("crm_sync_states")
