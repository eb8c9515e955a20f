"""Content Strategy Agent: cadence, coordinated social sets, messages, trends and recommendations."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

import pytest

from agency.agents.performance import PlantedEffect, analyze_performance, simulate_performance
from agency.agents.strategy import DEFAULT_CADENCE, CadenceRule, build_content_calendar
from agency.contracts import (
    SOCIAL_NETWORK_FORMATS,
    CalendarRequest,
    CampaignBrief,
    CampaignPlan,
    ChannelPlan,
    ContentRecommendation,
    TopicTrend,
)

MESSAGES = ["Dry feet on every trail", "Built to last for years", "Light enough for long days"]


def make_request(
    posts: dict[str, int], *, start: str = "2026-03-02", end: str = "2026-03-29", trends=(), recommendations=(),
    messages: list[str] = MESSAGES,
) -> CalendarRequest:
    brief = CampaignBrief(
        tenant="acme", product="Trailblaze boots", audience="hikers", goals=["sales"], channels=list(posts),
        total_budget_cents=100_000, start_date=start, end_date=end,
    )
    plan = CampaignPlan(
        campaign_id="c1", objective="conversion", key_messages=messages, tone="clear",
        channels=[ChannelPlan(c, "conversion", 1 / len(posts), 0.03, 0.02, n) for c, n in posts.items()],
        duration_days=(date.fromisoformat(end) - date.fromisoformat(start)).days + 1, rationale=[], used_history=False,
    )
    return CalendarRequest("c1", brief, plan, list(trends), list(recommendations))


def rec(number: int, factor: str, level: str, effect: float, confident: bool = True) -> ContentRecommendation:
    return ContentRecommendation(
        number=number, factor=factor, level=level, metric="ctr", effect=effect,
        interval=[effect - 0.1, effect + 0.1], confident=confident, text=f"{number}. ...",
    )


def weekday(entry) -> int:
    return date.fromisoformat(entry.publish_on).weekday()


@pytest.mark.parametrize(
    "rule",
    [
        CadenceRule(max_per_week=2, min_days_between=3, weekdays=(0, 2, 4), default_hour=8),
        CadenceRule(max_per_week=1, min_days_between=6, weekdays=(1, 3), default_hour=17),
        CadenceRule(max_per_week=3, min_days_between=1, weekdays=(5, 6), default_hour=11),
    ],
)
def test_the_calendar_respects_the_cadence(rule: CadenceRule) -> None:
    cadence = {"blog": rule, "social": rule, "email": rule}
    calendar = build_content_calendar(make_request({"social": 12, "blog": 6, "email": 4}), cadence)
    for channel in ("social", "blog", "email"):
        days = sorted({date.fromisoformat(e.publish_on) for e in calendar.entries if e.channel == channel})
        assert days, channel
        assert all(d.weekday() in rule.weekdays for d in days)
        assert all((b - a).days >= rule.min_days_between for a, b in zip(days, days[1:]))
        per_week = Counter(d.isocalendar()[:2] for d in days)
        assert max(per_week.values()) <= rule.max_per_week
        assert all("2026-03-02" <= d.isoformat() <= "2026-03-29" for d in days)
        assert {e.publish_hour for e in calendar.entries if e.channel == channel} == {rule.default_hour}
    # 12 social posts cannot fit in 4 weeks at <= 3/week on 2 weekdays: the rationale says so.
    assert any(line.startswith("social:") and "dropped" in line for line in calendar.rationale)


def test_social_posts_are_network_triples_sharing_message_and_day() -> None:
    calendar = build_content_calendar(make_request({"social": 4, "blog": 2, "email": 2}))
    social = [e for e in calendar.entries if e.channel == "social"]
    assert len(social) == 4 * len(SOCIAL_NETWORK_FORMATS)
    sets = defaultdict(list)
    for e in social:
        sets[(e.publish_on, e.message_id)].append(e.format)
    assert len(sets) == 4
    assert all(sorted(formats) == sorted(SOCIAL_NETWORK_FORMATS) for formats in sets.values())
    assert {e.format for e in calendar.entries if e.channel == "blog"} == {"blog_post"}
    assert {e.format for e in calendar.entries if e.channel == "email"} == {"email"}
    # Stable ids, counted per channel.
    assert sorted(int(e.item_id.rsplit(":", 1)[1]) for e in social) == list(range(1, 13))
    assert all(e.item_id.startswith(f"c1:{e.channel}:") for e in calendar.entries)


def test_every_entry_carries_a_message_with_one_cta() -> None:
    calendar = build_content_calendar(make_request({"social": 4, "blog": 3, "email": 2}))
    ids = [m.message_id for m in calendar.messages]
    assert ids == [f"c1:m{n}" for n in range(1, len(MESSAGES) + 1)]
    assert sorted(m.message for m in calendar.messages) == sorted(MESSAGES)
    by_id = {m.message_id: m for m in calendar.messages}
    for e in calendar.entries:
        assert e.message_id in by_id
        assert e.angle == by_id[e.message_id].message and e.topic == by_id[e.message_id].topic
    assert {m.cta for m in calendar.messages} == {"Get started with Trailblaze boots today."}
    for m in calendar.messages:
        assert "TrailblazeBoots" in m.hashtags and {"trailblaze", "boots"} <= set(m.keywords)
        assert all(" " not in h and not h.startswith("#") for h in m.hashtags)
    # Each message reaches more than one channel.
    channels = defaultdict(set)
    for e in calendar.entries:
        channels[e.message_id].add(e.channel)
    assert all(len(c) > 1 for c in channels.values())


def test_a_confident_weekday_recommendation_moves_social_posts_and_is_cited() -> None:
    without = build_content_calendar(make_request({"social": 4, "blog": 2}))
    assert {weekday(e) for e in without.entries if e.channel == "social"} != {1}
    recommendations = [rec(1, "format_weekday", "linkedin_post@Tuesday", 0.31), rec(2, "weekday", "Friday", 0.2, False)]
    calendar = build_content_calendar(make_request({"social": 4, "blog": 2}, recommendations=recommendations))
    assert {weekday(e) for e in calendar.entries if e.channel == "social"} == {1}  # Tuesday
    # The blog has no linkedin posts: the format-specific finding leaves it where it was.
    assert [e.publish_on for e in calendar.entries if e.channel == "blog"] == [
        e.publish_on for e in without.entries if e.channel == "blog"
    ]
    cited = [line for line in calendar.rationale if "recommendation 1 " in line]
    assert cited and "Tuesday" in cited[0] and "+31%" in cited[0]
    assert any("Recommendation 2 is not confident" in line for line in calendar.rationale)
    # A tentative recommendation changes nothing.
    tentative = build_content_calendar(make_request({"social": 4, "blog": 2}, recommendations=[recommendations[1]]))
    assert tentative.entries == without.entries


def test_a_weekday_the_cadence_forbids_is_not_used_and_the_rationale_says_why() -> None:
    cadence = {"social": CadenceRule(max_per_week=3, min_days_between=1, weekdays=(0, 2, 4))}
    calendar = build_content_calendar(
        make_request({"social": 4}, recommendations=[rec(1, "weekday", "Tuesday", 0.3)]), cadence
    )
    assert all(weekday(e) in (0, 2, 4) for e in calendar.entries)
    assert any("recommendation 1" in line and "not applied" in line for line in calendar.rationale)


def test_a_confident_hour_recommendation_sets_the_publish_hour() -> None:
    evening = rec(4, "hour", "evening", 0.15)
    calendar = build_content_calendar(make_request({"social": 2, "email": 1}, recommendations=[evening]))
    assert {e.publish_hour for e in calendar.entries} == {19}
    assert any("recommendation 4" in line and "19:00" in line for line in calendar.rationale)
    plain = build_content_calendar(make_request({"social": 2, "email": 1}))
    assert {e.channel: e.publish_hour for e in plain.entries} == {
        "social": DEFAULT_CADENCE["social"].default_hour, "email": DEFAULT_CADENCE["email"].default_hour,
    }


def test_a_rising_competitor_trend_becomes_a_topic_tied_to_the_best_fitting_message() -> None:
    trends = [
        TopicTrend("waterproofing", "competitor", 0.45, ["waterproof", "rain", "dry"], "12 new posts in 3 feeds"),
        TopicTrend("discount codes", "own", -0.30, ["sale"]),
    ]
    calendar = build_content_calendar(make_request({"social": 3, "blog": 2}, trends=trends))
    first = calendar.messages[0]
    # It fits "Dry feet on every trail" (shares "dry"), leads the calendar, and is cited with its momentum.
    assert (first.topic, first.message) == ("waterproofing", "Dry feet on every trail")
    assert "Waterproofing" in first.hashtags and "waterproof" in first.keywords
    assert all(m.topic != "discount codes" for m in calendar.messages)  # falling: not used
    cited = [line for line in calendar.rationale if "waterproofing" in line]
    assert cited and "competitor" in cited[0] and "+45%" in cited[0]
    assert calendar.entries[0].message_id == first.message_id


def test_a_confident_negative_topic_recommendation_overrides_a_trend() -> None:
    trends = [TopicTrend("waterproofing", "competitor", 0.45, ["dry"])]
    calendar = build_content_calendar(
        make_request({"social": 2}, trends=trends, recommendations=[rec(3, "topic", "waterproofing", -0.25)])
    )
    assert all(m.topic != "waterproofing" for m in calendar.messages)
    assert any("recommendation 3" in line and "waterproofing" in line for line in calendar.rationale)


def test_analyzer_output_feeds_the_strategy_end_to_end() -> None:
    """The real analyzer on planted data -> the calendar moves social sets to the planted weekday."""
    rows = simulate_performance(
        2000, seed=7, effects=[PlantedEffect("format_weekday", "linkedin_post@Tuesday", 0.30)],
        formats=SOCIAL_NETWORK_FORMATS,
    )
    recommendations = analyze_performance(rows).recommendations
    calendar = build_content_calendar(make_request({"social": 3}, recommendations=recommendations))
    assert {weekday(e) for e in calendar.entries} == {1}
    assert any("recommendation 1 " in line for line in calendar.rationale)


def test_same_input_same_calendar() -> None:
    trends = [TopicTrend("waterproofing", "competitor", 0.45, ["dry"]), TopicTrend("gear care", "own", 0.2)]
    recommendations = [rec(1, "weekday", "Wednesday", 0.2), rec(2, "hour", "morning", 0.1)]
    posts = {"social": 5, "blog": 3, "email": 2}
    a = build_content_calendar(make_request(posts, trends=trends, recommendations=recommendations))
    b = build_content_calendar(make_request(dict(posts), trends=list(trends), recommendations=list(recommendations)))
    assert a == b
    assert [e.publish_on for e in a.entries] == sorted(e.publish_on for e in a.entries)


def test_bad_cadence_and_unknown_channels_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_per_week"):
        CadenceRule(max_per_week=0, min_days_between=1)
    with pytest.raises(ValueError, match="weekdays"):
        CadenceRule(max_per_week=1, min_days_between=1, weekdays=(7,))
    with pytest.raises(ValueError, match="tv"):
        build_content_calendar(make_request({"tv": 1}))


def test_messages_no_post_carries_are_left_out_and_said_so() -> None:
    calendar = build_content_calendar(make_request({"social": 1, "email": 1}))
    assert [m.message_id for m in calendar.messages] == ["c1:m1"]
    assert {e.message_id for e in calendar.entries} == {"c1:m1"}
    assert sum("not scheduled" in line for line in calendar.rationale) == 2
