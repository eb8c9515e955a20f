"""Simulated tenant history in the shapes the product stores: CSV round trip, API rows, rescaling."""

from __future__ import annotations

import numpy as np
import pytest

from agency.mmm.allocation import AllocationRequest, optimal_weekly_spend
from agency.mmm.history import api_rows, from_csv, scaled_market, tenant_market, to_csv
from agency.mmm.simulator import random_market, simulate, truth_model


def test_csv_round_trip_keeps_channels_weeks_and_numbers():
    data = simulate(tenant_market(["social", "email"], weekly_spend_total=3000.0, seed=3, weeks=30))
    back = from_csv(to_csv(data))
    assert back.channels == ["social", "email"] and back.week_starts == data.week_starts
    np.testing.assert_allclose(back.spend, data.spend, atol=0.005)
    np.testing.assert_allclose(back.outcome, data.outcome, atol=0.0005)


def test_api_rows_are_cents_per_channel_per_week():
    data = simulate(tenant_market(["blog"], weekly_spend_total=1000.0, seed=1, weeks=3))
    rows = api_rows(data)
    assert [r["week_start"] for r in rows] == data.week_starts
    assert rows[0]["spend_cents"] == {"blog": int(round(data.spend[0, 0] * 100))}


def test_rescaling_keeps_conversions_per_dollar_and_the_optimal_shares():
    spec = random_market(5, channel_names=["a", "b", "c"], weeks=60)
    small = scaled_market(spec, 3000.0)
    assert sum(small.mean_spend) == pytest.approx(3000.0)
    factor = 3000.0 / sum(spec.mean_spend)
    req_big = AllocationRequest(total_budget=sum(spec.mean_spend) * 4, horizon_weeks=4)
    req_small = AllocationRequest(total_budget=3000.0 * 4, horizon_weeks=4)
    big_plan = optimal_weekly_spend(truth_model(spec, simulate(spec)), req_big)
    small_plan = optimal_weekly_spend(truth_model(small, simulate(small)), req_small)
    np.testing.assert_allclose(small_plan / small_plan.sum(), big_plan / big_plan.sum(), atol=0.02)
    assert small.baseline == pytest.approx(spec.baseline * factor)
