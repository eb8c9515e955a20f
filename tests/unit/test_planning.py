"""Planning agent: objective, tone, channel rates, weights, post counts, validation."""

from __future__ import annotations

import pytest

from agency.agents.planning import CHANNEL_PRIORS, classify_goal, plan_campaign
from agency.contracts import CampaignBrief, CampaignHistory, ChannelHistory, PlanRequest


def make_brief(**overrides) -> CampaignBrief:
    fields = dict(
        tenant="acme",
        product="Acme CRM",
        audience="small business owners",
        goals=["Grow trial signups"],
        channels=["social", "blog", "email"],
        total_budget_cents=500_000,
        start_date="2026-03-01",
        end_date="2026-03-28",
        key_claims=["Set up in 10 minutes"],
    )
    fields.update(overrides)
    return CampaignBrief(**fields)


def plan(brief: CampaignBrief, history: list[ChannelHistory] | None = None, **kwargs):
    return plan_campaign(PlanRequest("c1", brief, CampaignHistory("acme", history or [])), **kwargs)


@pytest.mark.parametrize(
    ("goal", "stage"),
    [
        ("Grow trial signups", "conversion"),
        ("Increase online sales by 20%", "conversion"),
        ("Drive traffic to the pricing page", "consideration"),
        ("Build brand awareness", "awareness"),
        ("Launch the new product line", "awareness"),
        ("Brand leadership", "awareness"),  # "leadership" is not "lead"
        ("Be nice", None),
    ],
)
def test_goals_are_classified_into_funnel_stages(goal: str, stage: str | None) -> None:
    assert classify_goal(goal) == stage


def test_objective_follows_the_majority_of_goals() -> None:
    result = plan(make_brief(goals=["Build brand awareness", "Reach new audiences", "Get more signups"]))
    assert result.objective == "awareness"


def test_objective_defaults_to_awareness_when_no_goal_matches() -> None:
    assert plan(make_brief(goals=["Be excellent"])).objective == "awareness"


@pytest.mark.parametrize(
    ("audience", "tone"),
    [
        ("backend developers", "technical and precise"),
        ("enterprise CFOs", "professional and confident"),
        ("busy parents", "warm and reassuring"),
        ("college students", "casual and energetic"),
        ("people who like tea", "clear and friendly"),
    ],
)
def test_tone_comes_from_the_audience(audience: str, tone: str) -> None:
    assert plan(make_brief(audience=audience)).tone == tone


def test_key_messages_carry_claims_product_and_audience() -> None:
    result = plan(make_brief(goals=["Get more signups", "Build brand awareness"]))
    assert result.key_messages[0] == "Set up in 10 minutes"
    assert any("Acme CRM" in m for m in result.key_messages)
    assert any("small business owners" in m for m in result.key_messages)
    assert len(result.key_messages) == len({m.lower() for m in result.key_messages})


def test_weights_sum_to_one_and_follow_the_objective() -> None:
    conversion = plan(make_brief(goals=["More purchases"]))
    awareness = plan(make_brief(goals=["Brand awareness"]))
    for p in (conversion, awareness):
        assert sum(c.weight for c in p.channels) == pytest.approx(1.0)
    by_channel = {c.channel: c.weight for c in conversion.channels}
    # Email converts best per dollar; cheap social reach wins for awareness.
    assert max(by_channel, key=by_channel.get) == "email"
    aw = {c.channel: c.weight for c in awareness.channels}
    assert max(aw, key=aw.get) == "social"


def test_without_history_rates_are_the_priors() -> None:
    result = plan(make_brief())
    assert not result.used_history
    for c in result.channels:
        assert c.expected_ctr == CHANNEL_PRIORS[c.channel].ctr
        assert c.expected_cvr == CHANNEL_PRIORS[c.channel].cvr
        assert c.role == CHANNEL_PRIORS[c.channel].role


def test_small_history_moves_priors_a_little_and_large_history_a_lot() -> None:
    prior = CHANNEL_PRIORS["blog"].ctr
    observed = 0.05
    small = plan(make_brief(), [ChannelHistory("blog", 1, 1_000, 500, 25, 1)])
    large = plan(make_brief(), [ChannelHistory("blog", 9, 100_000, 500_000, 25_000, 750)])
    small_ctr = next(c.expected_ctr for c in small.channels if c.channel == "blog")
    large_ctr = next(c.expected_ctr for c in large.channels if c.channel == "blog")
    assert prior < small_ctr < prior + 0.1 * (observed - prior)
    assert large_ctr > prior + 0.9 * (observed - prior)
    assert small.used_history and large.used_history


def test_better_history_raises_a_channels_weight() -> None:
    baseline = plan(make_brief())
    strong_blog = plan(make_brief(), [ChannelHistory("blog", 5, 200_000, 200_000, 10_000, 800)])
    weight = lambda p: next(c.weight for c in p.channels if c.channel == "blog")  # noqa: E731
    assert weight(strong_blog) > weight(baseline)
    assert any("blog: history 200000 impressions" in line for line in strong_blog.rationale)


def test_posts_follow_cadence_and_are_capped() -> None:
    one_week = plan(make_brief(start_date="2026-03-01", end_date="2026-03-07"), max_posts_per_channel=5)
    posts = {c.channel: c.posts for c in one_week.channels}
    assert posts == {"social": 3, "blog": 1, "email": 1}
    four_weeks = plan(make_brief(), max_posts_per_channel=2)
    assert all(c.posts == 2 for c in four_weeks.channels)
    one_day = plan(make_brief(start_date="2026-03-01", end_date="2026-03-01"))
    assert one_day.duration_days == 1
    assert all(c.posts == 1 for c in one_day.channels)


def test_duration_is_inclusive_and_reversed_dates_are_rejected() -> None:
    assert plan(make_brief()).duration_days == 28
    with pytest.raises(ValueError, match="before"):
        plan(make_brief(start_date="2026-03-10", end_date="2026-03-01"))


def test_unknown_or_missing_channels_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        plan(make_brief(channels=["fax"]))
    with pytest.raises(ValueError, match="no channels"):
        plan(make_brief(channels=[]))


def test_rationale_explains_each_channel_with_numbers() -> None:
    result = plan(make_brief())
    for channel in ("social", "blog", "email"):
        assert any(line.startswith(f"{channel}: role") and "weight" in line for line in result.rationale)


def test_planning_is_deterministic() -> None:
    assert plan(make_brief()) == plan(make_brief())
