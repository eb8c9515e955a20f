"""Decision agents: market history, fitted market models, allocation changes, experiments, reports.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 06:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON_EMPTY = sa.text("'{}'::jsonb")


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "market_weeks",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("spend_cents", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("outcome", sa.Float(), nullable=False),
        sa.Column("source", sa.Text(), server_default="import", nullable=False),
        _created_at(),
        sa.CheckConstraint("outcome >= 0", name=op.f("ck_market_weeks_outcome_non_negative")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_market_weeks_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_weeks")),
        sa.UniqueConstraint("tenant_id", "week_start", name=op.f("uq_market_weeks_tenant_id_week_start")),
    )
    op.create_index(op.f("ix_market_weeks_tenant_id"), "market_weeks", ["tenant_id"], unique=False)

    op.create_table(
        "market_fits",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("weeks", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("model", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("goodness", postgresql.JSONB(astext_type=sa.Text()), server_default=_JSON_EMPTY, nullable=False),
        sa.Column("gate", postgresql.JSONB(astext_type=sa.Text()), server_default=_JSON_EMPTY, nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_market_fits_campaign_id_campaigns"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_market_fits_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_fits")),
    )
    op.create_index(op.f("ix_market_fits_tenant_id"), "market_fits", ["tenant_id"], unique=False)

    op.create_table(
        "allocation_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("before_cents", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("after_cents", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("decided_by", sa.Text(), server_default="", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('applied', 'pending', 'approved', 'rejected', 'expired')",
            name=op.f("ck_allocation_changes_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_allocation_changes_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_changes")),
        sa.UniqueConstraint("campaign_id", "round", name=op.f("uq_allocation_changes_campaign_id_round")),
    )
    op.create_index(op.f("ix_allocation_changes_campaign_id"), "allocation_changes", ["campaign_id"], unique=False)

    op.create_table(
        "experiments",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("control", sa.Text(), nullable=False),
        sa.Column("arms", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("winner", sa.Text(), nullable=True),
        sa.Column("peeks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), server_default=_JSON_EMPTY, nullable=False),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'winner', 'no_difference', 'stopped')", name=op.f("ck_experiments_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_experiments_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index(op.f("ix_experiments_campaign_id"), "experiments", ["campaign_id"], unique=False)

    op.create_table(
        "reports",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("html_path", sa.Text(), nullable=True),
        sa.Column("pdf_path", sa.Text(), nullable=True),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), server_default=_JSON_EMPTY, nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'ready', 'failed')", name=op.f("ck_reports_status_valid")),
        sa.CheckConstraint("scope IN ('campaign', 'tenant')", name=op.f("ck_reports_scope_valid")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_reports_campaign_id_campaigns"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_reports_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index(op.f("ix_reports_tenant_id"), "reports", ["tenant_id"], unique=False)


def downgrade() -> None:
    for table in ("reports", "experiments", "allocation_changes", "market_fits", "market_weeks"):
        op.drop_table(table)
