"""Reading the audit trail: one tenant's records, filtered, newest first, keyset-paged."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agency.db.models import AuditEvent

MAX_PAGE = 200


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    # Pass back as ``before_id`` for the next (older) page; None on the last page.
    next_before_id: int | None


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_audit_events(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    action: str | None = None,
    actor: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> AuditPage:
    """Always scoped to ``tenant_id``: an admin sees their own tenant's trail, never another's.

    ``action`` is exact, or a prefix when it ends in ``.*`` (``campaigns.*`` matches
    ``campaigns.create`` but not ``campaignsx``).
    """
    limit = max(1, min(limit, MAX_PAGE))
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if action is not None:
        if action.endswith(".*"):
            query = query.where(AuditEvent.action.like(_like_prefix(action[:-1]), escape="\\"))
        else:
            query = query.where(AuditEvent.action == action)
    for column, value in (
        (AuditEvent.actor, actor),
        (AuditEvent.subject_type, subject_type),
        (AuditEvent.subject_id, subject_id),
        (AuditEvent.outcome, outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = list(await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    events = rows[:limit]
    return AuditPage(events=events, next_before_id=events[-1].id if more else None)
