"""Integration activities: publish approved content and read its metrics through the channel adapter."""

from __future__ import annotations

from contextlib import contextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import (
    ActivityName,
    ItemBudgetsRequest,
    ItemBudgetsResult,
    MetricsRequest,
    MetricsSnapshot,
    PublishRequest,
    PublishResult,
)


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
    def __init__(self, channel: ChannelClient) -> None:
        self._channel = channel

    @activity.defn(name=ActivityName.PUBLISH_CONTENT)
    async def publish_content(self, req: PublishRequest) -> PublishResult:
        # The idempotency key makes retries (worker crash after the POST landed) safe:
        # the channel answers with the post it already created.
        with channel_errors(f"{req.item_id}"):
            return await self._channel.publish(req)

    @activity.defn(name=ActivityName.COLLECT_METRICS)
    async def collect_metrics(self, req: MetricsRequest) -> MetricsSnapshot:
        items = []
        with channel_errors("a metrics read"):
            for ref in req.published:
                items.append(await self._channel.fetch_metrics(ref.item_id, ref.channel, ref.external_id))
        return MetricsSnapshot(campaign_id=req.campaign_id, round=req.round, items=items)

    @activity.defn(name=ActivityName.APPLY_ITEM_BUDGETS)
    async def apply_item_budgets(self, req: ItemBudgetsRequest) -> ItemBudgetsResult:
        """Set each published item's budget on its channel (idempotent per campaign, item and round)."""
        budgets = item_budgets(req)
        external = {m.item_id: m.external_id for m in req.snapshot.items}
        with channel_errors("a budget change"):
            for item_id, cents in budgets.items():
                budgets[item_id] = await self._set_budget(
                    external[item_id], cents, f"{req.campaign_id}:{item_id}:budget:r{req.round}"
                )
        return ItemBudgetsResult(updated=len(budgets), budgets=budgets)

    async def _set_budget(self, external_id: str, cents: int, key: str) -> int:
        """Set a post's total budget; a cut below what it has spent by now becomes "spent plus a
        little headroom" (the item kept spending after the metrics were read, as live ads do)."""
        target, attempt_key = cents, key
        for attempt in range(1, BUDGET_ATTEMPTS + 1):
            try:
                await self._channel.update_budget(external_id, target, idempotency_key=attempt_key)
                return target
            except ChannelRejected as err:
                spent = _spent_from(err)
                if err.code != "budget_below_spend" or spent is None or attempt == BUDGET_ATTEMPTS:
                    raise
                target = spent + max(BUDGET_HEADROOM_CENTS, spent * BUDGET_HEADROOM_SHARE * attempt)
                target = int(target)
                attempt_key = f"{key}:at-spend-{attempt}"
        raise AssertionError("unreachable")

    def all(self) -> list:
        return [self.publish_content, self.collect_metrics, self.apply_item_budgets]
