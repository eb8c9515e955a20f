"""The market-model activity on real PostgreSQL: stored history in, a gated assessment out.

Sufficient evidence gives a recommended split the planner and budget agent use; history with
too little spend variation is refused with the reason, and the campaign falls back to the
benchmark split, saying why."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from activities.market import MarketActivities
from activities.planning import PlanningActivities
from agency.contracts import BudgetRequest, CampaignBrief, CampaignHistory, MarketRequest, PlanRequest
from agency.db.decisions import DecisionRepository
from agency.db.repository import CampaignRepository
from agency.mmm.history import tenant_market
from agency.mmm.simulator import simulate
from agency.serialization import from_json
from conftest import fresh_tenant

pytestmark = pytest.mark.integration

CHANNELS = ["social", "email"]


async def seed_tenant(sessions, *, spend_variation: float, seed: int = 11, weeks: int = 156) -> tuple[str, str]:
    tenant = fresh_tenant("fit")
    campaign_id = f"cmp_{uuid.uuid4().hex[:12]}"
    data = simulate(
        tenant_market(CHANNELS, weekly_spend_total=4000.0, seed=seed, spend_variation=spend_variation, weeks=weeks)
    )
    brief = {
        "tenant": tenant, "product": "Trail boots", "audience": "hikers", "goals": ["drive sales"],
        "channels": CHANNELS, "total_budget_cents": 400_000, "start_date": "2026-12-07", "end_date": "2026-12-13",
    }
    async with sessions() as session, session.begin():
        repo = CampaignRepository(session)
        t = await repo.ensure_tenant(tenant)
        await repo.create_campaign(campaign_id, tenant, "fit test", brief, f"wf-{campaign_id}")
        await DecisionRepository(session).upsert_market_weeks(
            t.id,
            [
                (date.fromisoformat(w), {c: int(round(data.spend[i, j] * 100)) for j, c in enumerate(CHANNELS)},
                 float(data.outcome[i]))
                for i, w in enumerate(data.week_starts)
            ],
            source="test",
        )
    return tenant, campaign_id


def market_request(tenant: str, campaign_id: str) -> MarketRequest:
    return MarketRequest(
        campaign_id=campaign_id, tenant=tenant, channels=CHANNELS, total_budget_cents=400_000, horizon_weeks=1,
        ramp_limit=0.5,
    )


async def test_sufficient_history_gives_a_fitted_allocation(db_engine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant, campaign_id = await seed_tenant(sessions, spend_variation=0.4)
    assessment = await MarketActivities(sessions).fit_market_model(market_request(tenant, campaign_id))
    assert assessment.evidence == "sufficient", assessment.reason
    assert assessment.weeks == 156
    assert {i.channel for i in assessment.channels} == set(CHANNELS)
    assert abs(sum(i.recommended_share for i in assessment.channels) - 1) < 1e-6
    assert assessment.interval[0] <= assessment.expected_conversions <= assessment.interval[1]
    # Retried: the stored assessment comes back, nothing is fitted or written twice.
    assert await MarketActivities(sessions).fit_market_model(market_request(tenant, campaign_id)) == assessment

    async with sessions() as session:
        brief = from_json(CampaignBrief, (await CampaignRepository(session).get_campaign(campaign_id)).brief)
    planning = PlanningActivities(sessions)
    plan = await planning.plan_campaign(
        PlanRequest(campaign_id=campaign_id, brief=brief, history=CampaignHistory(tenant=tenant), market=assessment)
    )
    assert any("recovery gate passed" in line for line in plan.rationale)
    budget = await planning.allocate_budget(
        BudgetRequest(campaign_id=campaign_id, total_budget_cents=400_000, plan=plan, fit_id=assessment.fit_id)
    )
    assert budget.evidence == "fitted"
    assert sum(c.amount_cents for c in budget.channels) == 400_000
    shares = {i.channel: i.recommended_share for i in assessment.channels}
    for c in budget.channels:
        assert abs(c.share - shares[c.channel]) < 0.001


async def test_flat_spend_history_is_refused_with_a_reason(db_engine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant, campaign_id = await seed_tenant(sessions, spend_variation=0.02)
    assessment = await MarketActivities(sessions).fit_market_model(market_request(tenant, campaign_id))
    assert assessment.evidence == "insufficient"
    assert assessment.reason.startswith("insufficient evidence")
    assert assessment.expected_conversions is None

    async with sessions() as session:
        brief = from_json(CampaignBrief, (await CampaignRepository(session).get_campaign(campaign_id)).brief)
    planning = PlanningActivities(sessions)
    plan = await planning.plan_campaign(
        PlanRequest(campaign_id=campaign_id, brief=brief, history=CampaignHistory(tenant=tenant), market=assessment)
    )
    budget = await planning.allocate_budget(
        BudgetRequest(campaign_id=campaign_id, total_budget_cents=400_000, plan=plan, fit_id=assessment.fit_id)
    )
    assert budget.evidence == "prior"
    assert budget.notes[0].startswith("Market model: insufficient evidence")


async def test_two_years_are_refused_unless_the_operator_lowers_the_minimum(db_engine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant, campaign_id = await seed_tenant(sessions, spend_variation=0.4, weeks=104)
    assessment = await MarketActivities(sessions).fit_market_model(market_request(tenant, campaign_id))
    assert assessment.evidence == "insufficient"
    assert "only 104 weeks of history; budget advice needs 156" in assessment.reason
    # AGENCY_MARKET_MIN_HISTORY_WEEKS=104 on the workers: the same history is advised on.
    tenant, campaign_id = await seed_tenant(sessions, spend_variation=0.4, weeks=104)
    lowered = MarketActivities(sessions, min_history_weeks=104)
    assessment = await lowered.fit_market_model(market_request(tenant, campaign_id))
    assert assessment.evidence == "sufficient", assessment.reason
    assert assessment.weeks == 104


async def test_no_history_is_said_not_guessed(db_engine):
    sessions = async_sessionmaker(db_engine, expire_on_commit=False)
    tenant, campaign_id = f"empty-{uuid.uuid4().hex[:8]}", f"cmp_{uuid.uuid4().hex[:12]}"
    async with sessions() as session, session.begin():
        await CampaignRepository(session).create_campaign(
            campaign_id, tenant, "empty", {"tenant": tenant, "total_budget_cents": 1}, f"wf-{campaign_id}"
        )
    assessment = await MarketActivities(sessions).fit_market_model(market_request(tenant, campaign_id))
    assert assessment.evidence == "none"
    assert "0 weeks of history" in assessment.reason
