"""ROI reports: request one (campaign or tenant scope), read its status, download HTML / PDF.

The API only starts the RoiReportWorkflow; an activity reads the numbers and renders.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from agency.contracts import RoiReportRequest, WorkflowName
from agency.db.decisions import DecisionRepository
from agency.db.models import Report, Tenant
from agency.db.repository import CampaignRepository
from agency.security.rbac import Permission, Principal
from agency.settings import Settings
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS, Conflict, NotFound, error_responses
from api.temporal_gateway import TemporalGateway, unavailable

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses={**AUTHENTICATED_ERRORS, **error_responses(404)})


class ReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["campaign", "tenant"]
    campaign_id: Annotated[str | None, StringConstraints(min_length=1, max_length=200)] = None

    @model_validator(mode="after")
    def _campaign_for_campaign_scope(self) -> "ReportCreate":
        if (self.scope == "campaign") != (self.campaign_id is not None):
            raise ValueError("campaign_id is required for scope 'campaign' and not allowed for scope 'tenant'")
        return self


class ReportStatus(BaseModel):
    report_id: str
    scope: str
    campaign_id: str | None
    trigger: str
    status: Literal["running", "ready", "failed"]
    created_at: datetime
    completed_at: datetime | None
    summary: dict[str, Any]
    html_url: str | None = Field(None, description="Present when ready")
    pdf_url: str | None = None
    error: str = ""


def _status(r: Report) -> ReportStatus:
    ready = r.status == "ready"
    return ReportStatus(
        report_id=r.id, scope=r.scope, campaign_id=r.campaign_id, trigger=r.trigger, status=r.status,
        created_at=r.created_at, completed_at=r.completed_at, summary=r.summary or {}, error=r.error,
        html_url=f"/v1/reports/{r.id}/html" if ready else None,
        pdf_url=f"/v1/reports/{r.id}/pdf" if ready else None,
    )


@router.post("", name="reports.create", status_code=status.HTTP_202_ACCEPTED, response_model=ReportStatus,
             responses=error_responses(503))
async def create_report(
    body: ReportCreate,
    principal: Annotated[Principal, requires(Permission.REPORTS_READ)],
    session: Annotated[AsyncSession, Depends(deps.db_session)],
    temporal: Annotated[TemporalGateway, Depends(deps.temporal)],
    settings: Annotated[Settings, Depends(deps.settings)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ReportStatus:
    """Start building a report; poll its status, then download the HTML or PDF."""
    tenant_id = uuid.UUID(principal.tenant_id)
    tenant = await session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
    if tenant is None:
        raise NotFound("the caller's tenant no longer exists")
    if body.campaign_id is not None and await CampaignRepository(session).get_tenant_campaign(tenant_id, body.campaign_id) is None:
        raise NotFound(f"campaign {body.campaign_id} not found")
    await session.rollback()
    suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}:{idempotency_key}").hex if idempotency_key else uuid.uuid4().hex
    report_id = f"rpt_{suffix[:24]}"
    async with session.begin():
        repo = DecisionRepository(session)
        existing = await repo.get_report(report_id)
        if existing is not None:
            if existing.tenant_id != tenant_id:
                raise Conflict("report id already taken; retry with another Idempotency-Key", code="id_taken")
            return _status(existing)
        await repo.start_report(
            report_id=report_id, tenant_id=tenant_id, scope=body.scope, campaign_id=body.campaign_id, trigger="api"
        )
        try:
            client = await temporal.client()
            await client.start_workflow(
                WorkflowName.ROI_REPORT,
                RoiReportRequest(report_id=report_id, tenant=tenant, scope=body.scope,
                                 campaign_id=body.campaign_id or "", trigger="api"),
                id=f"report/{report_id}",
                task_queue=settings.queue_orchestration,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except RPCError as err:
            raise unavailable(err) from err
    report = await DecisionRepository(session).get_report(report_id)
    assert report is not None
    return _status(report)


async def _report(session: AsyncSession, principal: Principal, report_id: str) -> Report:
    report = await DecisionRepository(session).get_report(report_id, uuid.UUID(principal.tenant_id))
    if report is None:  # another tenant's report reads like a missing one
        raise NotFound(f"report {report_id} not found")
    return report


@router.get("/{report_id}", name="reports.get", response_model=ReportStatus)
async def get_report(
    report_id: str,
    principal: Annotated[Principal, requires(Permission.REPORTS_READ)],
    session: Annotated[AsyncSession, Depends(deps.db_session)],
) -> ReportStatus:
    return _status(await _report(session, principal, report_id))


def _download(kind: Literal["html", "pdf"], media_type: str) -> None:
    async def download(
        report_id: str,
        principal: Annotated[Principal, requires(Permission.REPORTS_READ)],
        session: Annotated[AsyncSession, Depends(deps.db_session)],
    ) -> FileResponse:
        report = await _report(session, principal, report_id)
        path = report.html_path if kind == "html" else report.pdf_path
        if report.status != "ready" or not path or not Path(path).exists():
            raise Conflict(f"report {report_id} is {report.status}, not ready", code="report_not_ready")
        return FileResponse(path, media_type=media_type, filename=f"{report_id}.{kind}")

    router.add_api_route(
        f"/{{report_id}}/{kind}",
        download,
        methods=["GET"],
        name=f"reports.{kind}",
        summary=f"Download the report as {kind.upper()}",
        response_class=FileResponse,
        responses={200: {"content": {media_type: {}}}, **error_responses(409)},
    )


_download("html", "text/html")
_download("pdf", "application/pdf")
