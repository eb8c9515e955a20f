"""Agent activities: run the planning, budgeting, scheduling and compliance agents and keep
their decisions in PostgreSQL so people (and later campaigns) can see why."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_error
from agency.agents.budget import allocate_budget, allocate_from_market
from agency.agents.calendar import build_calendar
from agency.agents.compliance import check_compliance
from agency.agents.planning import plan_campaign
from agency.contracts import (
    ActivityName,
    BudgetAllocation,
    BudgetRequest,
    CalendarRequest,
    CampaignPlan,
    ComplianceRequest,
    ComplianceResult,
    ContentCalendar,
    MarketAssessment,
    PlanRequest,
)
from agency.db.decisions import DecisionRepository
from agency.db.repository import CampaignRepository
from agency.serialization import from_json, to_json


class PlanningActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_posts_per_channel: int = 3) -> None:
        self._sessions = sessions
        self._max_posts = max_posts_per_channel

    @activity.defn(name=ActivityName.PLAN_CAMPAIGN)
    async def plan_campaign(self, req: PlanRequest) -> CampaignPlan:
        try:
            plan = plan_campaign(req, max_posts_per_channel=self._max_posts)
        except ValueError as err:
            raise business_error(err) from err
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.update_campaign(req.campaign_id, plan=to_json(plan))
            await repo.record_agent_action(
                campaign_id=req.campaign_id,
                actor="agent:planner",
                action="plan.created",
                subject_type="campaign",
                subject_id=req.campaign_id,
                detail={"channels": [c.channel for c in plan.channels]},
            )
        return plan

    @activity.defn(name=ActivityName.ALLOCATE_BUDGET)
    async def allocate_budget(self, req: BudgetRequest) -> BudgetAllocation:
        market = None
        if req.fit_id:
            async with self._sessions() as session:
                record = await DecisionRepository(session).get_fit(req.fit_id)
            if record is not None:
                market = from_json(MarketAssessment, record.gate["assessment"])
        try:
            if market is not None and market.evidence == "sufficient":
                record_allocation = record.gate.get("allocation", [])
                allocation = allocate_from_market(req, market, record_allocation)
            else:
                allocation = allocate_budget(req)
                if market is not None:
                    allocation.notes.insert(
                        0, f"Market model: {market.evidence} evidence ({market.reason}); benchmark split used."
                    )
        except ValueError as err:
            raise business_error(err) from err
        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.update_campaign(req.campaign_id, budget=to_json(allocation))
            await repo.record_agent_action(
                campaign_id=req.campaign_id,
                actor="agent:budget",
                action="budget.allocated",
                subject_type="campaign",
                subject_id=req.campaign_id,
                detail={"total_budget_cents": allocation.total_budget_cents, "evidence": allocation.evidence},
            )
        return allocation

    @activity.defn(name=ActivityName.BUILD_CALENDAR)
    async def build_calendar(self, req: CalendarRequest) -> ContentCalendar:
        try:
            return build_calendar(req)
        except ValueError as err:
            raise business_error(err) from err

    @activity.defn(name=ActivityName.CHECK_COMPLIANCE)
    async def check_compliance(self, req: ComplianceRequest) -> ComplianceResult:
        return check_compliance(req)

    def all(self) -> list:
        return [self.plan_campaign, self.allocate_budget, self.build_calendar, self.check_compliance]
