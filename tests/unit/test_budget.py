"""Budget agent: exact cents, floors, better channels get more, edge cases."""

from __future__ import annotations

import pytest

from agency.agents.budget import allocate_budget, largest_remainder_cents
from agency.contracts import BudgetRequest, CampaignPlan, ChannelPlan


def make_plan(*channels: tuple[str, float, float, float]) -> CampaignPlan:
    """channels: (name, weight, ctr, cvr)."""
    return CampaignPlan(
        campaign_id="c1",
        objective="conversion",
        key_messages=["m"],
        tone="clear and friendly",
        channels=[ChannelPlan(c, "conversion", w, cvr, ctr, 1) for c, w, ctr, cvr in channels],
        duration_days=14,
        rationale=[],
        used_history=False,
    )


THREE = make_plan(("social", 0.2, 0.012, 0.015), ("blog", 0.3, 0.02, 0.03), ("email", 0.5, 0.03, 0.04))


def amounts(total: int, plan: CampaignPlan = THREE, **kwargs) -> dict[str, int]:
    allocation = allocate_budget(BudgetRequest("c1", total, plan), **kwargs)
    return {c.channel: c.amount_cents for c in allocation.channels}


@pytest.mark.parametrize("total", [1, 2, 99, 100_001, 333_333, 1_000_000_007])
def test_amounts_sum_exactly_to_the_total(total: int) -> None:
    allocation = allocate_budget(BudgetRequest("c1", total, THREE))
    assert sum(c.amount_cents for c in allocation.channels) == total
    assert all(isinstance(c.amount_cents, int) and c.amount_cents >= 0 for c in allocation.channels)
    assert sum(c.share for c in allocation.channels) == pytest.approx(1.0)


@pytest.mark.parametrize("min_share", [0.1, 0.2, 0.3])
def test_every_channel_gets_at_least_the_floor(min_share: float) -> None:
    lopsided = make_plan(("social", 0.02, 0.012, 0.015), ("blog", 0.03, 0.02, 0.03), ("email", 0.95, 0.03, 0.04))
    total = 1_000_000
    result = amounts(total, lopsided, min_share=min_share)
    assert all(v >= int(min_share * total) for v in result.values())
    assert result["email"] == total - result["social"] - result["blog"]


def test_higher_weight_channel_gets_more_but_with_diminishing_returns_not_everything() -> None:
    result = amounts(1_000_000, min_share=0.0)
    assert result["email"] > result["blog"] > result["social"] > 0
    assert result["email"] < 1_000_000 * 0.9


def test_a_channel_with_better_history_gets_more_budget() -> None:
    # Same plan except blog's weight rose because its history showed better rates.
    better_blog = make_plan(("social", 0.15, 0.012, 0.015), ("blog", 0.45, 0.04, 0.05), ("email", 0.4, 0.03, 0.04))
    assert amounts(1_000_000, better_blog)["blog"] > amounts(1_000_000)["blog"]


def test_single_channel_gets_everything() -> None:
    allocation = allocate_budget(BudgetRequest("c1", 12_345, make_plan(("email", 1.0, 0.03, 0.04))))
    assert [(c.channel, c.amount_cents, c.share) for c in allocation.channels] == [("email", 12_345, 1.0)]
    assert any("whole budget" in n for n in allocation.notes)


def test_zero_budget_allocates_zero() -> None:
    allocation = allocate_budget(BudgetRequest("c1", 0, THREE))
    assert [c.amount_cents for c in allocation.channels] == [0, 0, 0]
    assert all(c.share == 0 for c in allocation.channels)


def test_negative_budget_and_bad_floor_are_rejected() -> None:
    with pytest.raises(ValueError):
        allocate_budget(BudgetRequest("c1", -1, THREE))
    with pytest.raises(ValueError):
        allocate_budget(BudgetRequest("c1", 100, THREE), min_share=1.5)


def test_floor_too_large_for_the_channel_count_becomes_an_even_split() -> None:
    result = amounts(300, min_share=0.5)
    assert result == {"social": 100, "blog": 100, "email": 100}


def test_notes_explain_method_and_expected_gain() -> None:
    allocation = allocate_budget(BudgetRequest("c1", 500_000, THREE))
    assert "largest-remainder" in allocation.method
    assert any("even split" in n for n in allocation.notes)
    assert any(n.startswith("email: weight 0.50") for n in allocation.notes)


def test_largest_remainder_gives_leftover_cents_to_largest_fractions() -> None:
    assert largest_remainder_cents({"a": 1.6, "b": 1.3, "c": 1.1}, 4) == {"a": 2, "b": 1, "c": 1}
    assert largest_remainder_cents({"a": 0.5, "b": 0.5}, 1) == {"a": 1, "b": 0}  # tie: plan order
