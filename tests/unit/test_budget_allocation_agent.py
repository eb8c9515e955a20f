"""Budget Allocation Agent: optimizer correctness, constraints, request validation, recovery gate."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from agency.mmm.allocation import (
    AllocationRequest, ChannelConstraint, GateTolerances, InsufficientEvidence, Recommendation, decision_losses,
    horizon_value, optimal_weekly_spend, optimize, recommend, recovery_gate,
)
from agency.mmm.fit import fit_market
from agency.mmm.simulator import MediaModel, random_market, simulate, truth_model

H = 8


def model(decay, k, s, beta, state, last) -> MediaModel:
    arr = lambda v: np.asarray(v, dtype=float)  # noqa: E731
    return MediaModel(("a", "b", "c")[: len(decay)], arr(decay), arr(k), arr(s), arr(beta), arr(state), arr(last))


CONCAVE = model([0.3, 0.5, 0.2], [4_000, 8_000, 2_000], [1.0, 1.2, 0.9], [900, 1_500, 400], [3_000, 6_000, 1_500],
                [3_000, 6_000, 1_500])
S_SHAPED = model([0.2, 0.4], [10_000, 3_000], [3.0, 1.0], [5_000, 800], [2_000, 3_000], [2_000, 3_000])


def brute_force(m: MediaModel, weekly_budget: float, steps: int = 200) -> float:
    """Best value on a fine grid of full-budget splits (2 or 3 channels)."""
    steps = steps if len(m.channels) < 3 else 80
    grid = np.linspace(0, weekly_budget, steps + 1)
    best = -np.inf
    for split in itertools.product(grid, repeat=len(m.channels) - 1):
        last = weekly_budget - sum(split)
        if last >= -1e-9:
            best = max(best, horizon_value(m, np.array([*split, max(last, 0.0)]), H))
    return best


@pytest.mark.parametrize("m, weekly", [(CONCAVE, 12_000.0), (S_SHAPED, 9_000.0), (S_SHAPED, 20_000.0)])
def test_optimum_matches_brute_force(m, weekly):
    x = optimal_weekly_spend(m, AllocationRequest(total_budget=weekly * H, horizon_weeks=H))
    assert x.sum() == pytest.approx(weekly, rel=1e-6)
    assert horizon_value(m, x, H) >= brute_force(m, weekly) * (1 - 1e-6)


def test_interior_optimum_equalizes_marginal_roi():
    allocs = optimize(CONCAVE, AllocationRequest(total_budget=12_000 * H, horizon_weeks=H))
    mroi = [a.marginal_roi for a in allocs if a.weekly_spend > 1.0]
    assert max(mroi) == pytest.approx(min(mroi), rel=0.02)
    assert sum(a.share for a in allocs) == pytest.approx(1.0)
    assert all(a.total_spend == pytest.approx(a.weekly_spend * H) for a in allocs)
    assert all(len(a.curve) > 10 and a.curve[0] == (0.0, 0.0) for a in allocs)


def test_min_max_lock_and_ramp_are_respected():
    req = AllocationRequest(
        total_budget=11_000 * H, horizon_weeks=H, ramp_limit=0.5,
        constraints=[ChannelConstraint("a", locked=3_500.0), ChannelConstraint("b", min_weekly=5_000, max_weekly=6_500)],
    )
    x = optimal_weekly_spend(CONCAVE, req)
    assert x[0] == pytest.approx(3_500.0)
    assert 5_000 - 1e-6 <= x[1] <= 6_500 + 1e-6
    for c in (1, 2):
        assert abs(x[c] - CONCAVE.last_spend[c]) <= 0.5 * CONCAVE.last_spend[c] + 1e-6
    assert x.sum() <= 11_000 * (1 + 1e-9)
    free = optimal_weekly_spend(CONCAVE, AllocationRequest(total_budget=11_000 * H, horizon_weeks=H))
    assert horizon_value(CONCAVE, free, H) >= horizon_value(CONCAVE, x, H) - 1e-6


def test_target_mroi_stops_spending_below_the_target():
    full = optimize(CONCAVE, AllocationRequest(total_budget=40_000 * H, horizon_weeks=H))
    target = 2 * max(a.marginal_roi for a in full)
    allocs = optimize(CONCAVE, AllocationRequest(total_budget=40_000 * H, horizon_weeks=H, objective="target_mroi",
                                                target_mroi=target))
    spent = sum(a.weekly_spend for a in allocs)
    assert 0 < spent < 40_000
    for a in allocs:
        if a.weekly_spend > 1.0:
            assert a.marginal_roi == pytest.approx(target, rel=0.05)


@pytest.mark.parametrize("req, message", [
    (AllocationRequest(total_budget=1_000, horizon_weeks=H, constraints=[ChannelConstraint("a", min_weekly=500)]), "below"),
    (AllocationRequest(total_budget=10_000, horizon_weeks=H, constraints=[ChannelConstraint("zzz")]), "unknown channel"),
    (AllocationRequest(total_budget=-5, horizon_weeks=H), "non-negative"),
    (AllocationRequest(total_budget=10_000, horizon_weeks=0), "horizon_weeks"),
    (AllocationRequest(total_budget=10_000, horizon_weeks=H, constraints=[ChannelConstraint("a", min_weekly=-1)]), "non-negative"),
    (AllocationRequest(total_budget=10_000 * H, horizon_weeks=H, ramp_limit=0.1,
                       constraints=[ChannelConstraint("a", max_weekly=1_000)]), "ramp limit"),
    (AllocationRequest(total_budget=10_000, horizon_weeks=H, objective="target_mroi"), "target_mroi"),
    (AllocationRequest(total_budget=10_000, horizon_weeks=H,
                       constraints=[ChannelConstraint("a"), ChannelConstraint("a")]), "twice"),
])
def test_invalid_requests_raise_value_error(req, message):
    with pytest.raises(ValueError, match=message):
        optimize(CONCAVE, req)


def _request(data, horizon=13):
    return AllocationRequest(total_budget=horizon * float(data.spend[-8:].sum(axis=1).mean()), horizon_weeks=horizon)


# Three years: the history the gate asks for, so a verdict below is not just "too few weeks".
WEEKS = GateTolerances.min_history_weeks


def test_gate_refuses_market_with_too_little_spend_variation():
    data = simulate(random_market(0, spend_variation=0.025, weeks=WEEKS))
    result = recommend(data, _request(data), seed=0, bootstrap=2, replicas=2)
    assert isinstance(result, InsufficientEvidence) and not result.gate.passed
    assert result.reason.startswith("insufficient evidence")
    assert any("varied only" in d for d in result.details)
    # The replicas themselves must fail to recover the curves, not only the variation rule.
    assert any("not recovered" in d for d in result.details)
    assert result.gate.metrics["spend_cv"]["search"] < 0.05


def test_gate_passes_normal_market_and_advice_beats_status_quo():
    spec = random_market(5, weeks=WEEKS)
    data = simulate(spec)
    req = _request(data)
    result = recommend(data, req, seed=0, bootstrap=4, replicas=2)
    assert isinstance(result, Recommendation), getattr(result, "details", None)
    assert result.gate.passed and not result.gate.reasons
    weekly = np.array([a.weekly_spend for a in result.allocations])
    assert weekly.sum() * req.horizon_weeks == pytest.approx(req.total_budget, rel=1e-6)
    lo, hi = result.interval
    assert lo <= hi and lo > 0
    truth = truth_model(spec, data)
    best = horizon_value(truth, optimal_weekly_spend(truth, req), req.horizon_weeks)
    mix = data.spend.mean(axis=0)
    status_quo = horizon_value(truth, mix / mix.sum() * weekly.sum(), req.horizon_weeks)
    assert horizon_value(truth, weekly, req.horizon_weeks) > status_quo
    assert (best - horizon_value(truth, weekly, req.horizon_weeks)) / best < 0.05


def test_gate_refuses_two_years_of_history_unless_the_operator_accepts_them():
    data = simulate(random_market(5, weeks=104))
    req = _request(data)
    refused = recommend(data, req, seed=0, bootstrap=4, replicas=2)
    assert isinstance(refused, InsufficientEvidence)
    # The history is the only objection: the same market with three years passes (test above).
    assert refused.details == [
        "only 104 weeks of history; budget advice needs 156 (with less, noise alone can make a wrong split look certain)"
    ]
    assert refused.gate.metrics["history_weeks"] == 104
    accepted = recommend(data, req, seed=0, bootstrap=4, replicas=2, tolerances=GateTolerances(min_history_weeks=104))
    assert isinstance(accepted, Recommendation) and accepted.gate.passed


def test_gate_metrics_name_every_channel():
    data = simulate(random_market(8))
    fit = fit_market(data, bootstrap=0)
    report = recovery_gate(data, fit, _request(data), replicas=1, seed=3)
    for key in ("response_error_at_recommended", "response_error_at_history", "decay_error"):
        assert set(report.metrics[key]) == set(data.channels)
    assert report.metrics["allocation_regret"] >= -1e-9


def _with_samples(fit, samples):
    """The same fit with other bootstrap samples (adstock state kept: the curves are what differ)."""
    return dataclasses.replace(fit, bootstrap=[{**s, "adstock_state": list(fit.adstock_state)} for s in samples])


def _point_sample(fit) -> dict:
    return {k: [getattr(c, k) for c in fit.channels] for k in ("decay", "half_saturation", "shape", "beta")}


def test_decision_loss_is_zero_when_plausible_fits_agree_and_refuses_when_they_disagree():
    data = simulate(random_market(5))
    req = _request(data)
    fit = fit_market(data, bootstrap=0, seed=0)
    point = _point_sample(fit)
    agreeing = _with_samples(fit, [point, point])
    weekly = optimal_weekly_spend(agreeing, req)
    assert np.all(decision_losses(agreeing, req, weekly) < 1e-6)
    calm = recovery_gate(data, agreeing, req, replicas=1, seed=3, recommended=weekly)
    assert calm.metrics["decision_expected_loss"] < 1e-6
    assert not any("plausible fits" in r for r in calm.reasons)
    # Plausible fits that credit the best channel's effect to the worst one: the advice hinges on which.
    best, worst = np.argmax(fit.media_model().beta), np.argmin(fit.media_model().beta)
    swapped = {k: list(v) for k, v in point.items()}
    for key in ("beta", "half_saturation", "shape"):
        swapped[key][best], swapped[key][worst] = point[key][worst], point[key][best]
    torn = _with_samples(fit, [swapped, swapped, swapped])
    weekly = optimal_weekly_spend(torn, req)
    losses = decision_losses(torn, req, weekly)
    assert len(losses) == 4 and losses.mean() > 0.02
    report = recovery_gate(data, torn, req, replicas=1, seed=3, recommended=weekly)
    assert not report.passed and report.metrics["decision_expected_loss"] == pytest.approx(losses.mean())
    assert any("plausible fits" in r for r in report.reasons)


def test_recommend_rejects_bad_request_before_fitting():
    data = simulate(random_market(1, n_channels=3))
    with pytest.raises(ValueError, match="unknown channel"):
        recommend(data, AllocationRequest(total_budget=1e5, horizon_weeks=4, constraints=[ChannelConstraint("tv")]))
