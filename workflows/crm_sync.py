"""CrmSyncWorkflow: one per tenant (id ``crm-sync-<tenant>``), keeps our contacts/companies and the CRM in step.

Each round, per object type (companies first, so contacts can refer to them): pull CRM changes
since the cursor page by page, apply archived CRM records, push our changes page by page, then
record the round. Every page is one activity that commits its writes together with the cursor
it consumed, so a crash resumes at the cursor and a retried page changes nothing twice. Between
rounds the workflow sleeps on a durable timer; a ``crm_changed`` signal (webhook) or a
``resolve_conflict`` signal (a person's review decision) wakes it early. After
``rounds_per_run`` rounds it continues as new, carrying totals and undelivered decisions.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from agency.sync.contracts import (
        COUNTERS,
        CRM_SYNC_WORKFLOW,
        ConflictResolution,
        CrmSyncActivity,
        CrmSyncInput,
        CrmSyncQuery,
        CrmSyncSignal,
        CrmSyncStatus,
        FinishRoundRequest,
        FinishRoundResult,
        ResolutionRequest,
        ResolutionResult,
        SyncPageRequest,
        SyncPageResult,
    )

# CRM outages and rate limits retry with backoff for a long while: a round has nothing better
# to do than wait; a refused request (validation, auth) fails the page for good.
SYNC_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)
# Pages per pass before the round ends anyway (the cursor keeps the place for the next round).
MAX_PAGES_PER_PASS = 10_000


@workflow.defn(name=CRM_SYNC_WORKFLOW)
class CrmSyncWorkflow:
    def __init__(self) -> None:
        self._tenant = ""
        self._phase = "starting"
        self._nudged = False
        self._resolutions: list[ConflictResolution] = []
        self._applied: list[str] = []
        self._rounds = 0
        self._totals: dict[str, int] = {}
        self._last_round: dict[str, int] = {}
        self._cursors: dict[str, str] = {}
        self._pending_conflicts = 0
        self._last_round_at = ""

    @workflow.signal(name=CrmSyncSignal.CRM_CHANGED)
    def crm_changed(self) -> None:
        self._nudged = True

    @workflow.signal(name=CrmSyncSignal.RESOLVE_CONFLICT)
    def resolve_conflict(self, decision: ConflictResolution) -> None:
        self._resolutions.append(decision)

    @workflow.query(name=CrmSyncQuery.STATUS)
    def status(self) -> CrmSyncStatus:
        return CrmSyncStatus(
            tenant=self._tenant, phase=self._phase, rounds=self._rounds, last_round_at=self._last_round_at,
            cursors=dict(self._cursors), totals=dict(self._totals), last_round=dict(self._last_round),
            pending_conflicts=self._pending_conflicts, resolutions_waiting=len(self._resolutions),
            applied_resolutions=list(self._applied[-50:]),
        )

    def _options(self, inp: CrmSyncInput) -> dict:
        return {
            "task_queue": inp.task_queue,
            "start_to_close_timeout": timedelta(seconds=inp.activity_timeout_s),
            # A killed worker is noticed within this, not after the whole start-to-close timeout.
            "heartbeat_timeout": timedelta(seconds=inp.heartbeat_timeout_s),
            "retry_policy": SYNC_RETRY,
        }

    async def _pages(self, activity_name: str, request: SyncPageRequest, inp: CrmSyncInput, counts: dict[str, int]) -> None:
        for _ in range(MAX_PAGES_PER_PASS):
            page = await workflow.execute_activity(
                activity_name, request, result_type=SyncPageResult, **self._options(inp)
            )
            for name, value in page.counts.items():
                counts[name] = counts.get(name, 0) + value
            if page.cursor:
                self._cursors[f"{request.object_type}.{activity_name}"] = page.cursor
            if not page.more:
                return

    async def _apply_resolutions(self, inp: CrmSyncInput) -> None:
        while self._resolutions:
            self._phase = "resolving"
            decision = self._resolutions[0]
            result = await workflow.execute_activity(
                CrmSyncActivity.APPLY_RESOLUTION, ResolutionRequest(tenant=inp.tenant, resolution=decision),
                result_type=ResolutionResult, **self._options(inp),
            )
            self._resolutions.pop(0)
            self._applied.append(f"{result.conflict_id}:{'applied' if result.applied else result.detail}")

    async def _round(self, inp: CrmSyncInput) -> None:
        self._phase = "syncing"
        round_counts: dict[str, int] = {}
        pending = 0
        for object_type in inp.object_types:
            request = SyncPageRequest(tenant=inp.tenant, object_type=object_type, policy=inp.policy,
                                      page_size=inp.page_size)
            counts: dict[str, int] = {}
            await self._pages(CrmSyncActivity.PULL_PAGE, request, inp, counts)
            await self._pages(CrmSyncActivity.PULL_ARCHIVED_PAGE, request, inp, counts)
            await self._pages(CrmSyncActivity.PUSH_PAGE, request, inp, counts)
            finished = await workflow.execute_activity(
                CrmSyncActivity.FINISH_ROUND, FinishRoundRequest(tenant=inp.tenant, object_type=object_type, counts=counts),
                result_type=FinishRoundResult, **self._options(inp),
            )
            pending += finished.pending_conflicts
            self._cursors[object_type] = finished.cursor
            for name, value in counts.items():
                round_counts[f"{object_type}.{name}"] = value
                self._totals[name] = self._totals.get(name, 0) + value
        self._rounds += 1
        self._last_round = round_counts
        self._pending_conflicts = pending
        self._last_round_at = workflow.now().isoformat()

    @workflow.run
    async def run(self, inp: CrmSyncInput) -> None:
        self._tenant = inp.tenant
        self._rounds = inp.rounds
        self._totals = {name: inp.totals.get(name, 0) for name in COUNTERS}
        self._resolutions = list(inp.waiting_resolutions) + self._resolutions
        for _ in range(max(1, inp.rounds_per_run)):
            await self._apply_resolutions(inp)
            self._nudged = False
            await self._round(inp)
            await self._apply_resolutions(inp)
            self._phase = "waiting"
            try:
                await workflow.wait_condition(
                    lambda: self._nudged or bool(self._resolutions), timeout=timedelta(seconds=inp.interval_s)
                )
            except asyncio.TimeoutError:
                pass  # the poll interval passed without a nudge: the next round polls anyway
        # Signals handled so far are in self._resolutions; let the handlers finish first.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            CrmSyncInput(
                tenant=inp.tenant, task_queue=inp.task_queue, interval_s=inp.interval_s,
                rounds_per_run=inp.rounds_per_run, page_size=inp.page_size,
                activity_timeout_s=inp.activity_timeout_s, heartbeat_timeout_s=inp.heartbeat_timeout_s,
                object_types=list(inp.object_types), policy=inp.policy, rounds=self._rounds,
                totals=dict(self._totals), waiting_resolutions=list(self._resolutions),
            )
        )
