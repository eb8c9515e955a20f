"""HTTP endpoints for campaigns: validate, then hand over to CampaignService."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from agency.security.rbac import Permission, Principal
from agency.settings import Settings
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS, error_responses
from api.campaigns.schemas import (
    ActionAccepted,
    ApprovalCreate,
    ApprovalResult,
    CampaignAccepted,
    CampaignCreate,
    CampaignView,
    AllocationView,
    ContentView,
    ExperimentView,
    ReallocationDecisionCreate,
    ReallocationDecisionResult,
    ReportView,
)
from api.campaigns.service import CampaignService
from api.model_gate import ModelGate
from api.temporal_gateway import TemporalGateway

router = APIRouter(
    prefix="/v1/campaigns", tags=["campaigns"], responses={**AUTHENTICATED_ERRORS, **error_responses(404, 409)}
)


def service_for(permission: Permission):
    """A CampaignService acting for a caller that holds ``permission``."""
    return Annotated[CampaignService, Depends(campaign_service(permission))]


def campaign_service(permission: Permission):
    """The dependency behind ``service_for`` (other routers build on it)."""

    # The permission is a closure variable: it goes in a default, as string annotations
    # (PEP 563) are resolved in module globals.
    def service(
        request: Request,
        session: Annotated[AsyncSession, Depends(deps.db_session)],
        temporal: Annotated[TemporalGateway, Depends(deps.temporal)],
        settings: Annotated[Settings, Depends(deps.settings)],
        model_gate: Annotated[ModelGate, Depends(deps.model_gate)],
        principal: Principal = requires(permission),
    ) -> CampaignService:
        return CampaignService(session, temporal, settings, model_gate, principal, request)

    return service


P = Permission


@router.post("", name="campaigns.create", status_code=status.HTTP_202_ACCEPTED, response_model=CampaignAccepted)
async def create_campaign(
    body: CampaignCreate,
    svc: service_for(P.CAMPAIGNS_CREATE),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> CampaignAccepted:
    campaign_id, workflow_id = await svc.start(body, idempotency_key)
    return CampaignAccepted(
        campaign_id=campaign_id, status_url=f"/v1/campaigns/{campaign_id}", workflow_id=workflow_id
    )


@router.get("/{campaign_id}", name="campaigns.get", response_model=CampaignView)
async def get_campaign(campaign_id: str, svc: service_for(P.CAMPAIGNS_READ)) -> CampaignView:
    return await svc.view(campaign_id)


@router.get("/{campaign_id}/content", name="campaigns.content", response_model=list[ContentView])
async def get_content(campaign_id: str, svc: service_for(P.CONTENT_READ)) -> list[ContentView]:
    return await svc.content(campaign_id)


@router.post("/{campaign_id}/approvals", name="campaigns.review", response_model=ApprovalResult)
async def review_content(
    campaign_id: str, body: ApprovalCreate, svc: service_for(P.CONTENT_APPROVE)
) -> ApprovalResult:
    return await svc.review(campaign_id, body)


@router.post(
    "/{campaign_id}/reallocations",
    name="campaigns.decide_reallocation",
    response_model=ReallocationDecisionResult,
    summary="Approve or reject the budget reallocation waiting for a decision",
)
async def decide_reallocation(
    campaign_id: str, body: ReallocationDecisionCreate, svc: service_for(P.BUDGET_APPROVE)
) -> ReallocationDecisionResult:
    return await svc.decide_reallocation(campaign_id, body)


@router.get("/{campaign_id}/allocation", name="campaigns.allocation", response_model=AllocationView)
async def get_allocation(campaign_id: str, svc: service_for(P.CAMPAIGNS_READ)) -> AllocationView:
    """The budget split, the market model's evidence behind it, and every reallocation since."""
    return await svc.allocation(campaign_id)


@router.get("/{campaign_id}/experiments", name="campaigns.experiments", response_model=list[ExperimentView])
async def get_experiments(campaign_id: str, svc: service_for(P.CAMPAIGNS_READ)) -> list[ExperimentView]:
    """A/B tests and bandits over the campaign's published variants, with the decision rule in numbers."""
    return await svc.experiments(campaign_id)


def _control_route(action: Literal["pause", "resume", "cancel"], summary: str) -> None:
    # One explicit path per action (not /{action}), so the schema lists exactly what exists.
    async def control(campaign_id: str, svc: service_for(P.CAMPAIGNS_CONTROL)) -> ActionAccepted:
        await svc.signal(campaign_id, action)
        return ActionAccepted(campaign_id=campaign_id, action=action)

    router.add_api_route(
        f"/{{campaign_id}}/{action}",
        control,
        methods=["POST"],
        name=f"campaigns.{action}",
        summary=summary,
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ActionAccepted,
    )


_control_route("pause", "Pause the campaign (the workflow waits where it is)")
_control_route("resume", "Resume a paused campaign")
_control_route("cancel", "Cancel the campaign; nothing more is published")


@router.get(
    "/{campaign_id}/report",
    name="campaigns.report",
    response_model=ReportView,
    # ?format=html answers the charted report itself.
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_report(
    campaign_id: str,
    svc: service_for(P.REPORTS_READ),
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> ReportView | HTMLResponse:
    report = await svc.report(campaign_id)
    if format == "html":
        with open(report.html_path, encoding="utf-8") as fh:
            return HTMLResponse(fh.read())
    return report
