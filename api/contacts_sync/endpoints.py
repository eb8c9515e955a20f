"""/v1/sync: start and watch the tenant's CRM sync, the conflicts waiting for review; the
HubSpot webhook receiver (authenticated by its v3 signature, not by a login)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from agency.security.rbac import Permission
from agency.settings import Settings
from api import deps
from api.contacts_sync.schemas import (
    ConflictsOut,
    ResolutionAccepted,
    ResolutionIn,
    SyncStarted,
    SyncStartIn,
    SyncStatusOut,
)
from api.contacts_sync.service import CrmSyncService, receive_hubspot_webhook
from api.errors import AUTHENTICATED_ERRORS, error_responses
from api.temporal_gateway import TemporalGateway

router = APIRouter(tags=["crm sync"])


service_for = deps.workflow_service(CrmSyncService)


@router.post("/v1/sync/crm", name="sync.crm.start", status_code=status.HTTP_202_ACCEPTED, response_model=SyncStarted,
             responses={**AUTHENTICATED_ERRORS, **error_responses(404)})
async def start_sync(
    service: Annotated[CrmSyncService, Depends(service_for(Permission.CONTACTS_WRITE))],
    body: SyncStartIn | None = None,
) -> SyncStarted:
    """Start the tenant's two-way CRM sync (or leave the running one as it is)."""
    return await service.start(body or SyncStartIn())


@router.get("/v1/sync/crm", name="sync.crm.status", response_model=SyncStatusOut, responses=AUTHENTICATED_ERRORS)
async def sync_status(
    service: Annotated[CrmSyncService, Depends(service_for(Permission.CONTACTS_READ))],
) -> SyncStatusOut:
    """Where the sync stands: rounds, cursors, counters, conflicts waiting."""
    return await service.status()


@router.get("/v1/sync/conflicts", name="sync.conflicts.list", response_model=ConflictsOut,
            responses=AUTHENTICATED_ERRORS)
async def list_conflicts(
    service: Annotated[CrmSyncService, Depends(service_for(Permission.CONTACTS_READ))],
) -> ConflictsOut:
    """Fields both sides edited that the policy leaves to a person (oldest first)."""
    return await service.conflicts()


@router.post("/v1/sync/conflicts/{conflict_id}", name="sync.conflicts.resolve", status_code=status.HTTP_202_ACCEPTED,
             response_model=ResolutionAccepted, responses={**AUTHENTICATED_ERRORS, **error_responses(404, 409)})
async def resolve_conflict(
    conflict_id: uuid.UUID,
    body: ResolutionIn,
    service: Annotated[CrmSyncService, Depends(service_for(Permission.CONTACTS_WRITE))],
) -> ResolutionAccepted:
    """Decide a conflict: our value, the CRM's, or a new ``value``; the sync writes it to both sides."""
    return await service.resolve(conflict_id, body)


@router.post("/v1/webhooks/hubspot/{tenant}", name="webhooks.hubspot", status_code=status.HTTP_204_NO_CONTENT,
             responses=error_responses(400, 401, 503))
async def hubspot_webhook(
    tenant: str,
    request: Request,
    temporal: Annotated[TemporalGateway, Depends(deps.temporal)],
    settings: Annotated[Settings, Depends(deps.settings)],
) -> Response:
    """HubSpot's change notifications (v3 signature): the tenant's sync runs a round now."""
    await receive_hubspot_webhook(
        temporal, settings, tenant=tenant, method=request.method, url=str(request.url), body=await request.body(),
        timestamp=request.headers.get("X-HubSpot-Request-Timestamp", ""),
        signature=request.headers.get("X-HubSpot-Signature-v3", ""),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
