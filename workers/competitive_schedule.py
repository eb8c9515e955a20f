"""The per-tenant Temporal Schedule that runs CompetitiveWatchWorkflow (visible and pausable in the UI)."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from agency.competitive.contracts import COMPETITIVE_WATCH_WORKFLOW, WatchInput
from agency.contracts import TaskQueues

log = logging.getLogger("agency.workers")


def competitive_watch_schedule_id(tenant: str) -> str:
    return f"competitive-watch-{tenant}"


def _schedule(tenant: str, interval: timedelta, queues: TaskQueues) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            COMPETITIVE_WATCH_WORKFLOW,
            WatchInput(tenant=tenant, queues=queues),
            id=f"competitive-watch/{tenant}",
            task_queue=queues.orchestration,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        # A poll still running when the next is due: skip the next, never run two at once.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_competitive_watch_schedule(
    client: Client, tenant: str, interval: timedelta, queues: TaskQueues
) -> bool:
    """Create the tenant's watch schedule, or re-time an existing one; True if it was created.

    Unlike the report schedule, an existing one is updated: the tenant set a new interval
    through the API. A pause made in the UI is kept.
    """
    if interval <= timedelta(0):
        raise ValueError("the watch interval must be positive")
    schedule_id = competitive_watch_schedule_id(tenant)
    wanted = _schedule(tenant, interval, queues)
    try:
        await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        def retime(current: ScheduleUpdateInput) -> ScheduleUpdate:
            wanted.state = current.description.schedule.state
            return ScheduleUpdate(schedule=wanted)

        await client.get_schedule_handle(schedule_id).update(retime)
        return False
    log.info("created schedule %s (every %s)", schedule_id, interval)
    return True


async def remove_competitive_watch_schedule(client: Client, tenant: str) -> bool:
    """Delete the tenant's watch schedule (no sources left); False if there was none."""
    try:
        await client.get_schedule_handle(competitive_watch_schedule_id(tenant)).delete()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
