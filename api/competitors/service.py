"""Competitive watch use cases: sources in PostgreSQL, the per-tenant Schedule and polls in Temporal."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from agency.competitive.contracts import COMPETITIVE_WATCH_WORKFLOW, WatchInput
from agency.contracts import TaskQueues
from agency.db.competitive import CompetitiveRepository
from agency.db.models import Tenant
from agency.security.rbac import Principal
from agency.settings import Settings
from api.competitors.schemas import (
    CompetitorsIn,
    CompetitorsOut,
    PollAccepted,
    ProposalOut,
    SourceOut,
    TopicOut,
    TopicsOut,
)
from api.errors import Conflict, NotFound
from api.temporal_gateway import TemporalGateway, unavailable
from workers.competitive_schedule import competitive_watch_schedule_id, ensure_competitive_watch_schedule


class CompetitorService:
    def __init__(self, session: AsyncSession, temporal: TemporalGateway, settings: Settings, principal: Principal):
        self._session = session
        self._temporal = temporal
        self._settings = settings
        self._tenant_id = uuid.UUID(principal.tenant_id)

    def _queues(self) -> TaskQueues:
        s = self._settings
        return TaskQueues(orchestration=s.queue_orchestration, inference=s.queue_inference,
                          integrations=s.queue_integrations)

    async def _tenant_slug(self) -> str:
        slug = await self._session.scalar(select(Tenant.slug).where(Tenant.id == self._tenant_id))
        if slug is None:
            raise NotFound("the caller's tenant no longer exists")
        return slug

    async def register(self, body: CompetitorsIn) -> CompetitorsOut:
        """Replace the watched sources and (re)time the schedule; all or nothing."""
        tenant = await self._tenant_slug()
        await self._session.rollback()
        sources = list({s.url: s.kind for s in body.sources}.items())  # the last entry per URL wins
        interval = timedelta(minutes=body.interval_minutes)
        schedule_id = competitive_watch_schedule_id(tenant)
        async with self._session.begin():
            await CompetitiveRepository(self._session).replace_sources(
                self._tenant_id, sources, interval_s=int(interval.total_seconds()), schedule_id=schedule_id
            )
            # Inside the transaction: if Temporal is down the sources are not half-registered.
            try:
                client = await self._temporal.client()
                await ensure_competitive_watch_schedule(client, tenant, interval, self._queues())
            except RPCError as err:
                raise unavailable(err) from err
        return await self.view()

    async def view(self) -> CompetitorsOut:
        repo = CompetitiveRepository(self._session)
        watch = await repo.watch(self._tenant_id)
        counts = await repo.item_counts(self._tenant_id)
        sources = [
            SourceOut(
                source_id=s.id, url=s.url, kind=s.kind, last_status=s.last_status, last_http_status=s.last_http_status,
                last_error=s.last_error, last_polled_at=s.last_polled_at, items=counts.get(s.id, 0),
            )
            for s in await repo.sources(self._tenant_id)
        ]
        return CompetitorsOut(
            interval_minutes=watch.interval_s // 60 if watch else None,
            schedule_id=watch.schedule_id if watch else None,
            sources=sources,
        )

    async def topics(self) -> TopicsOut:
        rows = await CompetitiveRepository(self._session).topics(self._tenant_id)
        topics = [
            TopicOut(
                topic_key=t.topic_key, label=t.label, keywords=list(t.keywords), items=t.item_count,
                recent=t.recent_count, previous=t.previous_count, momentum=t.momentum, window_days=t.window_days,
                computed_at=t.computed_at, proposals=[ProposalOut(**p) for p in t.proposals],
            )
            for t in rows
        ]
        every = [p for t in topics for p in t.proposals]
        every.sort(key=lambda p: (p.kind != "content_idea", -p.momentum))
        return TopicsOut(topics=topics, proposals=every)

    async def poll(self, idempotency_key: str | None) -> PollAccepted:
        """Start a poll now (the Schedule keeps its own rhythm)."""
        tenant = await self._tenant_slug()
        if not await CompetitiveRepository(self._session).sources(self._tenant_id):
            raise Conflict("no competitor sources registered; PUT /v1/competitors first", code="no_sources")
        await self._session.rollback()
        suffix = (uuid.uuid5(uuid.NAMESPACE_URL, f"{self._tenant_id}:{idempotency_key}").hex if idempotency_key
                  else uuid.uuid4().hex)
        workflow_id = f"competitive-watch/{tenant}/poll-{suffix[:24]}"
        try:
            client = await self._temporal.client()
            await client.start_workflow(
                COMPETITIVE_WATCH_WORKFLOW,
                WatchInput(tenant=tenant, queues=self._queues()),
                id=workflow_id,
                task_queue=self._settings.queue_orchestration,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            pass  # the same Idempotency-Key after that poll finished: the same poll, not a second one
        except RPCError as err:
            raise unavailable(err) from err
        return PollAccepted(workflow_id=workflow_id)
