"""Integration activities: publish approved content, read its metrics and set its budgets
through the provider adapters (agency.integrations).

* Publishing goes through the tenant's :class:`~agency.integrations.publishing.PublishingRouter`
  (by format: WordPress, X, LinkedIn, Instagram, Resend), which then sets the item's paid budget
  as its Google Ads campaign total.
* Metrics: paid delivery (impressions, clicks, spend) from Google Ads, conversions (key events)
  from GA4, joined per item; an item the ad platform does not know (never promoted) is read
  from its channel.
* Budgets: each item's total budget is its Google Ads campaign budget, synced both ways: the
  platform's state is read first, and a pause or a total set there by a person since our last
  round wins over the campaign's plan (:mod:`agency.sync.ad_platform`); the agreement is kept in
  ``ad_platform_item_states`` and every platform-side change goes to the audit log.

Requests from campaigns started before tenants were passed along (``tenant == ""``) keep the
channel-only path they were started with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.integration_errors import provider_errors
from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import (
    ActivityName,
    AdPlatformChange,
    ItemBudgetsRequest,
    ItemBudgetsResult,
    ItemMetrics,
    MetricsRequest,
    MetricsSnapshot,
    PublishRequest,
    PublishResult,
)
from agency.db.models import Tenant
from agency.db.models_ad_sync import AdPlatformItemState
from agency.integrations.accounts import TenantAdapters, TenantProviders
from agency.integrations.ads import MICROS_PER_UNIT, BudgetBelowSpend
from agency.security.audit import append_audit_event
from agency.sync.ad_platform import AgreedState, ItemInput, PlatformState, agreed_after, plan_round

MICROS_PER_CENT = MICROS_PER_UNIT // 100
AD_PLATFORM = "google-ads"
SYNC_ACTOR = "system:ad-platform-sync"


@contextmanager
def channel_errors(what: str):
    """A refusal (4xx) fails the activity for good; an outage is retried."""
    try:
        yield
    except ChannelRejected as err:
        raise ApplicationError(
            f"channel rejected {what}: {err}", err.body, type="ChannelRejected", non_retryable=True
        ) from err
    except ChannelUnavailable as err:
        raise ApplicationError(f"channel unavailable: {err}", type="ChannelUnavailable") from err


# A budget cut below what a live item has spent is retried at spend + headroom, a few times.
BUDGET_ATTEMPTS = 4
BUDGET_HEADROOM_CENTS = 100
BUDGET_HEADROOM_SHARE = 0.02


def _spent_from(err: ChannelRejected) -> int | None:
    details = err.body.get("error", {}).get("details") if isinstance(err.body, dict) else None
    spent = details[0].get("spent_cents") if details and isinstance(details[0], dict) else None
    return spent if isinstance(spent, int) else None


def item_budgets(req: ItemBudgetsRequest) -> dict[str, int]:
    """Total budget per published item: what it spent so far plus its part of what its channel
    has left, split by the channel's experiment weights (equal without an experiment)."""
    by_channel: dict[str, list] = {}
    for m in req.snapshot.items:
        by_channel.setdefault(m.channel, []).append(m)
    budgets: dict[str, int] = {}
    for channel, items in by_channel.items():
        spent = sum(m.spend_cents for m in items)
        remaining = max(0, req.channel_cents.get(channel, spent) - spent)
        weights = req.arm_weights.get(channel) or {}
        raw = {m.item_id: weights.get(m.item_id, 0.0 if weights else 1.0) for m in items}
        total_weight = sum(raw.values()) or float(len(items))
        given = 0
        for i, m in enumerate(items):
            # The last item takes the rounding remainder, so the channel's budget is exact.
            share = remaining - given if i == len(items) - 1 else int(remaining * (raw[m.item_id] or 0) / total_weight)
            given += share
            budgets[m.item_id] = m.spend_cents + share
    return budgets


class ChannelActivities:
    def __init__(
        self,
        channel: ChannelClient,
        providers: TenantProviders | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        if providers is not None and sessions is None:
            raise ValueError("the provider path keeps its ad platform agreement in the database: pass sessions")
        self._channel = channel
        self._providers = providers
        self._sessions = sessions

    async def _adapters(self, tenant: str) -> TenantAdapters | None:
        if not tenant or self._providers is None:
            return None
        with provider_errors(f"the adapters of tenant {tenant}"):
            return await self._providers.for_tenant(tenant)

    @activity.defn(name=ActivityName.PUBLISH_CONTENT)
    async def publish_content(self, req: PublishRequest) -> PublishResult:
        # Every route is safe to retry (worker crash after the provider applied it): idempotency
        # keys where the provider has them, duplicate-content recovery where it has not.
        adapters = await self._adapters(req.tenant)
        if adapters is None:
            with channel_errors(f"{req.item_id}"):
                return await self._channel.publish(req)
        with provider_errors(f"publishing {req.item_id} ({req.format})"):
            return await adapters.publishing.publish(req)

    @activity.defn(name=ActivityName.COLLECT_METRICS)
    async def collect_metrics(self, req: MetricsRequest) -> MetricsSnapshot:
        adapters = await self._adapters(req.tenant)
        items = []
        if adapters is None:
            with channel_errors("a metrics read"):
                for ref in req.published:
                    items.append(await self._channel.fetch_metrics(ref.item_id, ref.channel, ref.external_id))
            return MetricsSnapshot(campaign_id=req.campaign_id, round=req.round, items=items)
        with provider_errors("reading Google Ads campaign metrics"):
            paid = await adapters.ads.campaign_metrics(ref.external_id for ref in req.published)
        with provider_errors("reading GA4 key events"):
            engaged = await adapters.analytics.item_engagement(adapters.ga4_property, [req.campaign_id])
        for ref in req.published:
            ads = paid.get(ref.external_id)
            if ads is None:
                # Not promoted, so no ads campaign: its organic reach comes from the channel.
                with channel_errors("a metrics read"):
                    items.append(await self._channel.fetch_metrics(ref.item_id, ref.channel, ref.external_id))
                continue
            # GA4 lags behind (reports are eventually consistent): its count only grows, so a
            # round may under-count conversions that a later round then picks up.
            engagement = engaged.get((req.campaign_id, ref.item_id))
            items.append(ItemMetrics(
                item_id=ref.item_id, channel=ref.channel, external_id=ref.external_id,
                impressions=ads.impressions, clicks=ads.clicks,
                conversions=engagement.key_events if engagement is not None else 0,
                spend_cents=ads.cost_micros // MICROS_PER_CENT,
            ))
        return MetricsSnapshot(campaign_id=req.campaign_id, round=req.round, items=items)

    @activity.defn(name=ActivityName.APPLY_ITEM_BUDGETS)
    async def apply_item_budgets(self, req: ItemBudgetsRequest) -> ItemBudgetsResult:
        """Set each published item's total budget (absolute amounts, so a retry is harmless),
        keeping what a person changed on the ad platform since our last round there."""
        budgets = item_budgets(req)
        external = {m.item_id: m.external_id for m in req.snapshot.items}
        adapters = await self._adapters(req.tenant)
        if adapters is None:
            for item_id, cents in budgets.items():
                with channel_errors("a budget change"):
                    budgets[item_id] = await self._set_channel_budget(
                        external[item_id], cents, f"{req.campaign_id}:{item_id}:budget:r{req.round}"
                    )
            return ItemBudgetsResult(updated=len(budgets), budgets=budgets)
        return await self._sync_ad_platform(req, adapters, budgets)

    async def _sync_ad_platform(
        self, req: ItemBudgetsRequest, adapters: TenantAdapters, wanted: dict[str, int]
    ) -> ItemBudgetsResult:
        """Read the platform, decide per item (agency.sync.ad_platform), write, record.

        A retry after a crash anywhere in here sees the same answer: the totals it wrote are
        recognised by their ``pending_budget_cents``, the snapshot write is an upsert, and the
        audit events commit with the snapshot (not before it).
        """
        assert self._sessions is not None
        items = {m.item_id: m for m in req.snapshot.items}
        with provider_errors("reading the Google Ads state of the campaign's items"):
            seen = await adapters.ads.campaign_metrics(m.external_id for m in items.values())
        async with self._sessions() as session:
            tenant_id = await session.scalar(select(Tenant.id).where(Tenant.slug == req.tenant))
            if tenant_id is None:
                raise ApplicationError(f"no tenant {req.tenant!r}", type="TenantNotFound", non_retryable=True)
            rows = {
                row.item_id: row
                for row in await session.scalars(
                    select(AdPlatformItemState).where(
                        AdPlatformItemState.campaign_id == req.campaign_id,
                        AdPlatformItemState.item_id.in_(list(items)),
                    )
                )
            }

        inputs: dict[str, ItemInput] = {}
        for item_id, m in items.items():
            ads = seen.get(m.external_id)
            platform = None if ads is None else PlatformState(
                ads.status, ads.total_budget_micros // MICROS_PER_CENT, ads.cost_micros // MICROS_PER_CENT
            )
            row = rows.get(item_id)
            agreed = None if row is None else AgreedState(
                row.status, row.total_budget_cents, row.snapshot_hash, row.pending_budget_cents, row.kept_round
            )
            spent = max(m.spend_cents, platform.spent_cents if platform else 0)
            inputs[item_id] = ItemInput(item_id, m.channel, wanted[item_id], spent, platform, agreed)
        plan = plan_round(list(inputs.values()), req.round)

        # Before writing: what we are about to set, so a retry does not take it for a person's edit.
        await self._mark_pending(req.campaign_id, {
            item_id: d.write_cents for item_id, d in plan.decisions.items()
            if d.write_cents is not None and item_id in rows
        })
        written: dict[str, int] = {}
        for item_id, decision in plan.decisions.items():
            if decision.write_cents is None:
                continue
            ref = items[item_id].external_id
            if inputs[item_id].platform is not None:
                with provider_errors(f"setting the Google Ads budget of {item_id}"):
                    written[item_id] = await self._set_ads_budget(
                        adapters, ref, decision.write_cents,
                        before_retry=self._pending_writer(req.campaign_id, item_id) if item_id in rows else None,
                    )
            else:
                # No ads campaign yet (published without a budget): promote it on its channel.
                with channel_errors("a budget change"):
                    written[item_id] = await self._set_channel_budget(
                        ref, decision.write_cents, f"{req.campaign_id}:{item_id}:budget:r{req.round}"
                    )

        changes = [AdPlatformChange(**asdict(c)) for c in plan.changes]
        now = datetime.now(timezone.utc)
        async with self._sessions() as session, session.begin():
            for item_id, decision in plan.decisions.items():
                agreed = agreed_after(inputs[item_id], decision, written.get(item_id), req.round)
                values = dict(
                    tenant_id=tenant_id, platform=AD_PLATFORM, ads_campaign_id=items[item_id].external_id,
                    status=agreed.status, total_budget_cents=agreed.total_budget_cents,
                    snapshot_hash=agreed.snapshot_hash, pending_budget_cents=None, kept_round=agreed.kept_round,
                    last_round=req.round, synced_at=now,
                )
                await session.execute(
                    insert(AdPlatformItemState)
                    .values(campaign_id=req.campaign_id, item_id=item_id, **values)
                    .on_conflict_do_update(
                        index_elements=["campaign_id", "item_id"], set_={**values, "updated_at": now}
                    )
                )
            for change in changes:
                await append_audit_event(
                    session, actor=SYNC_ACTOR, action="ad_platform.change_detected",
                    subject_type="content_item", subject_id=change.item_id, tenant_id=tenant_id,
                    detail={
                        "campaign_id": req.campaign_id, "round": req.round, "platform": AD_PLATFORM,
                        "ads_campaign_id": items[change.item_id].external_id, **asdict(change),
                    },
                )
        budgets = {item_id: written.get(item_id, d.planned_cents) for item_id, d in plan.decisions.items()}
        return ItemBudgetsResult(
            updated=len(written), budgets=budgets, platform_changes=changes,
            held={item_id: d.hold for item_id, d in plan.decisions.items() if d.hold},
            channel_gap_cents=dict(plan.channel_gap_cents),
        )

    async def _mark_pending(self, campaign_id: str, pending: dict[str, int]) -> None:
        if not pending:
            return
        assert self._sessions is not None
        async with self._sessions() as session, session.begin():
            for item_id, cents in pending.items():
                await session.execute(
                    update(AdPlatformItemState)
                    .where(AdPlatformItemState.campaign_id == campaign_id, AdPlatformItemState.item_id == item_id)
                    .values(pending_budget_cents=cents)
                )

    def _pending_writer(self, campaign_id: str, item_id: str) -> Callable[[int], Awaitable[None]]:
        async def write(cents: int) -> None:
            await self._mark_pending(campaign_id, {item_id: cents})
        return write

    async def _set_ads_budget(
        self,
        adapters: TenantAdapters,
        campaign_id: str,
        cents: int,
        before_retry: Callable[[int], Awaitable[None]] | None = None,
    ) -> int:
        """Set an item's total budget; a cut below what it has spent by now becomes "spent plus a
        little headroom" (it kept spending after the metrics were read, as live ads do).
        ``before_retry`` hears each raised target before it is sent."""
        budget = f"customers/{adapters.ads.customer_id}/campaignBudgets/{campaign_id}"
        target = cents
        for attempt in range(1, BUDGET_ATTEMPTS + 1):
            if attempt > 1 and before_retry is not None:
                await before_retry(target)
            try:
                await adapters.ads.set_total_budget(budget, target * MICROS_PER_CENT)
                return target
            except BudgetBelowSpend as err:
                if attempt == BUDGET_ATTEMPTS:
                    raise
                spent_micros = err.spent_micros
                if spent_micros is None:  # live Google Ads does not say; read the spend
                    current = await adapters.ads.campaign_metrics([campaign_id])
                    spent_micros = current[campaign_id].cost_micros if campaign_id in current else 0
                spent = spent_micros // MICROS_PER_CENT
                target = int(spent + max(BUDGET_HEADROOM_CENTS, spent * BUDGET_HEADROOM_SHARE * attempt))
        raise AssertionError("unreachable")

    async def _set_channel_budget(self, external_id: str, cents: int, key: str) -> int:
        """The channel-protocol budget change, for campaigns started before the ads adapter."""
        target, attempt_key = cents, key
        for attempt in range(1, BUDGET_ATTEMPTS + 1):
            try:
                await self._channel.update_budget(external_id, target, idempotency_key=attempt_key)
                return target
            except ChannelRejected as err:
                spent = _spent_from(err)
                if err.code != "budget_below_spend" or spent is None or attempt == BUDGET_ATTEMPTS:
                    raise
                target = int(spent + max(BUDGET_HEADROOM_CENTS, spent * BUDGET_HEADROOM_SHARE * attempt))
                attempt_key = f"{key}:at-spend-{attempt}"
        raise AssertionError("unreachable")

    def all(self) -> list:
        return [self.publish_content, self.collect_metrics, self.apply_item_budgets]
