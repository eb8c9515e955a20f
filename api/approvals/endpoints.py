"""GET/POST /v1/approvals: the approval inbox across all of the caller's campaigns."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from agency.contracts import Channel, ContentFormat
from agency.security.rbac import Permission, Principal
from api import deps
from api.approvals.schemas import NO_NUL, ApprovalAction, ApprovalDecided, ApprovalPage
from api.approvals.service import ApprovalService, InboxFilter
from api.auth.principal import requires
from api.campaigns.endpoints import campaign_service
from api.campaigns.service import CampaignService
from api.errors import AUTHENTICATED_ERRORS, error_responses

router = APIRouter(
    prefix="/v1/approvals", tags=["approvals"], responses={**AUTHENTICATED_ERRORS, **error_responses(404, 409)}
)
MAX_PAGE = 200


def service_for(permission: Permission):
    # Dependencies as defaults: closure variables cannot be resolved from string annotations.
    def service(
        request: Request,
        session: Annotated[AsyncSession, Depends(deps.db_session)],
        principal: Principal = requires(permission),
        campaigns: CampaignService = Depends(campaign_service(permission)),
    ) -> ApprovalService:
        return ApprovalService(session, campaigns, principal, request)

    return Annotated[ApprovalService, Depends(service)]


@router.get("", name="approvals.list", response_model=ApprovalPage)
async def list_pending(
    svc: service_for(Permission.CONTENT_READ),
    campaign_id: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)] = None,
    channel: Annotated[Channel | None, Query()] = None,
    format: Annotated[ContentFormat | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=500, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> ApprovalPage:
    """Content waiting for approval in the caller's running campaigns, oldest draft first."""
    where = InboxFilter(
        campaign_id=campaign_id,
        channel=channel.value if channel is not None else None,
        format=format.value if format is not None else None,
    )
    return await svc.pending(where, limit=limit, cursor=cursor)


@router.post(
    "/{item_id}",
    name="approvals.decide",
    response_model=ApprovalDecided,
    summary="Approve, reject (with a reason) or edit-then-approve one pending item",
)
async def decide(
    item_id: Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)],
    body: ApprovalAction,
    svc: service_for(Permission.CONTENT_APPROVE),
) -> ApprovalDecided:
    return await svc.decide(item_id, body)
