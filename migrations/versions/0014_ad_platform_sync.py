"""What the campaign last set on the ad platform per item, so edits made on the platform are seen.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 11:50:00+00:00

Hand-written to match agency/db/models_ad_sync.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ad_platform_item_states"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("ads_campaign_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total_budget_cents", sa.BigInteger(), nullable=False),
        sa.Column("snapshot_hash", sa.Text(), nullable=False),
        sa.Column("pending_budget_cents", sa.BigInteger(), nullable=True),
        sa.Column("kept_round", sa.Integer(), nullable=True),
        sa.Column("last_round", sa.Integer(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("platform IN ('google-ads')", name=op.f(f"ck_{TABLE}_platform_valid")),
        sa.CheckConstraint("total_budget_cents >= 0", name=op.f(f"ck_{TABLE}_total_budget_non_negative")),
        sa.CheckConstraint(
            "pending_budget_cents IS NULL OR pending_budget_cents >= 0",
            name=op.f(f"ck_{TABLE}_pending_budget_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{TABLE}_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "item_id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(op.f(f"ix_{TABLE}_tenant_id"), TABLE, ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f(f"ix_{TABLE}_tenant_id"), table_name=TABLE)
    op.drop_table(TABLE)
