"""Content insight activities on real PostgreSQL: published items + their metrics in, a stored,
numbered recommendation set out, and back in as the strategy agent's inputs."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.exceptions import ApplicationError

from activities.content_insights import ContentInsightActivities
from agency.agents.performance import PerformanceRow, PlantedEffect, analyze_performance, simulate_performance
from agency.contracts import (
    SOCIAL_NETWORK_FORMATS,
    CalendarRequest,
    CampaignBrief,
    CampaignPlan,
    ChannelPlan,
)
from agency.db.content_insights import ContentInsightsRepository
from agency.db.models import ChannelMetric, ContentItem, ContentRecommendationSet, ContentVersion
from agency.db.models_competitive import CompetitorTopic
from agency.db.repository import CampaignRepository

pytestmark = pytest.mark.integration

BRIEF = {
    "tenant": "", "product": "Trail boots", "audience": "hikers", "goals": ["drive sales"],
    "channels": ["social"], "total_budget_cents": 100_000, "start_date": "2026-09-07", "end_date": "2026-10-04",
}


async def seed(sessions, tenant: str, rows: list[PerformanceRow], *, noise_items: bool = True) -> list[str]:
    """Campaigns, published items with a current version, two metric rounds each (the latest is the
    total); plus an unpublished item and an outdated version whose numbers must not count."""
    campaigns = sorted({r.campaign_id for r in rows})
    ids = {c: f"cmp_{uuid.uuid4().hex[:12]}" for c in campaigns}
    async with sessions() as session, session.begin():
        repo = CampaignRepository(session)
        for c in campaigns:
            await repo.create_campaign(ids[c], tenant, c, {**BRIEF, "tenant": tenant}, f"wf-{ids[c]}")
        items, objects = [], []  # items first: the models declare no relationships to order the inserts
        for r in rows:
            item_id = f"{ids[r.campaign_id]}:{r.item_id}"
            # Hour kept by the strategy in the generation record; published_at's hour differs on purpose.
            published_at = datetime.fromisoformat(r.published_on).replace(hour=(r.publish_hour + 5) % 24, tzinfo=UTC)
            items.append(
                ContentItem(
                    id=item_id, campaign_id=ids[r.campaign_id], channel=r.channel, format=r.format,
                    publish_on=date.fromisoformat(r.published_on), approval_state="approved", current_version=2,
                    external_id=f"ext-{item_id}", published_at=published_at,
                )
            )
            objects += [
                # Version 1 was replaced: its copy length and topic must not be used.
                ContentVersion(
                    item_id=item_id, version=1, title="", body="x" * 5000, model="m", prompt_tokens=1,
                    completion_tokens=1, generation={"topic": "stale", "publish_hour": 3},
                ),
                ContentVersion(
                    item_id=item_id, version=2, title="T" * min(10, r.length_chars),
                    body="b" * (r.length_chars - min(10, r.length_chars)), model="m", prompt_tokens=1,
                    completion_tokens=1, generation={"topic": r.topic, "publish_hour": r.publish_hour},
                ),
            ]
            for round_no, share in ((1, 2), (2, 1)):  # round 1 is half the cumulative total
                objects.append(
                    ChannelMetric(
                        campaign_id=ids[r.campaign_id], item_id=item_id, channel=r.channel, round=round_no,
                        impressions=r.impressions // share, clicks=r.clicks // share,
                        conversions=r.conversions // share, spend_cents=r.spend_cents // share,
                    )
                )
        if noise_items:
            # Drafted and measured (a sandbox quirk) but never published: not part of the analysis.
            first = ids[campaigns[0]]
            items.append(
                ContentItem(
                    id=f"{first}:social:unpublished", campaign_id=first, channel="social", format="linkedin_post",
                    publish_on=date(2026, 3, 3), approval_state="pending", current_version=1,
                )
            )
            objects += [
                ContentVersion(
                    item_id=f"{first}:social:unpublished", version=1, title="", body="b" * 200, model="m",
                    prompt_tokens=1, completion_tokens=1, generation={"topic": "gear care"},
                ),
                ChannelMetric(
                    campaign_id=first, item_id=f"{first}:social:unpublished", channel="social", round=1,
                    impressions=10_000, clicks=9_000, conversions=0, spend_cents=0,
                ),
            ]
        session.add_all(items)
        await session.flush()
        session.add_all(objects)
    return [ids[c] for c in campaigns]


def calendar_request(campaign_id: str, tenant: str, inputs) -> CalendarRequest:
    brief = CampaignBrief(**{**BRIEF, "tenant": tenant})
    plan = CampaignPlan(
        campaign_id=campaign_id, objective="conversion", key_messages=["Dry feet on every trail"], tone="clear",
        channels=[ChannelPlan("social", "conversion", 1.0, 0.03, 0.02, 3)], duration_days=28, rationale=[],
        used_history=True,
    )
    return CalendarRequest(campaign_id, brief, plan, inputs.trends, inputs.recommendations)


async def test_analysis_is_stored_once_per_campaign_and_read_back_as_strategy_inputs(db_engine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant, other = f"ins-{uuid.uuid4().hex[:8]}", f"ins-{uuid.uuid4().hex[:8]}"
    rows = simulate_performance(
        2000, seed=7, effects=[PlantedEffect("format_weekday", "linkedin_post@Tuesday", 0.30)],
        formats=SOCIAL_NETWORK_FORMATS, campaigns=2,
    )
    campaigns = await seed(sessions, tenant, rows)
    # Another tenant's items with the opposite finding: tenant scoping keeps them out.
    await seed(
        sessions, other,
        simulate_performance(600, seed=8, effects=[PlantedEffect("format_weekday", "linkedin_post@Tuesday", -0.6)],
                             formats=SOCIAL_NETWORK_FORMATS, campaigns=1),
        noise_items=False,
    )
    activities = ContentInsightActivities(sessions)

    recommendations = await activities.analyze_content_performance(campaigns[0])
    # The stored items rebuild exactly the simulated rows: same analysis as on the rows themselves.
    assert recommendations == analyze_performance(rows).recommendations
    top = recommendations[0]
    assert (top.factor, top.level, top.confident) == ("format_weekday", "linkedin_post@Tuesday", True)
    assert top.interval[0] <= 0.30 <= top.interval[1]

    # Retried: the set is replaced, not duplicated.
    assert await activities.analyze_content_performance(campaigns[0]) == recommendations
    async with sessions() as session:
        stored = list(await session.scalars(
            select(ContentRecommendationSet).where(ContentRecommendationSet.campaign_id == campaigns[0])
        ))
        assert len(stored) == 1
        assert stored[0].summary["items"] == len(rows)
        assert stored[0].summary["campaigns"] == sorted(campaigns)
        tenant_id = (await ContentInsightsRepository(session).campaign_tenant(campaigns[0]))[0]
        assert await ContentInsightsRepository(session).count_recommendation_sets(tenant_id) == 1
        audit = await CampaignRepository(session).list_audit_events("campaign", campaigns[0])
        assert [e.action for e in audit].count("content.analyzed") == 1

    # A competitor topic the tenant's watch found rising comes along with the recommendations.
    async with sessions() as session, session.begin():
        session.add(
            CompetitorTopic(
                tenant_id=tenant_id, topic_key="k1", label="waterproofing", keywords=["waterproof", "dry"],
                centroid=[0.0], item_count=9, recent_count=6, previous_count=3, momentum=1.0, window_days=14,
                proposals=[], computed_at=datetime(2026, 9, 1, tzinfo=UTC),
            )
        )
    inputs = await activities.load_content_strategy_inputs(campaigns[1])
    assert inputs.recommendations == recommendations
    competitor = [t for t in inputs.trends if t.source == "competitor"]
    assert [(t.topic, t.momentum) for t in competitor] == [("waterproofing", 1.0)]

    # The next campaign's analysis is the newest set: the one in force.
    second = await activities.analyze_content_performance(campaigns[1])
    async with sessions() as session:
        latest = await ContentInsightsRepository(session).latest_recommendations(tenant_id)
        assert latest.campaign_id == campaigns[1]
    assert (await activities.load_content_strategy_inputs(campaigns[0])).recommendations == second

    # The strategy agent applies it: social sets move to Tuesday, citing recommendation 1.
    calendar = await activities.build_content_calendar(calendar_request(campaigns[1], tenant, inputs))
    assert {date.fromisoformat(e.publish_on).weekday() for e in calendar.entries} == {1}
    assert any("recommendation 1 " in line for line in calendar.rationale)
    assert calendar.messages[0].topic == "waterproofing"
    assert any("competitor feeds (momentum +100%" in line for line in calendar.rationale)


async def test_a_tenant_without_published_items_gets_no_recommendations(db_engine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant = f"ins-{uuid.uuid4().hex[:8]}"
    campaign_id = f"cmp_{uuid.uuid4().hex[:12]}"
    async with sessions() as session, session.begin():
        await CampaignRepository(session).create_campaign(
            campaign_id, tenant, "empty", {**BRIEF, "tenant": tenant}, f"wf-{campaign_id}"
        )
    activities = ContentInsightActivities(sessions)
    inputs = await activities.load_content_strategy_inputs(campaign_id)
    assert inputs.recommendations == []
    assert await activities.analyze_content_performance(campaign_id) == []
    assert (await activities.load_content_strategy_inputs(campaign_id)).recommendations == []


async def test_unknown_campaign_and_bad_calendar_fail_without_retry(db_engine):
    activities = ContentInsightActivities(async_sessionmaker(db_engine, expire_on_commit=False))
    with pytest.raises(ApplicationError) as err:
        await activities.analyze_content_performance("cmp_missing")
    assert err.value.non_retryable
    with pytest.raises(ApplicationError) as err:
        await activities.load_content_strategy_inputs("cmp_missing")
    assert err.value.non_retryable
    request = calendar_request("cmp_x", "t", type("Inputs", (), {"trends": [], "recommendations": []})())
    request.plan.channels = [ChannelPlan("tv", "awareness", 1.0, 0.01, 0.01, 1)]
    with pytest.raises(ApplicationError) as err:
        await activities.build_content_calendar(request)
    assert err.value.non_retryable
