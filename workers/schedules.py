"""Temporal Schedules the workers keep in place (created once; visible and pausable in the UI)."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from agency.contracts import ScheduledReportsInput, WorkflowName
from agency.settings import Settings

TENANT_REPORTS_SCHEDULE = "agency-tenant-reports"
log = logging.getLogger("agency.workers")


async def ensure_report_schedule(client: Client, settings: Settings) -> bool:
    """Create the periodic tenant ROI reports schedule if it does not exist; True if created.

    An existing schedule is left alone: people may have paused or re-timed it in the UI.
    """
    if settings.report_schedule_interval_s <= 0:
        return False
    try:
        await client.create_schedule(
            f"{TENANT_REPORTS_SCHEDULE}-{settings.queue_orchestration}",
            Schedule(
                action=ScheduleActionStartWorkflow(
                    WorkflowName.SCHEDULED_REPORTS,
                    ScheduledReportsInput(trigger="schedule"),
                    id=f"tenant-reports-{settings.queue_orchestration}",
                    task_queue=settings.queue_orchestration,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.report_schedule_interval_s))]),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    log.info("created schedule %s (every %ss)", TENANT_REPORTS_SCHEDULE, settings.report_schedule_interval_s)
    return True
