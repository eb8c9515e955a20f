"""Campaign use cases: the API's only path to workflows and campaign storage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from agency.contracts import (
    CampaignHandler,
    CampaignInput,
    CampaignStatus,
    CampaignTimings,
    DecisionPolicy,
    ReallocationDecision,
    ReallocationOutcome,
    ReviewDecision,
    ReviewErrorType,
    ReviewOutcome,
    TaskQueues,
    WorkflowName,
)
from agency.db.decisions import DecisionRepository, market_fit_id
from agency.db.models import Campaign, Tenant
from agency.db.repository import CampaignRepository
from agency.security.rbac import Principal
from agency.serialization import to_json
from agency.settings import Settings
from api.campaigns.schemas import (
    ApprovalCreate,
    ApprovalResult,
    CampaignCreate,
    CampaignView,
    ContentView,
    AllocationChangeView,
    AllocationView,
    ExperimentArmView,
    ExperimentView,
    ItemView,
    ReallocationDecisionCreate,
    ReallocationDecisionResult,
    ReportView,
)
from api.audit_trail import record_call
from api.errors import AgencyError, Conflict, NotFound, ServiceUnavailable
from api.model_gate import ModelGate
from api.temporal_gateway import TemporalGateway, is_unavailable, unavailable



class InvalidReview(AgencyError):
    """422: the workflow refused the decision itself (not the item's state)."""

    status_code = 422

    def __init__(self, message: str, *, code: str = "invalid_review", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.code = code


def workflow_id_for(tenant_slug: str, campaign_id: str) -> str:
    """Workflow ids carry the tenant, so the Temporal UI and its filters show whose run it is."""
    return f"{tenant_slug}/{campaign_id}"


def campaign_id_for(tenant: str, idempotency_key: str | None) -> str:
    """A client retrying with the same Idempotency-Key gets the same campaign, not a second one."""
    if idempotency_key:
        return "cmp_" + hashlib.sha256(f"{tenant}\x00{idempotency_key}".encode()).hexdigest()[:20]
    return "cmp_" + uuid.uuid4().hex[:20]


def timings_from(settings: Settings) -> CampaignTimings:
    return CampaignTimings(
        approval_timeout_s=settings.approval_timeout_s,
        approval_reminder_s=settings.approval_reminder_s,
        metrics_interval_s=settings.metrics_interval_s,
        metrics_rounds=settings.metrics_rounds,
        generation_max_tokens=settings.generation_max_tokens,
        generation_temperature=settings.generation_temperature,
        activity_timeout_s=settings.activity_timeout_s,
        generation_timeout_s=settings.generation_timeout_s,
        model_server_probe_max_interval_s=settings.model_server_probe_max_interval_s,
        generation_variants=settings.generation_variants,
        content_concurrency=settings.content_concurrency,
        review_regenerations=settings.review_regenerations,
    )


def decisions_from(settings: Settings) -> DecisionPolicy:
    return DecisionPolicy(
        reallocation_approval_threshold=settings.reallocation_approval_threshold,
        reallocation_min_change=settings.reallocation_min_change,
        reallocation_decision_timeout_s=settings.reallocation_decision_timeout_s,
        experiment_mode=settings.experiment_mode,
        conversion_value_cents=settings.conversion_value_cents,
    )


class CampaignService:
    """Campaign use cases on behalf of one caller; every lookup is scoped to the caller's tenant."""

    def __init__(
        self,
        session: AsyncSession,
        temporal: TemporalGateway,
        settings: Settings,
        model_gate: ModelGate,
        principal: Principal,
        request: Request,
    ) -> None:
        self._model_gate = model_gate
        self._principal = principal
        self._tenant_id = uuid.UUID(principal.tenant_id)
        self._request = request
        # How long to wait on the workflow before telling the client to retry.
        self._rpc_timeout = timedelta(seconds=settings.api_workflow_rpc_timeout_s)
        self._session = session
        self._repo = CampaignRepository(session)
        self._temporal = temporal
        self._settings = settings

    # ---- commands --------------------------------------------------------------------
    async def start(self, body: CampaignCreate, idempotency_key: str | None) -> tuple[str, str]:
        """Start the campaign workflow; returns (campaign id, workflow id)."""
        tenant_slug = await self._session.scalar(select(Tenant.slug).where(Tenant.id == self._tenant_id))
        await self._session.rollback()  # end the read; the write below is one transaction
        if tenant_slug is None:
            raise NotFound("the caller's tenant no longer exists")
        brief = body.to_brief(tenant_slug)
        campaign_id = campaign_id_for(tenant_slug, idempotency_key)
        workflow_id = workflow_id_for(tenant_slug, campaign_id)
        await self._model_gate.require_ready()
        client = await self._temporal.client()
        # Row and workflow start succeed together: the transaction commits only after the start
        # call returns, and the workflow's first activity re-registers the row idempotently.
        async with self._session.begin():
            campaign = await self._repo.create_campaign(
                campaign_id=campaign_id,
                tenant_slug=brief.tenant,
                name=brief.name,
                brief=to_json(brief),
                workflow_id=workflow_id,
            )
            if campaign.tenant_id != self._tenant_id:  # an id collision must never cross tenants
                raise Conflict("campaign id already taken; retry with another Idempotency-Key", code="id_taken")
            s = self._settings
            try:
                await client.start_workflow(
                    WorkflowName.CAMPAIGN,
                    CampaignInput(
                        campaign_id=campaign_id,
                        brief=brief,
                        timings=timings_from(s),
                        decisions=decisions_from(s),
                        queues=TaskQueues(
                            orchestration=s.queue_orchestration,
                            inference=s.queue_inference,
                            integrations=s.queue_integrations,
                        ),
                    ),
                    id=workflow_id,
                    task_queue=s.queue_orchestration,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    rpc_timeout=self._rpc_timeout,
                )
            except RPCError as err:
                if err.status == RPCStatusCode.ALREADY_EXISTS:
                    return campaign_id, workflow_id  # same idempotency key, campaign already finished
                raise self._map_rpc(err, campaign_id) from err
            # Appended last: the audit chain lock is then held only until commit, not across the
            # Temporal call.
            await record_call(
                self._request,
                self._session,
                subject_type="campaign",
                subject_id=campaign_id,
                detail={"channels": brief.channels, "budget_cents": brief.total_budget_cents},
            )
        return campaign_id, workflow_id

    async def review(self, campaign_id: str, body: ApprovalCreate) -> ApprovalResult:
        outcome = await self.send_review(
            campaign_id,
            ReviewDecision(
                item_id=body.item_id,
                approve=body.decision == "approve",
                # The reviewer of record is the authenticated caller, not a name in the body.
                reviewer=self._principal.subject,
                note=body.note,
            ),
        )
        return ApprovalResult(
            item_id=outcome.item_id, approval_state=outcome.approval_state, remaining_pending=outcome.remaining_pending
        )

    async def send_review(self, campaign_id: str, decision: ReviewDecision) -> ReviewOutcome:
        """The REVIEW update on the running campaign (also sent by the approval inbox)."""
        return await self._update(campaign_id, CampaignHandler.REVIEW, decision, ReviewOutcome)

    async def decide_reallocation(self, campaign_id: str, body: ReallocationDecisionCreate) -> ReallocationDecisionResult:
        outcome = await self._update(
            campaign_id,
            CampaignHandler.DECIDE_REALLOCATION,
            ReallocationDecision(
                round=body.round, approve=body.decision == "approve", reviewer=self._principal.subject, note=body.note
            ),
            ReallocationOutcome,
        )
        return ReallocationDecisionResult(campaign_id=campaign_id, round=outcome.round, status=outcome.status)

    async def _update(self, campaign_id: str, update: str, arg, result_type):
        """Run a workflow update on the running campaign; its validator's refusals become 4xx."""
        handle = await self._running_handle(campaign_id)
        try:
            return await handle.execute_update(update, arg, result_type=result_type, rpc_timeout=self._rpc_timeout)
        except WorkflowUpdateFailedError as err:
            raise self._map_review_failure(err) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            # No worker took the update in time (all down or overloaded): retry later.
            raise ServiceUnavailable("temporal", "the campaign workflow did not answer in time") from err
        except RPCError as err:
            raise self._map_rpc(err, campaign_id) from err

    async def allocation(self, campaign_id: str) -> AllocationView:
        campaign = await self._campaign(campaign_id)
        decisions = DecisionRepository(self._session)
        fit = await decisions.get_fit(market_fit_id(campaign_id))
        changes = await decisions.allocation_changes(campaign_id)
        return AllocationView(
            campaign_id=campaign_id,
            budget=campaign.budget,
            market=fit.gate.get("assessment") if fit is not None else None,
            changes=[
                AllocationChangeView(
                    round=c.round, status=c.status, change=c.change, before_cents=c.before_cents,
                    after_cents=c.after_cents, reason=c.reason, decided_by=c.decided_by, note=c.note,
                )
                for c in changes
            ],
        )

    async def experiments(self, campaign_id: str) -> list[ExperimentView]:
        await self._campaign(campaign_id)
        views = []
        for e in await DecisionRepository(self._session).experiments(campaign_id):
            result = e.result or {}
            views.append(
                ExperimentView(
                    experiment_id=e.id, channel=e.channel, mode=e.mode, control=e.control, status=e.status,
                    winner=e.winner, peeks=e.peeks, metric=result.get("metric", e.config.get("metric", "")),
                    threshold=result.get("threshold", ""), reason=result.get("reason", "waiting for metrics"),
                    weights=result.get("weights", {}),
                    arms=[ExperimentArmView(**{k: a.get(k) for k in ExperimentArmView.model_fields}) for a in result.get("arms", [])],
                )
            )
        return views

    async def signal(self, campaign_id: str, action: str) -> None:
        handle = await self._running_handle(campaign_id)
        try:
            if action == "cancel":
                await handle.cancel(rpc_timeout=self._rpc_timeout)
            else:
                await handle.signal(action, rpc_timeout=self._rpc_timeout)
        except RPCError as err:
            raise self._map_rpc(err, campaign_id) from err
        # The session already holds the read transaction that found the campaign.
        await record_call(self._request, self._session, subject_type="campaign", subject_id=campaign_id)
        await self._session.commit()

    # ---- reads -----------------------------------------------------------------------
    async def view(self, campaign_id: str) -> CampaignView:
        campaign = await self._campaign(campaign_id)
        live = await self._live_status(campaign.workflow_id)
        if live is not None:
            return CampaignView(
                campaign_id=campaign_id,
                workflow_id=campaign.workflow_id,
                tenant=campaign.brief["tenant"],
                name=campaign.name,
                status="paused" if live.paused else campaign.status,
                phase=live.phase,
                paused=live.paused,
                live=True,
                completed_phases=live.completed_phases,
                items=[ItemView(**item.__dict__) for item in live.items],
                reminders_sent=live.reminders_sent,
                escalated=live.escalated,
                metrics_rounds_done=live.metrics_rounds_done,
                degraded=live.degraded,
                degraded_reason=live.degraded_reason,
                experiments=[asdict(e) for e in live.experiments],
                pending_reallocation=asdict(live.pending_reallocation) if live.pending_reallocation else None,
                budget=campaign.budget,
                plan=campaign.plan,
                calendar=campaign.calendar,
                brand_version=campaign.brand_version,
                report_path=campaign.report_path,
            )
        # Workflow closed or unreachable: answer from storage.
        content = await self._repo.list_content(campaign_id)
        steps = await self._repo.list_steps(campaign_id)
        return CampaignView(
            campaign_id=campaign_id,
            workflow_id=campaign.workflow_id,
            tenant=campaign.brief["tenant"],
            name=campaign.name,
            status=campaign.status,
            phase=campaign.phase,
            paused=False,
            live=False,
            completed_phases=[s.phase for s in steps if s.phase != campaign.phase],
            items=[
                ItemView(
                    item_id=item.id,
                    channel=item.channel,
                    format=item.format,
                    approval_state=item.approval_state,
                    version=item.current_version,
                    external_id=item.external_id or "",
                )
                for item, _ in content
            ],
            budget=campaign.budget,
            plan=campaign.plan,
            calendar=campaign.calendar,
            brand_version=campaign.brand_version,
            report_path=campaign.report_path,
        )

    async def content(self, campaign_id: str) -> list[ContentView]:
        await self._campaign(campaign_id)
        return [
            ContentView(
                item_id=item.id,
                channel=item.channel,
                format=item.format,
                publish_on=item.publish_on,
                approval_state=item.approval_state,
                version=version.version,
                title=version.title,
                body=version.body,
                model=version.model,
                prompt_tokens=version.prompt_tokens,
                completion_tokens=version.completion_tokens,
                compliance=version.compliance or {},
                external_id=item.external_id,
                parts=version.parts or {},
                generation=version.generation or {},
            )
            for item, version in await self._repo.list_content(campaign_id)
        ]

    async def report(self, campaign_id: str) -> ReportView:
        campaign = await self._campaign(campaign_id)
        if not campaign.report_path or not Path(campaign.report_path).exists():
            raise Conflict(
                f"campaign {campaign_id} has no report yet (phase: {campaign.phase})", code="report_not_ready"
            )
        html_path = Path(campaign.report_path)
        summary = json.loads(html_path.with_suffix(".json").read_text(encoding="utf-8"))
        markdown = html_path.with_suffix(".md").read_text(encoding="utf-8")
        return ReportView(campaign_id=campaign_id, html_path=str(html_path), summary=summary, markdown=markdown)

    # ---- helpers ---------------------------------------------------------------------
    async def _campaign(self, campaign_id: str) -> Campaign:
        # Another tenant's campaign reads exactly like a missing one: no existence leak.
        campaign = await self._repo.get_tenant_campaign(self._tenant_id, campaign_id)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return campaign

    async def _running_handle(self, campaign_id: str) -> WorkflowHandle:
        campaign = await self._campaign(campaign_id)
        client = await self._temporal.client()
        handle = client.get_workflow_handle(campaign.workflow_id)
        try:
            desc = await handle.describe(rpc_timeout=self._rpc_timeout)
        except RPCError as err:
            raise self._map_rpc(err, campaign_id) from err
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise Conflict(
                f"campaign {campaign_id} is no longer running ({desc.status.name.lower()})", code="campaign_closed"
            )
        return handle

    async def _live_status(self, workflow_id: str) -> CampaignStatus | None:
        try:
            client = await self._temporal.client()
            handle = client.get_workflow_handle(workflow_id)
            desc = await handle.describe(rpc_timeout=self._rpc_timeout)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return None
            return await handle.query(CampaignHandler.STATUS, result_type=CampaignStatus, rpc_timeout=self._rpc_timeout)
        except (ServiceUnavailable, RPCError, asyncio.TimeoutError):
            return None

    @staticmethod
    def _map_rpc(err: RPCError, campaign_id: str) -> AgencyError:
        if err.status == RPCStatusCode.NOT_FOUND:
            return NotFound(f"campaign {campaign_id} has no workflow")
        if is_unavailable(err):
            return unavailable(err)
        return ServiceUnavailable("temporal", f"workflow service error: {err.status.name.lower()}")

    @staticmethod
    def _map_review_failure(err: WorkflowUpdateFailedError) -> AgencyError:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            if cause.type == ReviewErrorType.UNKNOWN_ITEM:
                return NotFound(cause.message)
            if cause.type == ReviewErrorType.NOT_PENDING:
                return Conflict(cause.message, code="not_pending")
            if cause.type == ReviewErrorType.NO_PENDING_REALLOCATION:
                return Conflict(cause.message, code="no_pending_reallocation")
            if cause.type == ReviewErrorType.INVALID:
                return InvalidReview(cause.message)
            if cause.type == ReviewErrorType.EDITED_COPY_BLOCKED:
                # The workflow passes the compliance findings as the failure's first detail.
                findings = cause.details[0] if cause.details else []
                return InvalidReview(cause.message, code="edited_copy_blocked", details={"findings": findings})
        return Conflict(f"review was not applied: {cause}", code="review_failed")
