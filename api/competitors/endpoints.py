"""/v1/competitors: register competitor sources, read poll status and topics, poll now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, status

from agency.security.rbac import Permission
from api import deps
from api.competitors.schemas import CompetitorsIn, CompetitorsOut, PollAccepted, TopicsOut
from api.competitors.service import CompetitorService
from api.errors import AUTHENTICATED_ERRORS, error_responses

router = APIRouter(prefix="/v1/competitors", tags=["competitors"], responses=AUTHENTICATED_ERRORS)


service_for = deps.workflow_service(CompetitorService)


@router.put("", name="competitors.register", response_model=CompetitorsOut, responses=error_responses(404, 503))
async def register(
    body: CompetitorsIn,
    service: Annotated[CompetitorService, Depends(service_for(Permission.MARKET_WRITE))],
) -> CompetitorsOut:
    """Watch exactly these sources (others are dropped with their items) every ``interval_minutes``."""
    return await service.register(body)


@router.get("", name="competitors.list", response_model=CompetitorsOut)
async def list_sources(
    service: Annotated[CompetitorService, Depends(service_for(Permission.CAMPAIGNS_READ))],
) -> CompetitorsOut:
    """The watched sources with their last poll's status and item counts."""
    return await service.view()


@router.get("/topics", name="competitors.topics", response_model=TopicsOut)
async def topics(
    service: Annotated[CompetitorService, Depends(service_for(Permission.CAMPAIGNS_READ))],
) -> TopicsOut:
    """Topics in competitors' recent output, their momentum and the proposed responses."""
    return await service.topics()


@router.post("/poll", name="competitors.poll", status_code=status.HTTP_202_ACCEPTED, response_model=PollAccepted,
             responses=error_responses(404, 409, 503))
async def poll(
    service: Annotated[CompetitorService, Depends(service_for(Permission.MARKET_WRITE))],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> PollAccepted:
    """Poll the sources now; the result shows in GET /v1/competitors and /topics."""
    return await service.poll(idempotency_key)
