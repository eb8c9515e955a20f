"""Competitive watch tables: the sources a tenant watches, the items found there, the topics.

Same Base and naming convention as agency.db.models (migration 0007).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Identity, Integer, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base, _created_at, _in, _updated_at

SOURCE_KINDS = ("rss", "atom", "sitemap", "page")
POLL_STATUSES = ("never", "ok", "not_modified", "disallowed", "error")


class CompetitorWatch(Base):
    """A tenant's watch: how often its sources are polled (the Temporal Schedule follows this)."""

    __tablename__ = "competitor_watches"
    __table_args__ = (CheckConstraint("interval_s > 0", name="interval_positive"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    interval_s: Mapped[int] = mapped_column(Integer)
    schedule_id: Mapped[str]
    updated_at: Mapped[datetime] = _updated_at()


class CompetitorSource(Base):
    """A competitor's feed, sitemap or page, with what its last poll learned (validators, status)."""

    __tablename__ = "competitor_sources"
    __table_args__ = (
        UniqueConstraint("tenant_id", "url"),
        CheckConstraint(_in("kind", SOURCE_KINDS), name="kind_valid"),
        CheckConstraint(_in("last_status", POLL_STATUSES), name="last_status_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str]
    kind: Mapped[str]
    # Validators of the last full response: sent back as If-None-Match / If-Modified-Since.
    etag: Mapped[str] = mapped_column(server_default="")
    last_modified: Mapped[str] = mapped_column(server_default="")
    last_status: Mapped[str] = mapped_column(server_default="never")
    last_http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(server_default="")
    last_polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class CompetitorItem(Base):
    """One post / entry / page seen at a source; ``fingerprint`` tells a changed item from an unchanged one."""

    __tablename__ = "competitor_items"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("competitor_sources.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str]
    url: Mapped[str]
    title: Mapped[str]
    text: Mapped[str]
    fingerprint: Mapped[str]
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    embedding: Mapped[list[float] | None] = mapped_column(JSONB)  # cleared when the item changes
    topic_key: Mapped[str | None]


class CompetitorTopic(Base):
    """A cluster of competitor items as of the last poll, with its momentum and proposed responses."""

    __tablename__ = "competitor_topics"
    __table_args__ = (UniqueConstraint("tenant_id", "topic_key"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    topic_key: Mapped[str]
    label: Mapped[str]
    keywords: Mapped[list[str]] = mapped_column(JSONB)
    centroid: Mapped[list[float]] = mapped_column(JSONB)
    item_count: Mapped[int] = mapped_column(Integer)
    recent_count: Mapped[int] = mapped_column(Integer)
    previous_count: Mapped[int] = mapped_column(Integer)
    momentum: Mapped[float]
    window_days: Mapped[int] = mapped_column(Integer)
    proposals: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # Proposal list
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
