"""Content insight activities (orchestration queue): analyze what the tenant published, keep the
numbered recommendations, and hand them (with topic trends) to the strategy agent's calendar.

The analysis is milliseconds of numpy for thousands of items; it runs in a worker thread anyway
so a large tenant never stalls the worker's event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_error
from agency.agents.performance import PerformanceRow, analyze_performance, own_topic_trends
from agency.agents.strategy import CadenceRule, build_content_calendar
from agency.contracts import (
    ActivityName,
    CalendarRequest,
    ContentCalendar,
    ContentRecommendation,
    StrategyInputs,
    TopicTrend,
)
from agency.db.competitive import CompetitiveRepository
from agency.db.content_insights import ContentInsightsRepository, PublishedItem
from agency.db.repository import CampaignRepository
from agency.serialization import from_json


def performance_row(item: PublishedItem) -> PerformanceRow:
    """A stored item as the analyzer reads it.

    The weekday is the calendar's publish date; the hour is the one the strategy chose (kept in
    the version's generation record), else the hour it actually went out (UTC).
    """
    hour = item.generation.get("publish_hour")
    if hour is None and item.published_at is not None:
        hour = item.published_at.hour
    return PerformanceRow(
        item_id=item.item_id, campaign_id=item.campaign_id, channel=item.channel, format=item.format,
        topic=str(item.generation.get("topic") or ""), published_on=item.publish_on.isoformat(),
        publish_hour=None if hour is None else int(hour), length_chars=len(item.title) + len(item.body),
        impressions=item.impressions, clicks=item.clicks, conversions=item.conversions, spend_cents=item.spend_cents,
    )


class ContentInsightActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, cadence: dict[str, CadenceRule] | None = None
    ) -> None:
        self._sessions = sessions
        self._cadence = cadence

    @activity.defn(name=ActivityName.ANALYZE_CONTENT_PERFORMANCE)
    async def analyze_content_performance(self, campaign_id: str) -> list[ContentRecommendation]:
        """Analyze every published item of the campaign's tenant; store the set for this campaign
        (a retry replaces it) and return it."""
        async with self._sessions() as session:
            repo = ContentInsightsRepository(session)
            tenant = await repo.campaign_tenant(campaign_id)
            if tenant is None:
                raise business_error(LookupError(f"unknown campaign {campaign_id!r}"))
            items = await repo.published_items(tenant[0])
        rows = [performance_row(i) for i in items]
        analysis, trends = await asyncio.to_thread(lambda: (analyze_performance(rows), own_topic_trends(rows)))
        recommendations = analysis.recommendations
        summary = {
            **analysis.summary,
            "campaigns": sorted({r.campaign_id for r in rows}),
            "own_trends": [asdict(t) for t in trends],
        }
        async with self._sessions() as session, session.begin():
            set_id = await ContentInsightsRepository(session).save_recommendations(
                tenant[0], campaign_id, [asdict(r) for r in recommendations], summary
            )
            await CampaignRepository(session).record_agent_action(
                campaign_id=campaign_id, actor="agent:performance", action="content.analyzed",
                subject_type="campaign", subject_id=campaign_id,
                detail={
                    "recommendation_set": set_id, "items": analysis.items, "tests": analysis.tests,
                    "confident": sum(r.confident for r in recommendations),
                },
            )
        return recommendations

    @activity.defn(name=ActivityName.LOAD_CONTENT_STRATEGY_INPUTS)
    async def load_content_strategy_inputs(self, campaign_id: str) -> StrategyInputs:
        """The recommendations in force for the campaign's tenant (its newest analysis), the own
        topic trends found with them, and the competitor topic trends of its watch."""
        async with self._sessions() as session:
            repo = ContentInsightsRepository(session)
            tenant = await repo.campaign_tenant(campaign_id)
            if tenant is None:
                raise business_error(LookupError(f"unknown campaign {campaign_id!r}"))
            latest = await repo.latest_recommendations(tenant[0])
            competitor = await CompetitiveRepository(session).topic_trends(tenant[0])
        if latest is None:
            return StrategyInputs(trends=competitor)
        own = [from_json(TopicTrend, t) for t in latest.summary.get("own_trends", [])]
        return StrategyInputs(
            trends=own + competitor,
            recommendations=[from_json(ContentRecommendation, r) for r in latest.recommendations],
        )

    @activity.defn(name=ActivityName.BUILD_CONTENT_CALENDAR)
    async def build_content_calendar(self, req: CalendarRequest) -> ContentCalendar:
        """The strategy agent's calendar, kept on the campaign so people can read its rationale."""
        try:
            calendar = build_content_calendar(req, self._cadence)
        except ValueError as err:
            raise business_error(err) from err
        async with self._sessions() as session, session.begin():
            await CampaignRepository(session).save_calendar(req.campaign_id, asdict(calendar))
        return calendar

    def all(self) -> list:
        return [self.analyze_content_performance, self.load_content_strategy_inputs, self.build_content_calendar]
