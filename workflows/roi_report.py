"""RoiReportWorkflow: build one ROI report (campaign or tenant scope) as HTML and PDF.

Started on demand by the API and by ScheduledReportsWorkflow; the activity does the reading,
rendering and recording, so a retried attempt overwrites the same files and row.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from agency.contracts import ActivityName, RoiReportRequest, RoiReportResult, WorkflowName
from workflows.activity_options import DEFAULT_RETRY

# Rendering charts and a PDF takes seconds; a tenant report reads every campaign it covers.
REPORT_TIMEOUT = timedelta(minutes=5)


@workflow.defn(name=WorkflowName.ROI_REPORT)
class RoiReportWorkflow:
    @workflow.run
    async def run(self, req: RoiReportRequest) -> RoiReportResult:
        return await workflow.execute_activity(
            ActivityName.BUILD_ROI_REPORT,
            req,
            result_type=RoiReportResult,
            start_to_close_timeout=REPORT_TIMEOUT,
            retry_policy=DEFAULT_RETRY,
        )
