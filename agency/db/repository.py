"""Campaign persistence used by activities and the API.

Every write is idempotent (ON CONFLICT / conditional UPDATE) because Temporal retries
activities. The repository never commits: callers own the transaction
(``async with session.begin(): ...``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Select, distinct, func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agency.contracts import (
    CampaignHistory,
    CampaignPhase,
    ChannelHistory,
    ItemMetrics,
    MetricsSnapshot,
    PastCampaign,
)
from agency.db.models import (
    APPROVAL_STATES,
    CAMPAIGN_STATUSES,
    REVIEW_DECISIONS,
    AuditEvent,
    Campaign,
    CampaignStep,
    ChannelMetric,
    ContentItem,
    ContentReview,
    ContentVersion,
    Tenant,
)
from agency.security.audit import AUDIT_CHAIN_LOCK_KEY, append_audit_event


_T = TypeVar("_T")

# Reads use populate_existing instead of syncing the identity map on every UPDATE.
_NO_SYNC = {"synchronize_session": False}


class RecordNotFound(LookupError):
    """The campaign or content item a write refers to does not exist."""


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one_fresh(self, stmt: Select[tuple[_T]]) -> _T | None:
        # populate_existing: rows changed by Core statements must not be served stale
        # from the session's identity map.
        result = await self.session.scalars(stmt.execution_options(populate_existing=True))
        return result.one_or_none()

    # ---- tenants and campaigns -----------------------------------------------------
    async def ensure_tenant(self, slug: str, name: str | None = None) -> Tenant:
        """The tenant with ``slug``, created on first use."""
        await self.session.execute(
            insert(Tenant).values(slug=slug, name=name or slug).on_conflict_do_nothing(index_elements=["slug"])
        )
        tenant = await self._one_fresh(select(Tenant).where(Tenant.slug == slug))
        assert tenant is not None  # inserted above or already there
        return tenant

    async def create_campaign(
        self, campaign_id: str, tenant_slug: str, name: str, brief: dict[str, Any], workflow_id: str
    ) -> Campaign:
        """Insert the campaign (status running); an existing id is returned unchanged."""
        tenant = await self.ensure_tenant(tenant_slug)
        await self.session.execute(
            insert(Campaign)
            .values(
                id=campaign_id,
                tenant_id=tenant.id,
                name=name,
                brief=brief,
                status="running",
                phase=CampaignPhase.PLANNING.value,
                workflow_id=workflow_id,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        campaign = await self.get_campaign(campaign_id)
        assert campaign is not None
        return campaign

    async def get_campaign(self, campaign_id: str) -> Campaign | None:
        return await self._one_fresh(select(Campaign).where(Campaign.id == campaign_id))

    async def get_tenant_campaign(self, tenant_id: uuid.UUID, campaign_id: str) -> Campaign | None:
        """The campaign only if it belongs to ``tenant_id``: the API's single way to find one."""
        return await self._one_fresh(
            select(Campaign).where(Campaign.id == campaign_id, Campaign.tenant_id == tenant_id)
        )

    async def update_campaign(
        self,
        campaign_id: str,
        *,
        phase: str | None = None,
        status: str | None = None,
        plan: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
        report_path: str | None = None,
        completed: bool = False,
    ) -> Campaign:
        """Set the given fields; ``completed`` stamps completed_at once (retries keep the first)."""
        if status is not None and status not in CAMPAIGN_STATUSES:
            raise ValueError(f"unknown campaign status {status!r}")
        values: dict[str, Any] = {"updated_at": func.now()}
        if phase is not None:
            values["phase"] = phase
        if status is not None:
            values["status"] = status
        if plan is not None:
            values["plan"] = plan
        if budget is not None:
            values["budget"] = budget
        if report_path is not None:
            values["report_path"] = report_path
        if completed:
            values["completed_at"] = func.coalesce(Campaign.completed_at, func.now())
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(**values)
            .returning(Campaign.id)
            .execution_options(**_NO_SYNC)
        )
        if result.first() is None:
            raise RecordNotFound(f"campaign {campaign_id} not found")
        campaign = await self.get_campaign(campaign_id)
        assert campaign is not None
        return campaign

    async def record_step(self, campaign_id: str, phase: str, detail: str = "") -> bool:
        """Record that the campaign reached ``phase``; True only the first time."""
        result = await self.session.execute(
            insert(CampaignStep)
            .values(campaign_id=campaign_id, phase=phase, detail=detail)
            .on_conflict_do_nothing(index_elements=["campaign_id", "phase"])
            .returning(CampaignStep.id)
        )
        inserted = result.first() is not None
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(phase=phase, updated_at=func.now())
            .execution_options(**_NO_SYNC)
        )
        return inserted

    async def list_steps(self, campaign_id: str) -> list[CampaignStep]:
        result = await self.session.scalars(
            select(CampaignStep).where(CampaignStep.campaign_id == campaign_id).order_by(CampaignStep.id)
        )
        return list(result)

    # ---- content -------------------------------------------------------------------
    async def save_content_version(
        self,
        *,
        item_id: str,
        campaign_id: str,
        channel: str,
        format: str,
        publish_on: date,
        version: int,
        title: str,
        body: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        compliance: dict[str, Any],
        approval_state: str,
        parts: dict[str, Any] | None = None,
        generation: dict[str, Any] | None = None,
        embedding: list[float] | None = None,
    ) -> int:
        """Upsert the item and insert ``version`` if missing; returns the version.

        Saving the same (item_id, version) again changes nothing, and an older version
        never replaces a newer one.
        """
        if approval_state not in APPROVAL_STATES:
            raise ValueError(f"unknown approval state {approval_state!r}")
        item = insert(ContentItem).values(
            id=item_id,
            campaign_id=campaign_id,
            channel=channel,
            format=format,
            publish_on=publish_on,
            approval_state=approval_state,
            current_version=version,
        )
        await self.session.execute(
            item.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "channel": item.excluded.channel,
                    "format": item.excluded.format,
                    "publish_on": item.excluded.publish_on,
                    "approval_state": item.excluded.approval_state,
                    "current_version": item.excluded.current_version,
                    "updated_at": func.now(),
                },
                # Only a newer version moves the item: a retried save is a no-op.
                where=ContentItem.current_version < item.excluded.current_version,
            )
        )
        await self.session.execute(
            insert(ContentVersion)
            .values(
                item_id=item_id,
                version=version,
                title=title,
                body=body,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                compliance=compliance,
                parts=parts or {},
                generation=generation or {},
                embedding=embedding or null(),
            )
            .on_conflict_do_nothing(index_elements=["item_id", "version"])
        )
        return version

    async def save_calendar(self, campaign_id: str, calendar: dict[str, Any]) -> None:
        """Keep the campaign's content calendar (a retried build writes the same document again)."""
        await self.session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(calendar=calendar, updated_at=func.now())
        )

    async def earlier_content_embeddings(
        self, campaign_id: str, *, exclude_item: str, exclude_message: str = "", limit: int = 2000
    ) -> list[tuple[str, list[float]]]:
        """(item id, embedding) of the current versions of the campaign tenant's other content,
        newest first; items carrying ``exclude_message`` (the same message in other formats) are left out."""
        tenant = select(Campaign.tenant_id).where(Campaign.id == campaign_id).scalar_subquery()
        stmt = (
            select(ContentItem.id, ContentVersion.embedding)
            .join(
                ContentVersion,
                (ContentVersion.item_id == ContentItem.id)
                & (ContentVersion.version == ContentItem.current_version),
            )
            .join(Campaign, Campaign.id == ContentItem.campaign_id)
            .where(
                Campaign.tenant_id == tenant,
                ContentItem.id != exclude_item,
                # Versions without one hold SQL NULL or (written before none_as_null) JSON null.
                func.jsonb_typeof(ContentVersion.embedding) == "array",
            )
            .order_by(ContentVersion.created_at.desc())
            .limit(limit)
        )
        if exclude_message:
            stmt = stmt.where(func.coalesce(ContentVersion.generation["message_id"].astext, "") != exclude_message)
        result = await self.session.execute(stmt)
        return [(item_id, list(vector)) for item_id, vector in result]

    async def get_content_item(self, item_id: str) -> ContentItem | None:
        return await self._one_fresh(select(ContentItem).where(ContentItem.id == item_id))

    async def get_content_version(self, item_id: str, version: int) -> ContentVersion | None:
        return await self._one_fresh(
            select(ContentVersion).where(ContentVersion.item_id == item_id, ContentVersion.version == version)
        )

    async def list_content(self, campaign_id: str) -> list[tuple[ContentItem, ContentVersion]]:
        """Each item of the campaign with its current version, by publish date then id."""
        stmt = (
            select(ContentItem, ContentVersion)
            .join(
                ContentVersion,
                (ContentVersion.item_id == ContentItem.id)
                & (ContentVersion.version == ContentItem.current_version),
            )
            .where(ContentItem.campaign_id == campaign_id)
            .order_by(ContentItem.publish_on, ContentItem.id)
            .execution_options(populate_existing=True)
        )
        result = await self.session.execute(stmt)
        return [(item, version) for item, version in result]

    async def record_review(self, item_id: str, decision: str, reviewer: str, note: str = "") -> bool:
        """Apply a review decision to the item's current version; True if newly recorded."""
        if decision not in REVIEW_DECISIONS:
            raise ValueError(f"unknown review decision {decision!r}")
        result = await self.session.execute(
            update(ContentItem)
            .where(ContentItem.id == item_id)
            .values(approval_state=decision, updated_at=func.now())
            .returning(ContentItem.current_version)
            .execution_options(**_NO_SYNC)
        )
        version = result.scalar_one_or_none()
        if version is None:
            raise RecordNotFound(f"content item {item_id} not found")
        inserted = await self.session.execute(
            insert(ContentReview)
            .values(item_id=item_id, version=version, decision=decision, reviewer=reviewer, note=note)
            .on_conflict_do_nothing(index_elements=["item_id", "version", "decision"])
            .returning(ContentReview.id)
        )
        return inserted.first() is not None

    async def list_reviews(self, item_id: str) -> list[ContentReview]:
        result = await self.session.scalars(
            select(ContentReview).where(ContentReview.item_id == item_id).order_by(ContentReview.id)
        )
        return list(result)

    async def mark_published(self, item_id: str, external_id: str) -> None:
        """Store the channel's id; published_at keeps the first publication time."""
        result = await self.session.execute(
            update(ContentItem)
            .where(ContentItem.id == item_id)
            .values(
                external_id=external_id,
                published_at=func.coalesce(ContentItem.published_at, func.now()),
                updated_at=func.now(),
            )
            .returning(ContentItem.id)
            .execution_options(**_NO_SYNC)
        )
        if result.first() is None:
            raise RecordNotFound(f"content item {item_id} not found")

    # ---- metrics -------------------------------------------------------------------
    async def save_metrics(self, campaign_id: str, round: int, items: Sequence[ItemMetrics]) -> int:
        """Upsert one round of cumulative metrics per item; returns how many rows were written."""
        if not items:
            return 0
        stmt = insert(ChannelMetric).values(
            [
                {
                    "campaign_id": campaign_id,
                    "item_id": m.item_id,
                    "channel": m.channel,
                    "round": round,
                    "impressions": m.impressions,
                    "clicks": m.clicks,
                    "conversions": m.conversions,
                    "spend_cents": m.spend_cents,
                }
                for m in items
            ]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["item_id", "round"],
                set_={
                    "impressions": stmt.excluded.impressions,
                    "clicks": stmt.excluded.clicks,
                    "conversions": stmt.excluded.conversions,
                    "spend_cents": stmt.excluded.spend_cents,
                    "collected_at": func.now(),
                },
            )
        )
        return len(items)

    async def campaign_metrics(self, campaign_id: str) -> list[ChannelMetric]:
        result = await self.session.scalars(
            select(ChannelMetric)
            .where(ChannelMetric.campaign_id == campaign_id)
            .order_by(ChannelMetric.round, ChannelMetric.item_id)
            .execution_options(populate_existing=True)
        )
        return list(result)

    async def campaign_snapshots(
        self, campaign_id: str, external_ids: dict[str, str] | None = None
    ) -> list[MetricsSnapshot]:
        """The campaign's stored metrics as one snapshot per round, oldest first."""
        rounds: dict[int, list[ItemMetrics]] = {}
        for row in await self.campaign_metrics(campaign_id):
            rounds.setdefault(row.round, []).append(
                ItemMetrics(
                    item_id=row.item_id,
                    channel=row.channel,
                    external_id=(external_ids or {}).get(row.item_id, ""),
                    impressions=row.impressions,
                    clicks=row.clicks,
                    conversions=row.conversions,
                    spend_cents=row.spend_cents,
                )
            )
        return [MetricsSnapshot(campaign_id=campaign_id, round=r, items=rounds[r]) for r in sorted(rounds)]

    def _latest_item_metrics(self, tenant_slug: str, exclude_campaign_id: str | None):
        """Each item's newest metrics round for the tenant's campaigns (counters are cumulative,
        so summing every round would count them repeatedly)."""
        # A window rather than DISTINCT ON, whose spelling differs between SQLAlchemy 2.0 and 2.1.
        newest_first = (
            func.row_number()
            .over(partition_by=ChannelMetric.item_id, order_by=ChannelMetric.round.desc())
            .label("newest_first")
        )
        ranked = (
            select(ChannelMetric.__table__, newest_first)
            .join(Campaign, Campaign.id == ChannelMetric.campaign_id)
            .join(Tenant, Tenant.id == Campaign.tenant_id)
            .where(Tenant.slug == tenant_slug)
        )
        if exclude_campaign_id is not None:
            ranked = ranked.where(ChannelMetric.campaign_id != exclude_campaign_id)
        ranked_sq = ranked.subquery()
        return select(ranked_sq).where(ranked_sq.c.newest_first == 1).subquery()

    async def channel_history(
        self, tenant_slug: str, *, exclude_campaign_id: str | None = None
    ) -> CampaignHistory:
        """Per channel: campaigns with metrics and their summed totals; per past campaign: its
        audience and totals (the planner compares audiences)."""
        per_item = self._latest_item_metrics(tenant_slug, exclude_campaign_id)
        stmt = (
            select(
                per_item.c.channel,
                func.count(distinct(per_item.c.campaign_id)),
                func.coalesce(func.sum(per_item.c.spend_cents), 0),
                func.coalesce(func.sum(per_item.c.impressions), 0),
                func.coalesce(func.sum(per_item.c.clicks), 0),
                func.coalesce(func.sum(per_item.c.conversions), 0),
            )
            .group_by(per_item.c.channel)
            .order_by(per_item.c.channel)
        )
        rows = (await self.session.execute(stmt)).all()
        by_campaign = (
            select(
                Campaign.id,
                Campaign.brief["audience"].astext,
                Campaign.brief["start_date"].astext,
                func.sum(per_item.c.spend_cents),
                func.sum(per_item.c.conversions),
            )
            .join(per_item, per_item.c.campaign_id == Campaign.id)
            .group_by(Campaign.id)
            .order_by(Campaign.id)
        )
        campaigns = (await self.session.execute(by_campaign)).all()
        return CampaignHistory(
            tenant=tenant_slug,
            channels=[
                ChannelHistory(
                    channel=channel,
                    campaigns=int(campaigns_),
                    spend_cents=int(spend),
                    impressions=int(impressions),
                    clicks=int(clicks),
                    conversions=int(conversions),
                )
                for channel, campaigns_, spend, impressions, clicks, conversions in rows
            ],
            campaigns=[
                PastCampaign(
                    campaign_id=cid, audience=audience or "", start_date=start or "",
                    spend_cents=int(spend or 0), conversions=int(conversions or 0),
                )
                for cid, audience, start, spend, conversions in campaigns
            ],
        )

    # ---- audit ---------------------------------------------------------------------
    async def add_audit_event(
        self,
        *,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        tenant_id: uuid.UUID | None = None,
        detail: dict[str, Any] | None = None,
        outcome: str = "ok",
        request_id: str | None = None,
    ) -> int:
        """Append an audit event to the hash chain; returns its id.

        Serialises with every other audit append until the caller's transaction ends.
        """
        return await append_audit_event(
            self.session,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            tenant_id=tenant_id,
            detail=detail,
            outcome=outcome,
            request_id=request_id,
        )

    async def record_agent_action(
        self,
        *,
        campaign_id: str,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        detail: dict[str, Any] | None = None,
        once_per: dict[str, Any] | None = None,
    ) -> bool:
        """Audit an action a workflow's agent took for ``campaign_id``, in the caller's transaction.

        Activities are retried; a retry after a committed attempt finds the record and adds no
        second one. ``once_per`` names the detail fields that tell repeats apart (a version, a
        round); they are stored in the detail too. True if a record was appended.
        """
        return await self.record_action_once(
            tenant_id=await self.session.scalar(select(Campaign.tenant_id).where(Campaign.id == campaign_id)),
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=detail,
            once_per=once_per,
        )

    async def record_action_once(
        self,
        *,
        tenant_id: uuid.UUID | None,
        actor: str,
        action: str,
        subject_type: str,
        subject_id: str,
        detail: dict[str, Any] | None = None,
        once_per: dict[str, Any] | None = None,
    ) -> bool:
        """Audit an action once per (action, subject, ``once_per`` values); see record_agent_action.

        ``tenant_id`` is None for platform actions (model rollouts).
        """
        detail = {**(detail or {}), **(once_per or {})}
        # Take the chain lock (the append takes it anyway) before looking for a duplicate, so an
        # attempt still running beside its retry cannot pass the check too: under READ COMMITTED
        # the check then sees whatever the lock's previous holder committed.
        await self.session.execute(select(func.pg_advisory_xact_lock(AUDIT_CHAIN_LOCK_KEY)))
        duplicate = select(AuditEvent.id).where(
            AuditEvent.action == action,
            AuditEvent.subject_type == subject_type,
            AuditEvent.subject_id == subject_id,
        )
        if once_per:
            duplicate = duplicate.where(AuditEvent.detail.contains(once_per))
        if await self.session.scalar(duplicate.limit(1)) is not None:
            return False
        await self.add_audit_event(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            tenant_id=tenant_id,
            detail=detail,
        )
        return True

    async def list_audit_events(self, subject_type: str, subject_id: str) -> list[AuditEvent]:
        result = await self.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == subject_id)
            .order_by(AuditEvent.id)
        )
        return list(result)
