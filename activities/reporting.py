"""Report activity: assemble the campaign's stored data and write the report people read."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.roi_report import RoiReportActivities, write_atomically
from agency.agents.reporting import ReportInput, render_html, render_markdown, summarize
from agency.contracts import (
    ActivityName,
    BudgetAllocation,
    CampaignBrief,
    CampaignPlan,
    ReportRequest,
    ReportResult,
    RoiReportRequest,
)
from agency.db.repository import CampaignRepository
from agency.serialization import from_json


def _write_atomically(path: Path, text: str) -> None:
    write_atomically(path, text.encode("utf-8"))


class ReportActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reports_dir: Path,
        *,
        roi_reports: RoiReportActivities | None = None,
    ) -> None:
        self._sessions = sessions
        self._reports_dir = reports_dir
        self._roi_reports = roi_reports

    @activity.defn(name=ActivityName.BUILD_REPORT)
    async def build_report(self, req: ReportRequest) -> ReportResult:
        async with self._sessions() as session:
            repo = CampaignRepository(session)
            campaign = await repo.get_campaign(req.campaign_id)
            if campaign is None or campaign.plan is None or campaign.budget is None:
                raise ApplicationError(f"campaign {req.campaign_id} has no plan/budget", non_retryable=True)
            snapshots = await repo.campaign_snapshots(
                req.campaign_id, {item.item_id: item.external_id for item in req.items}
            )

        report_input = ReportInput(
            campaign_id=req.campaign_id,
            brief=from_json(CampaignBrief, campaign.brief),
            plan=from_json(CampaignPlan, campaign.plan),
            budget=from_json(BudgetAllocation, campaign.budget),
            items=req.items,
            metrics=snapshots,
            outcome=req.outcome,
        )
        summary = summarize(report_input)

        self._reports_dir.mkdir(parents=True, exist_ok=True)
        html_path = self._reports_dir / f"{req.campaign_id}.html"
        summary_path = self._reports_dir / f"{req.campaign_id}.json"
        _write_atomically(html_path, render_html(report_input, summary))
        _write_atomically(self._reports_dir / f"{req.campaign_id}.md", render_markdown(report_input, summary))
        _write_atomically(summary_path, json.dumps(summary, indent=2, default=str))

        async with self._sessions() as session, session.begin():
            repo = CampaignRepository(session)
            await repo.update_campaign(req.campaign_id, report_path=str(html_path))
            await repo.record_agent_action(
                campaign_id=req.campaign_id,
                actor="agent:analyst",
                action="report.built",
                subject_type="campaign",
                subject_id=req.campaign_id,
                detail={"outcome": req.outcome},
            )
        result = ReportResult(campaign_id=req.campaign_id, html_path=str(html_path), summary_path=str(summary_path))
        if self._roi_reports is not None:
            # The ROI analysis (HTML + PDF with charts) people read after the campaign.
            roi = await self._roi_reports.build(
                RoiReportRequest(
                    report_id=f"rpt_{req.campaign_id}", tenant=report_input.brief.tenant, scope="campaign",
                    campaign_id=req.campaign_id, trigger="campaign",
                )
            )
            result.report_id, result.pdf_path = roi.report_id, roi.pdf_path
        return result

    def all(self) -> list:
        return [self.build_report]
