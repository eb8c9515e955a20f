"""The caller's tenant's audit trail, newest first, for admins."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession

from agency.security.audit_query import list_audit_events
from agency.security.rbac import Permission, Principal
from api import deps
from api.auth.principal import requires
from api.errors import AUTHENTICATED_ERRORS

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=AUTHENTICATED_ERRORS)
Filter = Annotated[str | None, Query(min_length=1, max_length=200)]
_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")


def _iso_8601_only(value: object) -> object:
    # pydantic would also read "0.5" as a Unix time; the schema promises RFC 3339 date-times.
    if isinstance(value, str) and not _ISO_8601.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-11-29T10:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_8601_only)]


class AuditRecord(BaseModel):
    id: int
    created_at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    outcome: str
    request_id: str | None
    detail: dict[str, Any]
    hash: str


class AuditPageView(BaseModel):
    events: list[AuditRecord]
    # Pass as before_id (with the same filters) for the next, older page; null on the last page.
    next_before_id: int | None


@router.get("", name="audit.list", response_model=AuditPageView)
async def list_audit(
    principal: Annotated[Principal, requires(Permission.AUDIT_READ)],
    session: Annotated[AsyncSession, Depends(deps.db_session)],
    action: Annotated[str | None, Query(min_length=1, max_length=200, description='Exact, or a prefix as "campaigns.*"')] = None,
    actor: Filter = None,
    subject_type: Filter = None,
    subject_id: Filter = None,
    outcome: Filter = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPageView:
    page = await list_audit_events(
        session,
        tenant_id=uuid.UUID(principal.tenant_id),
        action=action,
        actor=actor,
        subject_type=subject_type,
        subject_id=subject_id,
        outcome=outcome,
        since=since,
        until=until,
        before_id=before_id,
        limit=limit,
    )
    return AuditPageView(
        events=[AuditRecord.model_validate(event, from_attributes=True) for event in page.events],
        next_before_id=page.next_before_id,
    )
