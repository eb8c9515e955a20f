"""Initial schema: tenants, users, campaigns, steps, content, reviews, metrics, audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 16:12:01+00:00

Generated with autogenerate, then reordered and checked by hand against agency/db/models.py
(tests/integration/test_migrations.py asserts that the two stay identical).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _jsonb(name: str, *, nullable: bool, server_default: str | None = None) -> sa.Column:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text(server_default) if server_default else None,
        nullable=nullable,
    )


def _bigint_identity_pk() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )

    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_users_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("tenant_id", "email", name=op.f("uq_users_tenant_id_email")),
    )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _jsonb("brief", nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        _jsonb("plan", nullable=True),
        _jsonb("budget", nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        _created_at(),
        _created_at("updated_at"),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "COALESCE((brief->>'total_budget_cents')::numeric, 0) >= 0",
            name=op.f("ck_campaigns_brief_budget_non_negative"),
        ),
        sa.CheckConstraint(
            "budget IS NULL OR COALESCE((budget->>'total_budget_cents')::numeric, 0) >= 0",
            name=op.f("ck_campaigns_budget_non_negative"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'cancelled', 'failed')",
            name=op.f("ck_campaigns_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_campaigns_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_campaigns_workflow_id")),
    )
    op.create_index(op.f("ix_campaigns_tenant_id"), "campaigns", ["tenant_id"], unique=False)

    op.create_table(
        "campaign_steps",
        _bigint_identity_pk(),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_steps_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_steps")),
        sa.UniqueConstraint("campaign_id", "phase", name=op.f("uq_campaign_steps_campaign_id_phase")),
    )

    op.create_table(
        "content_items",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("publish_on", sa.Date(), nullable=False),
        sa.Column("approval_state", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        _created_at("updated_at"),
        sa.CheckConstraint(
            "approval_state IN ('pending', 'approved', 'rejected', 'expired', 'blocked')",
            name=op.f("ck_content_items_approval_state_valid"),
        ),
        sa.CheckConstraint("current_version >= 1", name=op.f("ck_content_items_current_version_positive")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_content_items_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_items")),
    )
    op.create_index(op.f("ix_content_items_campaign_id"), "content_items", ["campaign_id"], unique=False)

    op.create_table(
        "content_versions",
        _bigint_identity_pk(),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        _jsonb("compliance", nullable=False, server_default="'{}'::jsonb"),
        _created_at(),
        sa.CheckConstraint(
            "prompt_tokens >= 0 AND completion_tokens >= 0", name=op.f("ck_content_versions_tokens_non_negative")
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_content_versions_version_positive")),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["content_items.id"],
            name=op.f("fk_content_versions_item_id_content_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_versions")),
        sa.UniqueConstraint("item_id", "version", name=op.f("uq_content_versions_item_id_version")),
    )

    op.create_table(
        "content_reviews",
        _bigint_identity_pk(),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected', 'expired')", name=op.f("ck_content_reviews_decision_valid")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["content_items.id"],
            name=op.f("fk_content_reviews_item_id_content_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_reviews")),
        sa.UniqueConstraint(
            "item_id", "version", "decision", name=op.f("uq_content_reviews_item_id_version_decision")
        ),
    )

    op.create_table(
        "channel_metrics",
        _bigint_identity_pk(),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=False),
        sa.Column("conversions", sa.BigInteger(), nullable=False),
        sa.Column("spend_cents", sa.BigInteger(), nullable=False),
        _created_at("collected_at"),
        sa.CheckConstraint(
            "impressions >= 0 AND clicks >= 0 AND conversions >= 0 AND spend_cents >= 0",
            name=op.f("ck_channel_metrics_metrics_non_negative"),
        ),
        sa.CheckConstraint("round >= 0", name=op.f("ck_channel_metrics_round_non_negative")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_channel_metrics_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["content_items.id"],
            name=op.f("fk_channel_metrics_item_id_content_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_metrics")),
        sa.UniqueConstraint("item_id", "round", name=op.f("uq_channel_metrics_item_id_round")),
    )
    op.create_index(op.f("ix_channel_metrics_campaign_id"), "channel_metrics", ["campaign_id"], unique=False)

    # No foreign keys on the audit trail: it must outlive the rows it describes.
    op.create_table(
        "audit_events",
        _bigint_identity_pk(),
        sa.Column("tenant_id", sa.UUID(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("subject_type", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        _jsonb("detail", nullable=False, server_default="'{}'::jsonb"),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_created_at"), "audit_events", ["created_at"], unique=False)
    op.create_index("ix_audit_events_subject", "audit_events", ["subject_type", "subject_id"], unique=False)


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes and constraints.
    for table in (
        "audit_events",
        "channel_metrics",
        "content_reviews",
        "content_versions",
        "content_items",
        "campaign_steps",
        "campaigns",
        "users",
        "tenants",
    ):
        op.drop_table(table)
