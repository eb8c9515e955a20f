"""Market-model activities: fit the tenant's stored history, gate it, recommend and steer budgets.

The fitting and optimizing (seconds of CPU) run in a worker thread so the worker keeps
heartbeating its other activities.
"""

from __future__ import annotations

import asyncio
import calendar
from dataclasses import asdict

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_error
from agency.agents.budget import conversions_per_dollar, expected_conversions
from agency.agents.planning import campaign_duration_days
from agency.agents.reallocation import ChannelProgress, propose
from agency.contracts import (
    ActivityName,
    AllocationChangeDecision,
    BudgetAllocation,
    CampaignPlan,
    ChannelInsight,
    MarketAssessment,
    MarketRequest,
    ReallocationProposal,
    ReallocationRequest,
)
from agency.db.decisions import DecisionRepository, market_fit_id
from agency.db.models import MarketFitRecord
from agency.db.repository import CampaignRepository
from agency.mmm.allocation import (
    AllocationRequest, ChannelConstraint, GateTolerances, InsufficientEvidence, recommend,
)
from agency.mmm.fit import MarketFit, fit_market
from agency.mmm.simulator import MarketData
from agency.serialization import from_json, to_json

# Fewer weeks than this cannot separate a channel's effect from season and trend.
MIN_WEEKS = 26
SUFFICIENT, INSUFFICIENT, NO_HISTORY = "sufficient", "insufficient", "none"


def market_data(weeks) -> MarketData:
    """Stored weeks -> the simulator/fitter's MarketData (dollars per channel, outcome per week)."""
    channels = sorted({c for w in weeks for c in w.spend_cents})
    spend = np.array([[w.spend_cents.get(c, 0) / 100 for c in channels] for w in weeks], dtype=float)
    return MarketData(
        channels=channels,
        week_starts=[w.week_start.isoformat() for w in weeks],
        spend=spend.reshape(len(weeks), len(channels)),
        outcome=np.array([w.outcome for w in weeks], dtype=float),
    )


def allocation_request(req: MarketRequest, data: MarketData) -> tuple[AllocationRequest, list[str]]:
    """Campaign totals (cents) -> weekly dollars; history channels outside the campaign get nothing.

    The ramp limit holds the campaign near last week's spend; when the campaign's weekly budget
    lies outside what the limit allows in total, it cannot apply and is dropped, with a note.
    """
    history_channels = data.channels
    weeks = req.horizon_weeks
    notes: list[str] = []
    ramp = req.ramp_limit
    if ramp is not None:
        last = sum(float(data.spend[-1, history_channels.index(c)]) for c in req.channels)
        weekly = req.total_budget_cents / 100 / weeks
        if not last * (1 - ramp) <= weekly <= last * (1 + ramp):
            notes.append(
                f"ramp limit ±{ramp:.0%} not applied: the campaign's ${weekly:,.0f}/week is far from "
                f"last week's ${last:,.0f} on these channels"
            )
            ramp = None
    limits = {lim.channel: lim for lim in req.channel_limits}
    constraints = []
    for channel in history_channels:
        if channel not in req.channels:
            constraints.append(ChannelConstraint(channel=channel, locked=0.0))
            continue
        lim = limits.get(channel)
        if lim is None:
            continue
        constraints.append(
            ChannelConstraint(
                channel=channel,
                min_weekly=lim.min_cents / 100 / weeks,
                max_weekly=None if lim.max_cents is None else lim.max_cents / 100 / weeks,
                locked=None if lim.locked_cents is None else lim.locked_cents / 100 / weeks,
            )
        )
    return AllocationRequest(
        total_budget=req.total_budget_cents / 100, horizon_weeks=weeks, constraints=constraints, ramp_limit=ramp,
    ), notes


def peak_month(fit: MarketFit) -> str:
    """Month whose weeks have the highest fitted seasonal baseline (trend removed)."""
    weeks = np.arange(52)
    season = fit.base_outcome(weeks) - fit.trend * weeks
    best_week = int(np.argmax(season))
    return calendar.month_name[min(12, best_week * 12 // 52 + 1)]


def channel_insights(fit: MarketFit, data: MarketData, shares: dict[str, float]) -> list[ChannelInsight]:
    model = fit.media_model()
    contributions = fit.contributions(data.spend).sum(axis=0)
    media_total = float(contributions.sum()) or 1.0
    out = []
    for c, ch in enumerate(fit.channels):
        spend = data.spend[:, c]
        out.append(
            ChannelInsight(
                channel=ch.name,
                weeks_active=int((spend > 0).sum()),
                avg_weekly_spend_cents=int(round(float(spend.mean()) * 100)),
                conversions_per_dollar=float(contributions[c] / spend.sum()) if spend.sum() > 0 else 0.0,
                marginal_conversions_per_dollar=float(model.steady_marginal(c, fit.last_spend[c])),
                share_of_media_outcome=float(contributions[c] / media_total),
                recommended_share=shares.get(ch.name),
            )
        )
    return out


class MarketActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        seed: int = 0,
        min_history_weeks: int = GateTolerances.min_history_weeks,
    ) -> None:
        self._sessions = sessions
        self._seed = seed
        self._tolerances = GateTolerances(min_history_weeks=min_history_weeks)

    @activity.defn(name=ActivityName.FIT_MARKET_MODEL)
    async def fit_market_model(self, req: MarketRequest) -> MarketAssessment:
        fit_id = market_fit_id(req.campaign_id)
        async with self._sessions() as session:
            repo = DecisionRepository(session)
            existing = await repo.get_fit(fit_id)
            if existing is not None:
                return from_json(MarketAssessment, existing.gate["assessment"])
            tenant_id = await repo.tenant_id(req.tenant)
            weeks = await repo.market_weeks(tenant_id) if tenant_id else []
        if tenant_id is None:
            raise business_error(LookupError(f"unknown tenant {req.tenant!r}"))

        data = market_data(weeks) if weeks else None
        missing = [c for c in req.channels if data is None or c not in data.channels]
        fit: MarketFit | None = None
        gate: dict = {}
        if data is None or len(weeks) < MIN_WEEKS:
            assessment = MarketAssessment(
                fit_id=fit_id, evidence=NO_HISTORY, weeks=len(weeks),
                reason=f"{len(weeks)} weeks of history; the market model needs at least {MIN_WEEKS}",
            )
        elif missing:
            assessment = MarketAssessment(
                fit_id=fit_id, evidence=NO_HISTORY, weeks=len(weeks),
                reason=f"no spend history for {', '.join(missing)}",
            )
        else:
            try:
                areq, notes = allocation_request(req, data)
                result, fit = await asyncio.to_thread(self._recommend, data, areq)
            except ValueError as err:
                raise business_error(err) from err
            assessment, gate = self._assess(fit_id, req, data, fit, result)
            assessment.notes[:0] = notes

        async with self._sessions() as session, session.begin():
            await DecisionRepository(session).save_fit(
                MarketFitRecord(
                    id=fit_id, tenant_id=tenant_id, campaign_id=req.campaign_id, channels=data.channels if data else [],
                    weeks=len(weeks), evidence=assessment.evidence, reason=assessment.reason,
                    model=fit.to_dict() if fit is not None else None,
                    goodness=dict(fit.goodness) if fit is not None else {},
                    gate={**gate, "assessment": asdict(assessment)},
                )
            )
            await CampaignRepository(session).record_agent_action(
                campaign_id=req.campaign_id, actor="agent:budget", action="market.fitted",
                subject_type="campaign", subject_id=req.campaign_id,
                detail={"fit_id": fit_id, "evidence": assessment.evidence, "reason": assessment.reason},
            )
        return assessment

    def _recommend(self, data: MarketData, areq: AllocationRequest):
        # Fitted here (not inside recommend) so the fit itself can be stored for reallocation.
        fit = fit_market(data, seed=self._seed)
        return recommend(data, areq, seed=self._seed, fit=fit, tolerances=self._tolerances), fit

    def _assess(self, fit_id, req, data, fit, result) -> tuple[MarketAssessment, dict]:
        gate_report = result.gate
        gate = {"passed": gate_report.passed, "reasons": list(gate_report.reasons), "metrics": _jsonable(gate_report.metrics)}
        if isinstance(result, InsufficientEvidence):
            insights = channel_insights(fit, data, {})
            return MarketAssessment(
                fit_id=fit_id, evidence=INSUFFICIENT, weeks=len(data.week_starts),
                reason=result.reason, channels=[i for i in insights if i.channel in req.channels],
                r2=fit.goodness.get("r2"), mape=fit.goodness.get("mape"), peak_month=peak_month(fit),
                notes=list(result.details),
            ), gate
        campaign_alloc = [a for a in result.allocations if a.channel in req.channels]
        total = sum(a.total_spend for a in campaign_alloc) or 1.0
        shares = {a.channel: a.total_spend / total for a in campaign_alloc}
        gate["allocation"] = [
            {"channel": a.channel, "weekly_spend": a.weekly_spend, "total_spend": a.total_spend,
             "expected_outcome": a.expected_outcome, "marginal_roi": a.marginal_roi,
             "curve": [list(p) for p in a.curve]}
            for a in campaign_alloc
        ]
        insights = channel_insights(fit, data, shares)
        return MarketAssessment(
            fit_id=fit_id, evidence=SUFFICIENT, weeks=len(data.week_starts), reason="recovery gate passed",
            channels=[i for i in insights if i.channel in req.channels],
            r2=fit.goodness.get("r2"), mape=fit.goodness.get("mape"), peak_month=peak_month(fit),
            expected_conversions=float(result.expected_outcome), interval=[float(x) for x in result.interval],
            notes=list(result.notes),
        ), gate

    @activity.defn(name=ActivityName.PROPOSE_REALLOCATION)
    async def propose_reallocation(self, req: ReallocationRequest) -> ReallocationProposal:
        async with self._sessions() as session:
            campaign = await CampaignRepository(session).get_campaign(req.campaign_id)
            record = await DecisionRepository(session).get_fit(req.fit_id) if req.fit_id else None
        if campaign is None or campaign.budget is None:
            raise business_error(LookupError(f"campaign {req.campaign_id} has no budget"))
        budget = from_json(BudgetAllocation, campaign.budget)
        fit = MarketFit.from_dict(record.model) if record is not None and record.evidence == SUFFICIENT else None
        # Metrics rounds split the campaign's weeks evenly: elapsed and remaining periods.
        horizon = campaign_duration_days(campaign.brief["start_date"], campaign.brief["end_date"]) / 7
        elapsed_weeks = horizon * req.round / (req.round + req.rounds_left)
        remaining_weeks = horizon - elapsed_weeks
        # Built once: the greedy split below evaluates the curves hundreds of times.
        media = fit.media_model() if fit is not None else None
        benchmark = {
            p.channel: conversions_per_dollar(p)
            for p in (from_json(CampaignPlan, campaign.plan).channels if campaign.plan else [])
        }

        def response(channel: str, cents: float, weeks: float) -> float:
            if weeks <= 0 or cents <= 0:
                return 0.0
            if media is not None and channel in media.channels:
                return weeks * float(media.steady_response(media.index(channel), cents / 100 / weeks))
            return expected_conversions(benchmark.get(channel, 0.0), cents)

        spent: dict[str, int] = {}
        conversions: dict[str, int] = {}
        for m in req.snapshot.items:
            spent[m.channel] = spent.get(m.channel, 0) + m.spend_cents
            conversions[m.channel] = conversions.get(m.channel, 0) + m.conversions
        progress = [
            ChannelProgress(
                channel=c.channel, budget_cents=c.amount_cents, spent_cents=spent.get(c.channel, 0),
                conversions=conversions.get(c.channel, 0),
                expected_conversions=response(c.channel, spent.get(c.channel, 0), elapsed_weeks),
            )
            for c in req.current
        ]
        try:
            proposal = await asyncio.to_thread(
                propose, progress, lambda ch, cents: response(ch, cents, remaining_weeks),
                ramp_limit=req.policy.ramp_limit,
            )
        except ValueError as err:
            raise business_error(err) from err
        policy = req.policy
        if proposal.change < policy.reallocation_min_change:
            status = "unchanged"
        elif proposal.change <= policy.reallocation_approval_threshold:
            status = "applied"
        else:
            status = "pending"
        method = "fitted response curves" if fit is not None else "benchmark curves (no fitted model)"
        reason = (
            f"round {req.round}: largest share change {proposal.change:.1%} "
            f"(auto-apply up to {policy.reallocation_approval_threshold:.0%}, ignore below "
            f"{policy.reallocation_min_change:.0%}); {method}, recalibrated to the campaign's conversions. "
            + " ".join(proposal.reasons)
        )
        if status != "unchanged":
            async with self._sessions() as session, session.begin():
                row = await DecisionRepository(session).record_allocation_change(
                    campaign_id=req.campaign_id, round=req.round, before_cents=proposal.before_cents,
                    after_cents=proposal.after_cents, change=proposal.change, status=status, reason=reason,
                )
                if status == "applied":
                    await CampaignRepository(session).update_campaign(
                        req.campaign_id, budget=_budget_json(budget, proposal.after_cents)
                    )
                await CampaignRepository(session).record_agent_action(
                    campaign_id=req.campaign_id, actor="agent:budget",
                    action="allocation.applied" if status == "applied" else "allocation.proposed",
                    subject_type="campaign", subject_id=req.campaign_id,
                    detail={"change": round(proposal.change, 4), "after_cents": proposal.after_cents},
                    once_per={"round": req.round},
                )
            status = row.status if row.status in ("applied", "pending") else status
        return ReallocationProposal(
            campaign_id=req.campaign_id, round=req.round, before_cents=proposal.before_cents,
            after_cents=proposal.after_cents, change=proposal.change, status=status, reason=reason,
        )

    @activity.defn(name=ActivityName.DECIDE_ALLOCATION_CHANGE)
    async def decide_allocation_change(self, req: AllocationChangeDecision) -> None:
        async with self._sessions() as session, session.begin():
            repo = DecisionRepository(session)
            settled = await repo.decide_allocation_change(req.campaign_id, req.round, req.status, req.decided_by, req.note)
            campaigns = CampaignRepository(session)
            if settled and req.status == "approved":
                campaign = await campaigns.get_campaign(req.campaign_id)
                change = next(c for c in await repo.allocation_changes(req.campaign_id) if c.round == req.round)
                budget = from_json(BudgetAllocation, campaign.budget)
                await campaigns.update_campaign(req.campaign_id, budget=_budget_json(budget, change.after_cents))
            await campaigns.record_agent_action(
                campaign_id=req.campaign_id, actor=req.decided_by, action=f"allocation.{req.status}",
                subject_type="campaign", subject_id=req.campaign_id, detail={"note": req.note},
                once_per={"round": req.round},
            )

    def all(self) -> list:
        return [self.fit_market_model, self.propose_reallocation, self.decide_allocation_change]


def _budget_json(budget: BudgetAllocation, after_cents: dict[str, int]) -> dict:
    total = sum(after_cents.values()) or 1
    for ch in budget.channels:
        if ch.channel in after_cents:
            ch.amount_cents = int(after_cents[ch.channel])
            ch.share = ch.amount_cents / total
    return to_json(budget)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
