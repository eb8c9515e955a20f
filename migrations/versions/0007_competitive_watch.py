"""Competitive watch: watched sources, the items found there, topics with momentum and proposals.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 08:40:00+00:00

Hand-written to match agency/db/models_competitive.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _jsonb() -> postgresql.JSONB:
    return postgresql.JSONB(astext_type=sa.Text())


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "competitor_watches",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("interval_s > 0", name=op.f("ck_competitor_watches_interval_positive")),
        _tenant_fk("competitor_watches"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_competitor_watches")),
    )

    op.create_table(
        "competitor_sources",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), server_default="", nullable=False),
        sa.Column("last_modified", sa.Text(), server_default="", nullable=False),
        sa.Column("last_status", sa.Text(), server_default="never", nullable=False),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('rss', 'atom', 'sitemap', 'page')", name=op.f("ck_competitor_sources_kind_valid")
        ),
        sa.CheckConstraint(
            "last_status IN ('never', 'ok', 'not_modified', 'disallowed', 'error')",
            name=op.f("ck_competitor_sources_last_status_valid"),
        ),
        _tenant_fk("competitor_sources"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_competitor_sources")),
        sa.UniqueConstraint("tenant_id", "url", name=op.f("uq_competitor_sources_tenant_id_url")),
    )
    op.create_index(op.f("ix_competitor_sources_tenant_id"), "competitor_sources", ["tenant_id"], unique=False)

    op.create_table(
        "competitor_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("embedding", _jsonb(), nullable=True),
        sa.Column("topic_key", sa.Text(), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_competitor_items_version_positive")),
        sa.ForeignKeyConstraint(
            ["source_id"], ["competitor_sources.id"], name=op.f("fk_competitor_items_source_id_competitor_sources"),
            ondelete="CASCADE",
        ),
        _tenant_fk("competitor_items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_competitor_items")),
        sa.UniqueConstraint("source_id", "external_id", name=op.f("uq_competitor_items_source_id_external_id")),
    )
    op.create_index(op.f("ix_competitor_items_source_id"), "competitor_items", ["source_id"], unique=False)
    op.create_index(op.f("ix_competitor_items_tenant_id"), "competitor_items", ["tenant_id"], unique=False)

    op.create_table(
        "competitor_topics",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("topic_key", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("keywords", _jsonb(), nullable=False),
        sa.Column("centroid", _jsonb(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("recent_count", sa.Integer(), nullable=False),
        sa.Column("previous_count", sa.Integer(), nullable=False),
        sa.Column("momentum", sa.Float(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("proposals", _jsonb(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("competitor_topics"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_competitor_topics")),
        sa.UniqueConstraint("tenant_id", "topic_key", name=op.f("uq_competitor_topics_tenant_id_topic_key")),
    )
    op.create_index(op.f("ix_competitor_topics_tenant_id"), "competitor_topics", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_competitor_topics_tenant_id"), table_name="competitor_topics")
    op.drop_table("competitor_topics")
    op.drop_index(op.f("ix_competitor_items_tenant_id"), table_name="competitor_items")
    op.drop_index(op.f("ix_competitor_items_source_id"), table_name="competitor_items")
    op.drop_table("competitor_items")
    op.drop_index(op.f("ix_competitor_sources_tenant_id"), table_name="competitor_sources")
    op.drop_table("competitor_sources")
    op.drop_table("competitor_watches")
