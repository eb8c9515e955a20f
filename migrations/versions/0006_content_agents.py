"""Content agents: versioned brand profiles, content parts/generation/embedding, recommendations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 08:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON_EMPTY = sa.text("'{}'::jsonb")


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("brand_version", sa.Integer(), nullable=True))
    for name in ("parts", "generation"):
        op.add_column(
            "content_versions",
            sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), server_default=_JSON_EMPTY, nullable=False),
        )
    op.add_column("content_versions", sa.Column("embedding", postgresql.JSONB(astext_type=sa.Text()), nullable=True))

    op.create_table(
        "brand_profiles",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.CheckConstraint("version >= 1", name=op.f("ck_brand_profiles_version_positive")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_brand_profiles_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brand_profiles")),
        sa.UniqueConstraint("tenant_id", "version", name=op.f("uq_brand_profiles_tenant_id_version")),
    )
    op.create_index(op.f("ix_brand_profiles_tenant_id"), "brand_profiles", ["tenant_id"], unique=False)

    op.create_table(
        "content_recommendations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("recommendations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), server_default=_JSON_EMPTY, nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_content_recommendations_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_content_recommendations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_recommendations")),
    )
    op.create_index(
        op.f("ix_content_recommendations_tenant_id"), "content_recommendations", ["tenant_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_content_recommendations_tenant_id"), table_name="content_recommendations")
    op.drop_table("content_recommendations")
    op.drop_index(op.f("ix_brand_profiles_tenant_id"), table_name="brand_profiles")
    op.drop_table("brand_profiles")
    op.drop_column("content_versions", "embedding")
    op.drop_column("content_versions", "generation")
    op.drop_column("content_versions", "parts")
    op.drop_column("campaigns", "brand_version")
