"""Planning and budgeting from a fitted market model: the plan cites its numbers, the budget
follows the gated recommendation to the cent, and without evidence nothing pretends otherwise."""

from __future__ import annotations

import pytest

from agency.agents.budget import allocate_from_market
from agency.agents.planning import plan_campaign
from agency.contracts import BudgetRequest, CampaignHistory, ChannelInsight, MarketAssessment, PlanRequest
from test_planning import make_brief


def assessment(evidence: str = "sufficient") -> MarketAssessment:
    return MarketAssessment(
        fit_id="fit_cmp", evidence=evidence, reason="recovery gate passed" if evidence == "sufficient" else "too flat",
        weeks=104, r2=0.91, mape=0.043, peak_month="November", expected_conversions=812.4, interval=[700.2, 901.9],
        channels=[
            ChannelInsight("social", 104, 120_000, 0.031, 0.012, 0.25, 0.3 if evidence == "sufficient" else None),
            ChannelInsight("email", 100, 80_000, 0.090, 0.045, 0.75, 0.7 if evidence == "sufficient" else None),
        ],
    )


def market_plan(market: MarketAssessment):
    brief = make_brief(channels=["social", "email"], start_date="2026-11-02", end_date="2026-11-15")
    return plan_campaign(PlanRequest("cmp", brief, CampaignHistory(tenant="t"), market=market))


def test_plan_cites_the_fitted_numbers_and_takes_the_recommended_shares():
    plan = market_plan(assessment())
    text = "\n".join(plan.rationale)
    assert "Market model fitted on 104 weeks of history (R² 0.91, MAPE 4.3%); recovery gate passed." in text
    assert "weight 0.70 (the market model's recommended share)" in text
    assert "email: 9.00 conversions per $100 over the history, 4.50 per extra $100 at $800/week" in text
    assert "Best channel for the next dollar: email." in text
    assert "November; the campaign start (November) falls in it." in text
    assert "Expected 812 media-driven conversions over the campaign (90% interval 700–902)." in text
    assert {c.channel: round(c.weight, 6) for c in plan.channels} == {"social": 0.3, "email": 0.7}
    assert plan.used_history


def test_insufficient_evidence_is_said_and_benchmark_weights_stay():
    plan = market_plan(assessment("insufficient"))
    assert any("insufficient evidence to advise an allocation: too flat" in line for line in plan.rationale)
    benchmark = market_plan(MarketAssessment(fit_id="f", evidence="none", reason="0 weeks", weeks=0))
    assert [c.weight for c in plan.channels] == [c.weight for c in benchmark.channels]
    assert "Market model: not fitted (0 weeks); benchmark rates used." in benchmark.rationale


def test_budget_follows_the_recommendation_to_the_cent():
    plan = market_plan(assessment())
    rows = [
        {"channel": "social", "total_spend": 1_000.0, "expected_outcome": 30.5, "marginal_roi": 0.011},
        {"channel": "email", "total_spend": 2_000.0, "expected_outcome": 120.25, "marginal_roi": 0.04},
    ]
    budget = allocate_from_market(BudgetRequest("cmp", 300_001, plan), assessment(), rows)
    assert budget.evidence == "fitted" and budget.fit_id == "fit_cmp"
    assert {c.channel: c.amount_cents for c in budget.channels} == {"social": 100_000, "email": 200_001}
    assert budget.interval == [700.2, 901.9]
    assert budget.channels[1].marginal_conversions_per_dollar == 0.04
    with pytest.raises(ValueError, match="no spend for"):
        allocate_from_market(BudgetRequest("cmp", 100, plan), assessment(), rows[:1])


def test_plan_compares_the_audience_with_past_campaigns():
    from agency.contracts import PastCampaign

    brief = make_brief(audience="weekend hikers in wet weather")
    past = [
        PastCampaign("c1", "weekend hikers aged 25-45", "2026-01-05", 100_000, 420),
        PastCampaign("c2", "weekend hikers aged 25-45", "2026-04-05", 100_000, 380),
        PastCampaign("c3", "trail runners", "2026-06-01", 50_000, 300),
        PastCampaign("c4", "nobody", "2026-06-01", 0, 0),  # no spend: says nothing
    ]
    plan = plan_campaign(PlanRequest("cmp", brief, CampaignHistory(tenant="t", campaigns=past)))
    text = "\n".join(plan.rationale)
    assert ("Past audiences: 'trail runners' 60.00 conversions per $100 over 1 campaign(s); "
            "'weekend hikers aged 25-45' 40.00 conversions per $100 over 2 campaign(s).") in text
    assert ("This audience is closest to 'weekend hikers aged 25-45' (shared: hikers, weekend), "
            "#2 of 2 past audience at 40.00 conversions per $100.") in text
    fresh = plan_campaign(PlanRequest("cmp", make_brief(audience="cfo buyers"), CampaignHistory("t", campaigns=past)))
    assert "This audience shares no terms with past ones: no audience history applies." in fresh.rationale


def test_plan_cites_the_best_past_start_month():
    from agency.contracts import PastCampaign

    past = [
        PastCampaign("c1", "a", "2025-11-03", 100_000, 500),
        PastCampaign("c2", "a", "2026-03-02", 100_000, 200),
        PastCampaign("c3", "a", "not a date", 100_000, 900),
    ]
    plan = plan_campaign(PlanRequest("cmp", make_brief(start_date="2026-03-01"), CampaignHistory("t", campaigns=past)))
    assert ("Past campaigns by start month: best November at 50.00 conversions per $100 over 2 months with history; "
            "this campaign starts in March (20.00).") in plan.rationale
    one_month = plan_campaign(PlanRequest("cmp", make_brief(), CampaignHistory("t", campaigns=past[:1])))
    assert not any(line.startswith("Past campaigns by start month") for line in one_month.rationale)
