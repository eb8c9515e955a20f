"""ROI report activities: read a campaign's (or a tenant's) stored numbers, write HTML + PDF.

Figures come only from PostgreSQL (metrics, budgets, fits, experiments, allocation changes), so
the report and the database always agree; a retried attempt rewrites the same files and row.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_error
from activities.experiments import METRIC_COUNTS
from agency.agents.planning import campaign_duration_days
from agency.agents.reporting import cumulative_rounds, latest_item_metrics
from agency.contracts import ActivityName, BudgetAllocation, CampaignBrief, RoiReportRequest, RoiReportResult
from agency.db.decisions import DecisionRepository
from agency.db.models import Campaign
from agency.db.repository import CampaignRepository
from agency.reports.render import render_html, render_pdf
from agency.reports.roi import (
    AllocationChangeLine,
    ArmLine,
    ChannelRoi,
    CurvePoint,
    ExperimentLine,
    ResponseCurve,
    RoiReport,
    RoundPoint,
    channel_roi,
    merge_channels,
    money,
    ratio,
    totals,
)
from agency.serialization import from_json


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CampaignNumbers:
    """One campaign's report sections, read from the database."""

    def __init__(self, campaign: Campaign, value_cents: int) -> None:
        self.campaign = campaign
        self.brief = from_json(CampaignBrief, campaign.brief)
        self.budget = from_json(BudgetAllocation, campaign.budget) if campaign.budget else None
        self.value_cents = self.brief.conversion_value_cents or value_cents
        self.channels: list[ChannelRoi] = []
        self.rounds: list[RoundPoint] = []
        self.curves: list[ResponseCurve] = []
        self.experiments: list[ExperimentLine] = []
        self.changes: list[AllocationChangeLine] = []

    async def load(self, session: AsyncSession) -> CampaignNumbers:
        repo, decisions = CampaignRepository(session), DecisionRepository(session)
        snapshots = await repo.campaign_snapshots(self.campaign.id)
        latest = latest_item_metrics(snapshots)
        budgets = {c.channel: c.amount_cents for c in self.budget.channels} if self.budget else {}
        weeks = max(1.0, campaign_duration_days(self.brief.start_date, self.brief.end_date) / 7)

        fit = await decisions.get_fit(self.budget.fit_id) if self.budget and self.budget.fit_id else None
        curves = {}
        if fit is not None and fit.evidence == "sufficient":
            for a in fit.gate.get("allocation", []):
                curves[a["channel"]] = ResponseCurve(
                    channel=a["channel"],
                    points=[CurvePoint(weekly_spend_cents=int(round(s * 100)), weekly_outcome=float(o)) for s, o in a["curve"]],
                    current_weekly_spend_cents=int(round(budgets.get(a["channel"], 0) / weeks)),
                )
        channel_order = list(budgets) + sorted({r.channel for r in latest.values()} - set(budgets))
        for channel in channel_order:
            items = [r for r in latest.values() if r.channel == channel]
            self.channels.append(
                channel_roi(
                    channel,
                    spend_cents=sum(r.spend_cents for r in items),
                    budget_cents=budgets.get(channel, 0),
                    impressions=sum(r.impressions for r in items),
                    clicks=sum(r.clicks for r in items),
                    conversions=sum(r.conversions for r in items),
                    value_per_conversion_cents=self.value_cents,
                    curve=curves.get(channel),
                )
            )
        self.curves = list(curves.values())
        self.rounds = [
            RoundPoint(round=r["round"], spend_cents=r["spend_cents"], conversions=r["conversions"])
            for r in cumulative_rounds(snapshots)
        ]
        for e in await decisions.experiments(self.campaign.id):
            result = e.result or {}
            self.experiments.append(
                ExperimentLine(
                    experiment_id=e.id, channel=e.channel, mode=e.mode, status=e.status, winner=e.winner,
                    threshold=result.get("threshold", ""), reason=result.get("reason", "no metrics yet"),
                    counts=METRIC_COUNTS.get(result.get("metric", ""), ("Exposures", "Conversions")),
                    arms=[
                        ArmLine(arm_id=a["arm_id"], exposures=a["exposures"], conversions=a["conversions"],
                                rate=a["rate"], prob_beats_control=a.get("prob_beats_control"), p_value=a.get("p_value"))
                        for a in result.get("arms", [])
                    ],
                )
            )
        self.changes = [
            AllocationChangeLine(
                round=c.round, status=c.status, change=c.change, before=dict(c.before_cents),
                after=dict(c.after_cents), reason=c.reason, decided_by=c.decided_by or "-",
            )
            for c in await decisions.allocation_changes(self.campaign.id)
        ]
        return self


def findings(report: RoiReport) -> list[str]:
    out = []
    t = totals(report)
    out.append(
        f"Spent {money(t['spend_cents'])} for {t['conversions']:,} conversions worth {money(t['revenue_cents'])} "
        f"(ROI {ratio(t['roi'])}, CAC {money(t['cac_cents'])})."
    )
    with_roi = [c for c in report.channels if c.roi is not None]
    if len(with_roi) > 1:
        best = max(with_roi, key=lambda c: c.roi)
        worst = min(with_roi, key=lambda c: c.roi)
        out.append(f"Best return: {best.channel} at {ratio(best.roi)}; weakest: {worst.channel} at {ratio(worst.roi)}.")
    for e in report.experiments:
        out.append(f"Experiment {e.experiment_id}: {e.status}" + (f", winner {e.winner}" if e.winner else "") + f". {e.reason}")
    if report.allocation_changes:
        out.append(
            f"{len(report.allocation_changes)} budget reallocation(s): "
            + ", ".join(f"round {c.round} {c.status}" for c in report.allocation_changes) + "."
        )
    return out


class RoiReportActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], reports_dir: Path, *, conversion_value_cents: int) -> None:
        self._sessions = sessions
        self._reports_dir = reports_dir
        self._value_cents = conversion_value_cents

    @activity.defn(name=ActivityName.BUILD_ROI_REPORT)
    async def build_roi_report(self, req: RoiReportRequest) -> RoiReportResult:
        return await self.build(req)

    async def build(self, req: RoiReportRequest) -> RoiReportResult:
        async with self._sessions() as session:
            decisions = DecisionRepository(session)
            tenant_id = await decisions.tenant_id(req.tenant)
            if tenant_id is None:
                raise business_error(LookupError(f"unknown tenant {req.tenant!r}"))
            if req.scope == "campaign":
                campaign = await CampaignRepository(session).get_tenant_campaign(tenant_id, req.campaign_id)
                if campaign is None:
                    raise business_error(LookupError(f"no campaign {req.campaign_id} for tenant {req.tenant}"))
                report = await self._campaign_report(session, campaign)
            else:
                report = await self._tenant_report(session, req.tenant, await decisions.tenant_campaigns(tenant_id))
        async with self._sessions() as session, session.begin():
            await DecisionRepository(session).start_report(
                report_id=req.report_id, tenant_id=tenant_id, scope=req.scope,
                campaign_id=req.campaign_id or None, trigger=req.trigger,
            )
        html, pdf = await asyncio.to_thread(lambda: (render_html(report), render_pdf(report)))
        self._reports_dir.mkdir(parents=True, exist_ok=True)
        html_path = self._reports_dir / f"{req.report_id}.html"
        pdf_path = self._reports_dir / f"{req.report_id}.pdf"
        write_atomically(html_path, html.encode("utf-8"))
        write_atomically(pdf_path, pdf)
        t = totals(report)
        summary = {
            "title": report.title, "scope": report.scope, "period": [report.period_start, report.period_end],
            "totals": {k: v for k, v in t.items()},
            "channels": [c.channel for c in report.channels],
            "experiments": len(report.experiments), "allocation_changes": len(report.allocation_changes),
        }
        async with self._sessions() as session, session.begin():
            await DecisionRepository(session).finish_report(
                req.report_id, status="ready", html_path=str(html_path), pdf_path=str(pdf_path), summary=summary
            )
            await CampaignRepository(session).record_action_once(
                tenant_id=tenant_id, actor="agent:analyst", action="report.roi_built", subject_type="report",
                subject_id=req.report_id, detail={"scope": req.scope, "trigger": req.trigger},
            )
        return RoiReportResult(report_id=req.report_id, status="ready", html_path=str(html_path), pdf_path=str(pdf_path))

    async def _campaign_report(self, session: AsyncSession, campaign: Campaign) -> RoiReport:
        numbers = await CampaignNumbers(campaign, self._value_cents).load(session)
        b = numbers.budget
        report = RoiReport(
            scope="campaign", subject_id=campaign.id, title=f"ROI report: {campaign.name}",
            tenant=numbers.brief.tenant, period_start=numbers.brief.start_date, period_end=numbers.brief.end_date,
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            value_per_conversion_cents=numbers.value_cents, channels=numbers.channels, rounds=numbers.rounds,
            curves=numbers.curves, experiments=numbers.experiments, allocation_changes=numbers.changes,
            allocation_method=b.method if b else "",
            expected_outcome=b.expected_conversions if b else None,
            expected_interval=tuple(b.interval) if b and len(b.interval) == 2 else None,
        )
        report.findings = findings(report)
        return report

    async def _tenant_report(self, session: AsyncSession, tenant: str, campaigns: list[Campaign]) -> RoiReport:
        loaded = [await CampaignNumbers(c, self._value_cents).load(session) for c in campaigns if c.budget]
        channels = merge_channels([n.channels for n in loaded], self._value_cents)
        starts = [n.brief.start_date for n in loaded]
        ends = [n.brief.end_date for n in loaded]
        rows = []
        for n in loaded:
            spend = sum(c.spend_cents for c in n.channels)
            conv = sum(c.conversions for c in n.channels)
            rows.append({
                "campaign_id": n.campaign.id, "name": n.campaign.name, "status": n.campaign.status,
                "spend_cents": spend, "conversions": conv,
                "roi": (conv * n.value_cents / spend) if spend else None,
            })
        report = RoiReport(
            scope="tenant", subject_id=tenant, title=f"ROI report: {tenant}", tenant=tenant,
            period_start=min(starts, default=""), period_end=max(ends, default=""),
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            value_per_conversion_cents=self._value_cents, channels=channels,
            experiments=[e for n in loaded for e in n.experiments],
            allocation_changes=[c for n in loaded for c in n.changes],
            campaigns=rows,
        )
        report.findings = findings(report)
        return report

    @activity.defn(name=ActivityName.LIST_REPORT_TENANTS)
    async def list_report_tenants(self, trigger: str) -> list[str]:
        async with self._sessions() as session:
            return await DecisionRepository(session).tenants_with_campaigns()

    def all(self) -> list:
        return [self.build_roi_report, self.list_report_tenants]
