"""Persistence of the content performance analysis: what was published and how it did, and the
numbered recommendation sets the strategy agent reads.

Same rules as agency.db.repository: idempotent writes (activities are retried), callers own
the transaction, every query scoped to one tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from agency.db.models import Campaign, ChannelMetric, ContentItem, ContentRecommendationSet, ContentVersion, Tenant


@dataclass(frozen=True)
class PublishedItem:
    """One published item of a tenant: its current copy and its latest cumulative metrics."""

    item_id: str
    campaign_id: str
    channel: str
    format: str
    publish_on: date
    published_at: datetime | None
    title: str
    body: str
    generation: dict[str, Any]
    impressions: int
    clicks: int
    conversions: int
    spend_cents: int


class ContentInsightsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def campaign_tenant(self, campaign_id: str) -> tuple[uuid.UUID, str] | None:
        """(tenant id, tenant slug) of a campaign; None if the campaign is unknown."""
        row = (
            await self.session.execute(
                select(Tenant.id, Tenant.slug)
                .join(Campaign, Campaign.tenant_id == Tenant.id)
                .where(Campaign.id == campaign_id)
            )
        ).first()
        return (row[0], row[1]) if row else None

    async def published_items(self, tenant_id: uuid.UUID) -> list[PublishedItem]:
        """Every published item of the tenant's campaigns with metrics, by item id.

        Metrics are cumulative per collection round, so the latest round of each item is its total.
        """
        latest = (
            select(ChannelMetric)
            .ext(distinct_on(ChannelMetric.item_id))
            .order_by(ChannelMetric.item_id, ChannelMetric.round.desc())
            .subquery()
        )
        metric = aliased(ChannelMetric, latest)
        stmt = (
            select(ContentItem, ContentVersion, metric)
            .join(Campaign, Campaign.id == ContentItem.campaign_id)
            .join(
                ContentVersion,
                (ContentVersion.item_id == ContentItem.id) & (ContentVersion.version == ContentItem.current_version),
            )
            .join(metric, metric.item_id == ContentItem.id)
            .where(Campaign.tenant_id == tenant_id, ContentItem.published_at.is_not(None))
            .order_by(ContentItem.id)
        )
        return [
            PublishedItem(
                item_id=item.id, campaign_id=item.campaign_id, channel=item.channel, format=item.format,
                publish_on=item.publish_on, published_at=item.published_at, title=version.title, body=version.body,
                generation=dict(version.generation or {}), impressions=int(m.impressions), clicks=int(m.clicks),
                conversions=int(m.conversions), spend_cents=int(m.spend_cents),
            )
            for item, version, m in (await self.session.execute(stmt)).all()
        ]

    async def save_recommendations(
        self,
        tenant_id: uuid.UUID,
        campaign_id: str | None,
        recommendations: list[dict[str, Any]],
        summary: dict[str, Any],
    ) -> int:
        """The analysis of one (tenant, campaign) run; a retry replaces it instead of adding a row.

        The table has no unique key on (tenant, campaign), so a transaction-scoped advisory lock
        on that pair serialises concurrent attempts between the lookup and the write.
        """
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"content_recommendations:{tenant_id}:{campaign_id or ''}"},
        )
        existing = await self.session.scalar(
            select(ContentRecommendationSet)
            .where(
                ContentRecommendationSet.tenant_id == tenant_id,
                ContentRecommendationSet.campaign_id.is_not_distinct_from(campaign_id),
            )
            .order_by(ContentRecommendationSet.id)
            .limit(1)
            .with_for_update()
        )
        if existing is not None:
            existing.recommendations = recommendations
            existing.summary = summary
            await self.session.flush()
            return existing.id
        row = ContentRecommendationSet(
            tenant_id=tenant_id, campaign_id=campaign_id, recommendations=recommendations, summary=summary
        )
        self.session.add(row)
        await self.session.flush()
        return row.id

    async def latest_recommendations(self, tenant_id: uuid.UUID) -> ContentRecommendationSet | None:
        """The set in force: the tenant's newest analysis."""
        return await self.session.scalar(
            select(ContentRecommendationSet)
            .where(ContentRecommendationSet.tenant_id == tenant_id)
            .order_by(ContentRecommendationSet.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )

    async def count_recommendation_sets(self, tenant_id: uuid.UUID) -> int:
        return (
            await self.session.scalar(
                select(func.count()).where(ContentRecommendationSet.tenant_id == tenant_id)
            )
            or 0
        )
