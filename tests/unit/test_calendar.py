"""Calendar agent: dates inside the campaign, even spread, ids, angles, ordering."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from agency.agents.calendar import build_calendar
from agency.contracts import CalendarRequest, CampaignBrief, CampaignPlan, ChannelPlan

MESSAGES = ["Set up in 10 minutes", "Why teams choose Acme", "Get started with Acme today"]


def make_request(start: str, end: str, posts: dict[str, int], messages: list[str] = MESSAGES) -> CalendarRequest:
    brief = CampaignBrief(
        tenant="acme", product="Acme", audience="teams", goals=["signups"], channels=list(posts),
        total_budget_cents=1000, start_date=start, end_date=end,
    )
    plan = CampaignPlan(
        campaign_id="c1", objective="conversion", key_messages=messages, tone="clear",
        channels=[ChannelPlan(c, "conversion", 1 / len(posts), 0.03, 0.02, n) for c, n in posts.items()],
        duration_days=(date.fromisoformat(end) - date.fromisoformat(start)).days + 1,
        rationale=[], used_history=False,
    )
    return CalendarRequest("c1", brief, plan)


@pytest.mark.parametrize(
    ("start", "end", "posts"),
    [
        ("2026-03-01", "2026-03-31", {"social": 3, "blog": 2, "email": 1}),
        ("2026-03-01", "2026-03-01", {"social": 3, "email": 2}),
        ("2026-12-30", "2027-01-02", {"blog": 4}),
    ],
)
def test_every_entry_falls_inside_the_campaign(start: str, end: str, posts: dict[str, int]) -> None:
    calendar = build_calendar(make_request(start, end, posts))
    assert Counter(e.channel for e in calendar.entries) == Counter(posts)
    for entry in calendar.entries:
        assert start <= entry.publish_on <= end


def test_posts_are_spread_across_the_whole_campaign() -> None:
    calendar = build_calendar(make_request("2026-03-01", "2026-03-30", {"social": 3}))
    days = [date.fromisoformat(e.publish_on).day for e in calendar.entries]
    assert days == [6, 16, 26]  # centred in three 10-day slices
    gaps = {b - a for a, b in zip(days, days[1:])}
    assert gaps == {10}


def test_item_ids_formats_and_angle_rotation() -> None:
    calendar = build_calendar(make_request("2026-03-01", "2026-03-31", {"blog": 4, "email": 2}))
    blog = [e for e in calendar.entries if e.channel == "blog"]
    assert [e.item_id for e in blog] == [f"c1:blog:{n}" for n in range(1, 5)]
    assert {e.format for e in blog} == {"blog_post"}
    assert {e.format for e in calendar.entries if e.channel == "email"} == {"email"}
    assert [e.angle for e in blog] == [MESSAGES[0], MESSAGES[1], MESSAGES[2], MESSAGES[0]]
    email = [e for e in calendar.entries if e.channel == "email"]
    # A second channel starts one message later, so same-day posts differ.
    assert email[0].angle == MESSAGES[1]


def test_entries_are_sorted_and_stable() -> None:
    req = make_request("2026-03-01", "2026-03-10", {"social": 3, "blog": 3, "email": 3})
    entries = build_calendar(req).entries
    keys = [(e.publish_on, e.channel, int(e.item_id.rsplit(":", 1)[1])) for e in entries]
    assert keys == sorted(keys)
    assert build_calendar(req) == build_calendar(req)


def test_angle_falls_back_to_the_product_without_key_messages() -> None:
    calendar = build_calendar(make_request("2026-03-01", "2026-03-02", {"social": 1}, messages=[]))
    assert calendar.entries[0].angle == "Acme"


def test_unknown_channel_is_rejected() -> None:
    with pytest.raises(ValueError, match="format"):
        build_calendar(make_request("2026-03-01", "2026-03-02", {"fax": 1}))
