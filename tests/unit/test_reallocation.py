"""Dynamic reallocation: recalibrate to what each channel delivered, re-split only what is left."""

from __future__ import annotations

import math

import pytest

from activities.channel_publishing import item_budgets
from agency.agents.reallocation import ChannelProgress, propose, recalibration
from agency.contracts import ItemBudgetsRequest, ItemMetrics, MetricsSnapshot


def sqrt_curve(rate: dict[str, float]):
    """Concave remaining-period response: rate * sqrt(cents)."""
    return lambda channel, cents: rate[channel] * math.sqrt(max(cents, 0.0))


def progress(channel: str, budget: int, spent: int, conversions: int, expected: float) -> ChannelProgress:
    return ChannelProgress(channel, budget, spent, conversions, expected)


def test_recalibration_shrinks_small_samples_towards_the_curve():
    assert recalibration(progress("a", 100, 50, 0, 0.0)) == 1.0
    doubled = recalibration(progress("a", 100, 50, 200, 100.0))
    assert 1.8 < doubled < 2.0
    # Two conversions against one expected barely moves the level.
    assert recalibration(progress("a", 100, 50, 2, 1.0)) < 1.1


def test_money_moves_to_the_channel_that_beat_its_curve():
    channels = [progress("social", 50_000, 20_000, 300, 100.0), progress("email", 50_000, 20_000, 100, 100.0)]
    out = propose(channels, sqrt_curve({"social": 1.0, "email": 1.0}), ramp_limit=0.5)
    assert out.after_cents["social"] > out.before_cents["social"]
    assert out.after_cents["email"] < out.before_cents["email"]
    assert sum(out.after_cents.values()) == sum(out.before_cents.values())
    # Spent money stays spent; the remaining 30,000 per channel moves at most ±50%.
    for c in ("social", "email"):
        assert 20_000 + 15_000 <= out.after_cents[c] <= 20_000 + 45_000
    assert out.change == pytest.approx(abs(out.after_cents["social"] - 50_000) / 100_000)
    assert "social: 300 conversions" in " ".join(out.reasons)


def test_equal_performance_keeps_the_split_and_ramp_zero_freezes_it():
    channels = [progress("a", 40_000, 10_000, 50, 50.0), progress("b", 40_000, 10_000, 50, 50.0)]
    same = propose(channels, sqrt_curve({"a": 1.0, "b": 1.0}), ramp_limit=0.5)
    assert same.change <= 0.01
    frozen = propose(
        [progress("a", 40_000, 10_000, 500, 50.0), progress("b", 40_000, 10_000, 0, 50.0)],
        sqrt_curve({"a": 1.0, "b": 1.0}), ramp_limit=0.0,
    )
    assert frozen.after_cents == frozen.before_cents


def test_a_spent_budget_has_nothing_to_move_and_bad_input_is_refused():
    done = propose([progress("a", 100, 100, 5, 5.0), progress("b", 100, 120, 5, 5.0)], sqrt_curve({"a": 1, "b": 1}), ramp_limit=0.5)
    assert done.after_cents == done.before_cents and done.change == 0.0
    with pytest.raises(ValueError):
        propose([], sqrt_curve({}), ramp_limit=0.5)
    with pytest.raises(ValueError):
        propose([progress("a", 100, 0, 0, 0.0)], sqrt_curve({"a": 1}), ramp_limit=-0.1)


def metrics(item: str, channel: str, spend: int) -> ItemMetrics:
    return ItemMetrics(item_id=item, channel=channel, external_id=f"ext-{item}", impressions=1000, clicks=10,
                       conversions=1, spend_cents=spend)


def test_item_budgets_split_what_each_channel_has_left_by_experiment_weights():
    snapshot = MetricsSnapshot("cmp", 1, [metrics("s1", "social", 1_000), metrics("s2", "social", 3_000),
                                          metrics("e1", "email", 500)])
    budgets = item_budgets(ItemBudgetsRequest(
        campaign_id="cmp", round=1, channel_cents={"social": 10_000, "email": 2_000},
        arm_weights={"social": {"s1": 0.0, "s2": 1.0}}, snapshot=snapshot,
    ))
    # social has 6,000 left, all of it for the winning variant s2; email's 1,500 stays with e1.
    assert budgets == {"s1": 1_000, "s2": 9_000, "e1": 2_000}
    equal = item_budgets(ItemBudgetsRequest("cmp", 1, {"social": 10_001}, {}, snapshot))
    assert equal["s1"] + equal["s2"] == 10_001 and abs((equal["s1"] - 1_000) - (equal["s2"] - 3_000)) <= 1
