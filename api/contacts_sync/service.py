"""CRM sync use cases: start/ensure a tenant's CrmSyncWorkflow, read it, the review queue, webhooks."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from agency.db.models import Tenant
from agency.db.models_sync import SyncConflict
from agency.integrations.crm import parse_webhook_events, verify_webhook_signature
from agency.security.rbac import Principal
from agency.settings import Settings
from agency.sync.contracts import (
    CRM_SYNC_WORKFLOW,
    ConflictResolution,
    CrmSyncInput,
    CrmSyncQuery,
    CrmSyncSignal,
    CrmSyncStatus,
    crm_sync_workflow_id,
)
from agency.sync.policy import DeletionPolicy, FieldPolicy, SyncPolicy, default_company_policies, default_contact_policies
from api.contacts_sync.config import CrmSyncSettings, crm_sync_settings, webhook_secret_for
from api.contacts_sync.schemas import (
    ConflictOut,
    ConflictsOut,
    ResolutionAccepted,
    ResolutionIn,
    SyncStarted,
    SyncStartIn,
    SyncStatusOut,
)
from api.errors import AgencyError, Conflict, NotFound, ServiceUnavailable, Unauthenticated
from api.temporal_gateway import TemporalGateway, is_unavailable, unavailable


class InvalidPolicy(AgencyError):
    status_code = 422
    code = "invalid_policy"


class InvalidWebhook(AgencyError):
    status_code = 400
    code = "invalid_webhook"


def crm_sync_input(settings: Settings, tenant: str, body: SyncStartIn | None = None,
                   sync: CrmSyncSettings | None = None) -> CrmSyncInput:
    """The workflow input for ``tenant``: defaults from settings, overrides from ``body``."""
    sync = sync or crm_sync_settings()
    body = body or SyncStartIn()
    try:
        policy = SyncPolicy(
            contacts={**default_contact_policies(), **{k: FieldPolicy(v.kind, v.winner) for k, v in body.contacts.items()}},
            companies={**default_company_policies(), **{k: FieldPolicy(v.kind, v.winner) for k, v in body.companies.items()}},
            deletion=DeletionPolicy(**body.deletion.model_dump()) if body.deletion else DeletionPolicy(),
        )
    except ValueError as err:
        raise InvalidPolicy(str(err)) from err
    return CrmSyncInput(
        tenant=tenant, task_queue=settings.queue_integrations,
        interval_s=body.interval_s or sync.interval_s, rounds_per_run=sync.rounds_per_run, page_size=sync.page_size,
        activity_timeout_s=max(120.0, settings.integration_timeout_s * 6), policy=policy,
    )


async def ensure_crm_sync(client: Client, settings: Settings, inp: CrmSyncInput) -> bool:
    """Start the tenant's sync workflow unless it runs already; True when this call started it."""
    handle = client.get_workflow_handle(crm_sync_workflow_id(inp.tenant))
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            return False
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    await client.start_workflow(
        CRM_SYNC_WORKFLOW, inp, id=crm_sync_workflow_id(inp.tenant), task_queue=settings.queue_orchestration,
        # Two callers racing: the second one joins the first's run instead of failing.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    return True


class CrmSyncService:
    def __init__(self, session: AsyncSession, temporal: TemporalGateway, settings: Settings, principal: Principal):
        self._session = session
        self._temporal = temporal
        self._settings = settings
        self._principal = principal
        self._tenant_id = uuid.UUID(principal.tenant_id)
        self._rpc_timeout = timedelta(seconds=settings.api_workflow_rpc_timeout_s)

    async def _tenant_slug(self) -> str:
        slug = await self._session.scalar(select(Tenant.slug).where(Tenant.id == self._tenant_id))
        if slug is None:
            raise NotFound("the caller's tenant no longer exists")
        return slug

    async def _client(self) -> Client:
        return await self._temporal.client()

    @staticmethod
    def _map_rpc(err: RPCError) -> AgencyError:
        if err.status == RPCStatusCode.NOT_FOUND:
            return Conflict("the CRM sync is not running; start it with POST /v1/sync/crm", code="sync_not_running")
        if is_unavailable(err):
            return unavailable(err)
        return ServiceUnavailable("temporal", f"workflow service error: {err.status.name.lower()}")

    async def start(self, body: SyncStartIn) -> SyncStarted:
        tenant = await self._tenant_slug()
        inp = crm_sync_input(self._settings, tenant, body)
        try:
            started = await ensure_crm_sync(await self._client(), self._settings, inp)
        except RPCError as err:
            raise self._map_rpc(err) from err
        return SyncStarted(workflow_id=crm_sync_workflow_id(tenant), started=started)

    async def status(self) -> SyncStatusOut:
        tenant = await self._tenant_slug()
        workflow_id = crm_sync_workflow_id(tenant)
        handle = (await self._client()).get_workflow_handle(workflow_id)
        try:
            desc = await handle.describe(rpc_timeout=self._rpc_timeout)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return SyncStatusOut(workflow_id=workflow_id, running=False)
            status = await handle.query(CrmSyncQuery.STATUS, result_type=CrmSyncStatus, rpc_timeout=self._rpc_timeout)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return SyncStatusOut(workflow_id=workflow_id, running=False)
            raise self._map_rpc(err) from err
        return SyncStatusOut(
            workflow_id=workflow_id, running=True, phase=status.phase, rounds=status.rounds,
            last_round_at=status.last_round_at, cursors=status.cursors, totals=status.totals,
            last_round=status.last_round, pending_conflicts=status.pending_conflicts,
            resolutions_waiting=status.resolutions_waiting,
        )

    async def conflicts(self) -> ConflictsOut:
        rows = (await self._session.scalars(
            select(SyncConflict)
            .where(SyncConflict.tenant_id == self._tenant_id, SyncConflict.status == "pending")
            .order_by(SyncConflict.created_at, SyncConflict.id)
            .limit(1000)
        )).all()
        return ConflictsOut(conflicts=[
            ConflictOut(
                conflict_id=str(c.id), object_type=c.object_type, local_id=str(c.local_id), crm_id=c.crm_id,
                field=c.field, ours=c.ours, theirs=c.theirs, ours_modified_at=c.ours_modified_at,
                theirs_modified_at=c.theirs_modified_at, status=c.status, created_at=c.created_at,
            )
            for c in rows
        ])

    async def resolve(self, conflict_id: uuid.UUID, body: ResolutionIn) -> ResolutionAccepted:
        """Hand a person's decision to the workflow, which writes it to both sides."""
        conflict = await self._session.scalar(
            select(SyncConflict).where(SyncConflict.id == conflict_id, SyncConflict.tenant_id == self._tenant_id)
        )
        if conflict is None:
            raise NotFound(f"no conflict {conflict_id}")
        if conflict.status != "pending":
            raise Conflict(f"conflict {conflict_id} is {conflict.status} already", code="not_pending")
        if conflict.field == "_record" and body.resolution == "value":
            raise InvalidPolicy("a deletion is resolved with 'ours' (keep the record) or 'theirs' (delete it)")
        tenant = await self._tenant_slug()
        handle = (await self._client()).get_workflow_handle(crm_sync_workflow_id(tenant))
        decision = ConflictResolution(conflict_id=str(conflict_id), resolution=body.resolution, value=body.value,
                                      resolved_by=f"{self._principal.kind}:{self._principal.subject}")
        try:
            await handle.signal(CrmSyncSignal.RESOLVE_CONFLICT, decision, rpc_timeout=self._rpc_timeout)
        except RPCError as err:
            raise self._map_rpc(err) from err
        return ResolutionAccepted(conflict_id=str(conflict_id))


async def receive_hubspot_webhook(
    temporal: TemporalGateway, settings: Settings, *, tenant: str, method: str, url: str, body: bytes,
    timestamp: str, signature: str,
) -> int:
    """Verify a HubSpot v3 delivery and nudge the tenant's sync; the number of events it carried.

    The events are not applied from here: the sync pulls the records themselves, so a forged or
    reordered event can at worst cause one extra round.
    """
    sync = crm_sync_settings()
    secret = webhook_secret_for(tenant)
    if secret is None or not verify_webhook_signature(
        secret, method=method, uri=url, body=body, timestamp=timestamp, signature=signature,
        now_s=time.time(), max_age_s=sync.webhook_max_age_s,
    ):
        raise Unauthenticated("webhook signature does not verify", reason="bad_signature")
    try:
        events = parse_webhook_events(body)
    except ValueError as err:
        raise InvalidWebhook(str(err)) from err
    relevant = [e for e in events if e.object_type in ("contacts", "companies")]
    if not relevant:
        return 0
    handle = (await temporal.client()).get_workflow_handle(crm_sync_workflow_id(tenant))
    try:
        await asyncio.wait_for(handle.signal(CrmSyncSignal.CRM_CHANGED), settings.api_workflow_rpc_timeout_s)
    except RPCError as err:
        # No sync running for this tenant: nothing to nudge (its first round reads everything).
        if err.status != RPCStatusCode.NOT_FOUND:
            raise ServiceUnavailable("temporal", f"workflow service error: {err.status.name.lower()}") from err
    except asyncio.TimeoutError as err:
        raise unavailable(err) from err
    return len(relevant)
