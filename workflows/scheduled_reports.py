"""ScheduledReportsWorkflow: the periodic tenant ROI reports (run by a Temporal Schedule).

One child RoiReportWorkflow per tenant with campaigns, ids derived from the scheduled run so a
retried run does not build a tenant's report twice.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

from agency.contracts import (
    ActivityName,
    RoiReportRequest,
    ScheduledReportsInput,
    ScheduledReportsResult,
    WorkflowName,
)
from workflows.activity_options import DEFAULT_RETRY
from workflows.roi_report import RoiReportWorkflow


@workflow.defn(name=WorkflowName.SCHEDULED_REPORTS)
class ScheduledReportsWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledReportsInput) -> ScheduledReportsResult:
        tenants = list(inp.tenants) or await workflow.execute_activity(
            ActivityName.LIST_REPORT_TENANTS,
            inp.trigger,
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=DEFAULT_RETRY,
        )
        run_id = workflow.info().workflow_id
        # Report ids must be valid in URLs and file names: keep the run's id short and safe.
        suffix = "".join(ch if ch.isalnum() else "-" for ch in run_id)[-40:]
        requests = [
            RoiReportRequest(report_id=f"rpt_{tenant}_{suffix}", tenant=tenant, scope="tenant", trigger=inp.trigger)
            for tenant in tenants
        ]
        await asyncio.gather(
            *(
                workflow.execute_child_workflow(RoiReportWorkflow.run, req, id=f"report/{req.report_id}")
                for req in requests
            )
        )
        return ScheduledReportsResult(reports=[r.report_id for r in requests])
