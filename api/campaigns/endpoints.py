"""HTTP endpoints for campaigns: validate, then hand over to CampaignService."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, status
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from agency.settings import Settings
from api import deps
from api.campaigns.schemas import (
    ActionAccepted,
    ApprovalCreate,
    ApprovalResult,
    CampaignAccepted,
    CampaignCreate,
    CampaignView,
    ContentView,
    ReportView,
)
from api.campaigns.service import CampaignService
from api.model_gate import ModelGate
from api.temporal_gateway import TemporalGateway

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


def service(
    session: Annotated[AsyncSession, Depends(deps.db_session)],
    temporal: Annotated[TemporalGateway, Depends(deps.temporal)],
    settings: Annotated[Settings, Depends(deps.settings)],
    model_gate: Annotated[ModelGate, Depends(deps.model_gate)],
) -> CampaignService:
    return CampaignService(session, temporal, settings, model_gate)


Service = Annotated[CampaignService, Depends(service)]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=CampaignAccepted)
async def create_campaign(
    body: CampaignCreate,
    svc: Service,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> CampaignAccepted:
    campaign_id = await svc.start(body, idempotency_key)
    return CampaignAccepted(
        campaign_id=campaign_id, status_url=f"/v1/campaigns/{campaign_id}", workflow_id=campaign_id
    )


@router.get("/{campaign_id}", response_model=CampaignView)
async def get_campaign(campaign_id: str, svc: Service) -> CampaignView:
    return await svc.view(campaign_id)


@router.get("/{campaign_id}/content", response_model=list[ContentView])
async def get_content(campaign_id: str, svc: Service) -> list[ContentView]:
    return await svc.content(campaign_id)


@router.post("/{campaign_id}/approvals", response_model=ApprovalResult)
async def review_content(campaign_id: str, body: ApprovalCreate, svc: Service) -> ApprovalResult:
    return await svc.review(campaign_id, body)


@router.post("/{campaign_id}/{action}", status_code=status.HTTP_202_ACCEPTED, response_model=ActionAccepted)
async def campaign_action(
    campaign_id: str, action: Literal["pause", "resume", "cancel"], svc: Service
) -> ActionAccepted:
    await svc.signal(campaign_id, action)
    return ActionAccepted(campaign_id=campaign_id, action=action)


@router.get("/{campaign_id}/report", response_model=ReportView)
async def get_report(
    campaign_id: str, svc: Service, format: Annotated[Literal["json", "html"], Query()] = "json"
) -> ReportView | HTMLResponse:
    report = await svc.report(campaign_id)
    if format == "html":
        with open(report.html_path, encoding="utf-8") as fh:
            return HTMLResponse(fh.read())
    return report
