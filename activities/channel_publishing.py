"""Integration activities: publish approved content and read its metrics through the channel adapter."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from agency.channels import ChannelClient, ChannelRejected, ChannelUnavailable
from agency.contracts import ActivityName, MetricsRequest, MetricsSnapshot, PublishRequest, PublishResult


class ChannelActivities:
    def __init__(self, channel: ChannelClient) -> None:
        self._channel = channel

    @activity.defn(name=ActivityName.PUBLISH_CONTENT)
    async def publish_content(self, req: PublishRequest) -> PublishResult:
        # The idempotency key makes retries (worker crash after the POST landed) safe:
        # the channel answers with the post it already created.
        try:
            return await self._channel.publish(req)
        except ChannelRejected as err:
            raise ApplicationError(
                f"channel rejected {req.item_id}: {err}", err.body, type="ChannelRejected", non_retryable=True
            ) from err
        except ChannelUnavailable as err:
            raise ApplicationError(f"channel unavailable: {err}", type="ChannelUnavailable") from err

    @activity.defn(name=ActivityName.COLLECT_METRICS)
    async def collect_metrics(self, req: MetricsRequest) -> MetricsSnapshot:
        items = []
        try:
            for ref in req.published:
                items.append(await self._channel.fetch_metrics(ref.item_id, ref.channel, ref.external_id))
        except ChannelRejected as err:
            raise ApplicationError(f"metrics rejected: {err}", type="ChannelRejected", non_retryable=True) from err
        except ChannelUnavailable as err:
            raise ApplicationError(f"channel unavailable: {err}", type="ChannelUnavailable") from err
        return MetricsSnapshot(campaign_id=req.campaign_id, round=req.round, items=items)

    def all(self) -> list:
        return [self.publish_content, self.collect_metrics]
