"""Content calendar: when each planned piece goes out and which message it carries."""

from __future__ import annotations

from datetime import date, timedelta

from agency.agents.planning import campaign_duration_days
from agency.contracts import CHANNEL_FORMAT, CalendarEntry, CalendarRequest, ContentCalendar


def build_calendar(req: CalendarRequest) -> ContentCalendar:
    """Spread each channel's posts evenly over the campaign dates, rotating key messages."""
    start = date.fromisoformat(req.brief.start_date)
    days = campaign_duration_days(req.brief.start_date, req.brief.end_date)
    angles = [m for m in req.plan.key_messages if m.strip()] or [req.brief.product]
    entries: list[CalendarEntry] = []
    for channel_index, channel_plan in enumerate(req.plan.channels):
        channel = channel_plan.channel
        if channel not in CHANNEL_FORMAT:
            raise ValueError(f"no content format for channel {channel!r}")
        for i, offset in enumerate(spread_offsets(channel_plan.posts, days)):
            n = i + 1
            entries.append(
                CalendarEntry(
                    item_id=f"{req.campaign_id}:{channel}:{n}",
                    channel=channel,
                    format=CHANNEL_FORMAT[channel],
                    publish_on=(start + timedelta(days=offset)).isoformat(),
                    # Channels start at different messages so one day's posts don't all repeat.
                    angle=angles[(i + channel_index) % len(angles)],
                )
            )
    entries.sort(key=lambda e: (e.publish_on, e.channel, int(e.item_id.rsplit(":", 1)[1])))
    return ContentCalendar(campaign_id=req.campaign_id, entries=entries)


def spread_offsets(posts: int, days: int) -> list[int]:
    """Day offsets (0-based) for posts centred in equal slices of the campaign.

    Slice i covers days [i·days/posts, (i+1)·days/posts); its midpoint keeps one post
    mid-campaign and several posts apart from each other and from the edges.
    """
    if posts <= 0:
        return []
    return [((2 * i + 1) * days) // (2 * posts) for i in range(posts)]
