"""Approval inbox use cases: pending items across the caller's campaigns, and decisions on them.

Decisions go to the campaign workflow through CampaignService.send_review, the same path as
POST /v1/campaigns/{id}/approvals: the workflow stays the one judge of what is pending.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from agency.contracts import ApprovalState, ContentFormat, ReviewDecision
from agency.db.models import Campaign, ContentItem, ContentVersion
from agency.security.rbac import Principal
from api.approvals.schemas import ApprovalAction, ApprovalDecided, ApprovalItem, ApprovalPage
from api.audit_trail import record_call
from api.campaigns.service import CampaignService
from api.errors import AgencyError, NotFound

# Formats whose copy has a title (blog title, email subject); the rest are body only.
TITLED_FORMATS = frozenset({ContentFormat.BLOG_POST.value, ContentFormat.EMAIL.value})


class InvalidRequest(AgencyError):
    """422 in the same shape as a schema validation error: which field, and why."""

    status_code = 422
    code = "validation_error"

    def __init__(self, message: str, *, loc: list[str], type_: str = "value_error") -> None:
        super().__init__(message)
        self.fields = [{"loc": loc, "message": message, "type": type_}]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": "request is invalid", "fields": self.fields}}


@dataclass(frozen=True)
class InboxFilter:
    campaign_id: str | None = None
    channel: str | None = None
    format: str | None = None


# ---- cursor: the (created_at, item_id) of the last item served, opaque to clients -------------
def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        position = datetime.fromisoformat(created_at), str(item_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as err:
        raise InvalidRequest("cursor is not one this API returned", loc=["query", "cursor"]) from err
    if position[0].tzinfo is None or "\x00" in position[1]:
        raise InvalidRequest("cursor is not one this API returned", loc=["query", "cursor"])
    return position


def review_decision(item_format: str, action: ApprovalAction, reviewer: str, item_id: str) -> ReviewDecision:
    """The REVIEW update payload for ``action`` on an item of ``item_format``."""
    if action.action != "edit":
        approve = action.action == "approve"
        return ReviewDecision(item_id=item_id, approve=approve, reviewer=reviewer, note=action.reason)
    titled = item_format in TITLED_FORMATS
    if titled and not action.title:
        raise InvalidRequest(f"an edit of a {item_format} needs its title", loc=["body", "title"], type_="missing")
    if not titled and action.title:
        raise InvalidRequest(f"a {item_format} has no title", loc=["body", "title"], type_="extra_forbidden")
    return ReviewDecision(
        item_id=item_id,
        approve=True,
        reviewer=reviewer,
        note=action.reason,
        edited_title=action.title if titled else None,
        edited_body=action.body,
    )


def approval_item(item: ContentItem, version: ContentVersion, campaign_name: str) -> ApprovalItem:
    compliance = version.compliance or {}
    return ApprovalItem(
        item_id=item.id,
        campaign_id=item.campaign_id,
        campaign_name=campaign_name,
        channel=item.channel,
        format=item.format,
        publish_on=item.publish_on,
        version=version.version,
        title=version.title,
        body=version.body,
        parts=version.parts or {},
        compliance_passed=compliance.get("passed"),
        findings=compliance.get("findings", []),
        generation=version.generation or {},
        model=version.model,
        created_at=version.created_at,
    )


class ApprovalService:
    """On behalf of one caller: every lookup is scoped to the caller's tenant."""

    def __init__(
        self, session: AsyncSession, campaigns: CampaignService, principal: Principal, request: Request
    ) -> None:
        self._session = session
        self._campaigns = campaigns
        self._principal = principal
        self._tenant_id = uuid.UUID(principal.tenant_id)
        self._request = request

    async def pending(self, where: InboxFilter, *, limit: int, cursor: str | None) -> ApprovalPage:
        """Pending items of the tenant's running campaigns, longest waiting first."""
        stmt = (
            select(ContentItem, ContentVersion, Campaign.name)
            .join(Campaign, Campaign.id == ContentItem.campaign_id)
            .join(
                ContentVersion,
                (ContentVersion.item_id == ContentItem.id) & (ContentVersion.version == ContentItem.current_version),
            )
            .where(
                Campaign.tenant_id == self._tenant_id,
                # A closed campaign's leftovers cannot be decided any more (its workflow is gone).
                Campaign.status == "running",
                ContentItem.approval_state == ApprovalState.PENDING.value,
            )
            .order_by(ContentVersion.created_at, ContentItem.id)
            .limit(limit + 1)
        )
        if where.campaign_id is not None:
            stmt = stmt.where(ContentItem.campaign_id == where.campaign_id)
        if where.channel is not None:
            stmt = stmt.where(ContentItem.channel == where.channel)
        if where.format is not None:
            stmt = stmt.where(ContentItem.format == where.format)
        if cursor is not None:
            after = decode_cursor(cursor)
            stmt = stmt.where(tuple_(ContentVersion.created_at, ContentItem.id) > tuple_(*after))
        rows = (await self._session.execute(stmt)).all()
        page = [approval_item(item, version, name) for item, version, name in rows[:limit]]
        more = len(rows) > limit
        return ApprovalPage(
            items=page,
            next_cursor=encode_cursor(page[-1].created_at, page[-1].item_id) if more else None,
        )

    async def decide(self, item_id: str, action: ApprovalAction) -> ApprovalDecided:
        item = await self._session.scalar(
            select(ContentItem)
            .join(Campaign, Campaign.id == ContentItem.campaign_id)
            .where(ContentItem.id == item_id, Campaign.tenant_id == self._tenant_id)
        )
        if item is None:
            # Another tenant's item reads exactly like a missing one: no existence leak.
            raise NotFound(f"content item {item_id} not found")
        # The reviewer of record is the authenticated caller, not a name in the body.
        decision = review_decision(item.format, action, self._principal.subject, item.id)
        outcome = await self._campaigns.send_review(item.campaign_id, decision)
        # The session still holds the read transaction that found the item.
        await record_call(
            self._request,
            self._session,
            subject_type="content_item",
            subject_id=item.id,
            detail={
                "campaign_id": item.campaign_id,
                "action": action.action,
                "approval_state": outcome.approval_state,
                "edited": decision.edited_body is not None,
            },
        )
        await self._session.commit()
        return ApprovalDecided(
            item_id=item.id,
            campaign_id=item.campaign_id,
            action=action.action,
            approval_state=outcome.approval_state,
            remaining_pending=outcome.remaining_pending,
        )
