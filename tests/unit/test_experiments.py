"""The A/B testing framework: decisions, state carried between peeks, and its error rates by simulation."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from agency.agents.experiments import (
    ArmCounts,
    ExperimentConfig,
    ExperimentState,
    always_valid_difference_ci,
    evaluate,
    msprt_p_value,
    thompson_weights,
)

FAST = ExperimentConfig(draws=2000)


def two_arms(n_a: int, c_a: int, n_b: int, c_b: int) -> list[ArmCounts]:
    return [ArmCounts("A", n_a, c_a), ArmCounts("B", n_b, c_b)]


# --- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arms", "control", "message"),
    [
        (two_arms(100, 101, 100, 5), "A", "exceed"),
        (two_arms(-1, 0, 100, 5), "A", ">= 0"),
        (two_arms(100, -3, 100, 5), "A", ">= 0"),
        (two_arms(100, 3, 100, 5), "Z", "control 'Z' is not one of the arms"),
        ([ArmCounts("A", 100, 3)], "A", "at least 2 arms"),
        ([ArmCounts("A", 100, 3), ArmCounts("A", 100, 4)], "A", "more than once"),
    ],
)
def test_bad_counts_are_rejected_with_a_clear_message(arms, control, message):
    with pytest.raises(ValueError, match=message):
        evaluate(arms, control, FAST, ExperimentState(), seed=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("alpha", 0.0), ("alpha", 1.0), ("prob_threshold", 1.2), ("prob_threshold", 0.0), ("max_expected_loss", 0.0),
     ("mixture_tau", 0.0), ("bandit_floor", 1.0), ("draws", 10), ("mode", "multi"), ("min_exposures", -1)],
)
def test_bad_config_is_rejected(field, value):
    config = ExperimentConfig(**{"draws": 2000, field: value})
    with pytest.raises(ValueError, match=field):
        evaluate(two_arms(100, 3, 100, 5), "A", config, ExperimentState(), seed=1)


def test_cumulative_counts_that_go_backwards_are_rejected():
    state = evaluate(two_arms(1000, 30, 1000, 40), "A", FAST, ExperimentState(), seed=1).state
    with pytest.raises(ValueError, match="fell from 1000 to 900"):
        evaluate(two_arms(900, 30, 1000, 40), "A", FAST, state, seed=2)


# --- the sequential test ---------------------------------------------------------------------


def test_msprt_p_value_matches_the_mixture_likelihood_ratio_computed_by_integration():
    control, treatment = ArmCounts("A", 20_000, 800), ArmCounts("B", 20_000, 920)
    pooled = 1720 / 40_000
    variance = pooled * (1 - pooled) * (2 / 20_000)
    diff = 920 / 20_000 - 800 / 20_000
    # Integrate N(diff; d, V) / N(diff; 0, V) against d ~ N(0, tau^2) numerically.
    grid = np.linspace(-0.06, 0.06, 200_001)
    ratio = stats.norm.pdf(diff, grid, math.sqrt(variance)) / stats.norm.pdf(diff, 0, math.sqrt(variance))
    mixed = np.trapz(ratio * stats.norm.pdf(grid, 0, 0.006), grid)
    assert msprt_p_value(control, treatment, 0.006) == pytest.approx(1 / mixed, rel=1e-4)


def test_no_difference_gives_no_evidence():
    assert msprt_p_value(ArmCounts("A", 5000, 200), ArmCounts("B", 5000, 200), 0.006) == 1.0
    assert msprt_p_value(ArmCounts("A", 5000, 0), ArmCounts("B", 5000, 0), 0.006) == 1.0


def test_p_value_is_the_running_minimum_across_peeks():
    config = ExperimentConfig(draws=2000, min_exposures=10**9)  # never decide: watch the p-value only
    strong = evaluate(two_arms(20_000, 800, 20_000, 900), "A", config, ExperimentState(), seed=1)
    p_strong = strong.arms[1].p_value
    # The gap closes at the next peek; the current mSPRT p-value is larger, the carried one is not.
    later = evaluate(two_arms(40_000, 1650, 40_000, 1700), "A", config, strong.state, seed=2)
    assert msprt_p_value(ArmCounts("A", 40_000, 1650), ArmCounts("B", 40_000, 1700), config.mixture_tau) > p_strong
    assert later.arms[1].p_value == p_strong
    assert later.state.min_p_value == {"B": p_strong} and later.state.peeks == 2


def test_always_valid_interval_is_wider_than_the_fixed_horizon_one_and_centred_on_the_estimate():
    control, treatment = ArmCounts("A", 20_000, 800), ArmCounts("B", 20_000, 900)
    low, high = always_valid_difference_ci(control, treatment, 0.006, 0.05)
    diff = 0.045 - 0.04
    fixed_half = 1.96 * math.sqrt(0.04 * 0.96 / 20_000 + 0.045 * 0.955 / 20_000)
    assert (low + high) / 2 == pytest.approx(diff)
    assert (high - low) / 2 > fixed_half


# --- decisions -------------------------------------------------------------------------------


def test_clear_winner_is_declared_with_numbers_and_thresholds_and_takes_all_traffic():
    decision = evaluate(two_arms(30_000, 1200, 30_000, 1500), "A", FAST, ExperimentState(), seed=3)
    assert decision.status == "winner" and decision.winner == "B"
    assert decision.weights == {"A": 0.0, "B": 1.0}
    b = decision.arms[1]
    assert b.prob_beats_control > 0.99 and b.p_value <= 0.05 and b.expected_loss < 1e-4
    assert decision.arms[0].p_value is None and decision.arms[0].prob_beats_control is None
    assert "B beats control A" in decision.reason
    assert ">= 0.95" in decision.reason and "<= 0.05" in decision.reason and "<= 0.001" in decision.reason
    assert f"P={b.prob_beats_control:.3f}" in decision.reason
    assert decision.state.winner == "B" and decision.state.decided_at_peek == 1


def test_decision_is_sticky_across_later_peeks():
    first = evaluate(two_arms(30_000, 1200, 30_000, 1500), "A", FAST, ExperimentState(), seed=3)
    later = evaluate(two_arms(30_000, 1200, 35_000, 1700), "A", FAST, first.state, seed=4)
    assert later.status == "winner" and later.winner == "B" and later.weights["B"] == 1.0
    assert "decided at peek 1" in later.reason


def test_control_wins_when_every_variant_is_clearly_worse():
    decision = evaluate(two_arms(30_000, 1500, 30_000, 1200), "A", FAST, ExperimentState(), seed=3)
    assert decision.status == "winner" and decision.winner == "A"
    assert decision.weights == {"A": 1.0, "B": 0.0}
    assert "control A beats every variant" in decision.reason


def test_nothing_is_decided_before_min_exposures():
    config = ExperimentConfig(draws=2000, min_exposures=50_000)
    decision = evaluate(two_arms(30_000, 1200, 30_000, 1500), "A", config, ExperimentState(), seed=3)
    assert decision.status == "continue" and decision.winner is None
    assert decision.weights == {"A": 0.5, "B": 0.5}
    assert "waiting for 50000 exposures per arm" in decision.reason


def test_bayesian_evidence_alone_does_not_declare_a_winner():
    # z ~ 2.2: P(beat control) ~ 0.99 but the always-valid p-value is far above alpha.
    decision = evaluate(two_arms(20_000, 800, 20_000, 880), "A", FAST, ExperimentState(), seed=5)
    b = decision.arms[1]
    assert b.prob_beats_control >= 0.95 and b.p_value > 0.05
    assert decision.status == "continue" and "no decision yet; leading variant B" in decision.reason


def test_stricter_threshold_blocks_a_decision_the_default_makes():
    arms = two_arms(30_000, 1200, 30_000, 1400)
    assert evaluate(arms, "A", FAST, ExperimentState(), seed=6).status == "winner"
    strict = evaluate(arms, "A", ExperimentConfig(draws=2000, alpha=0.001), ExperimentState(), seed=6)
    assert strict.status == "continue" and "vs 0.001" in strict.reason


def test_alpha_is_split_across_treatments():
    arms = [ArmCounts("A", 30_000, 1200), ArmCounts("B", 30_000, 1500), ArmCounts("C", 30_000, 1210)]
    decision = evaluate(arms, "A", FAST, ExperimentState(), seed=7)
    assert decision.winner == "B" and "<= 0.025" in decision.reason


def test_futility_stops_with_no_difference_when_configured():
    arms = two_arms(2_000_000, 80_000, 2_000_000, 80_100)
    assert evaluate(arms, "A", FAST, ExperimentState(), seed=8).status == "continue"
    config = ExperimentConfig(draws=2000, futility_margin=0.002)
    decision = evaluate(arms, "A", config, ExperimentState(), seed=8)
    assert decision.status == "no_difference" and decision.winner is None
    assert decision.weights == {"A": 1.0, "B": 0.0}
    low, high = decision.arms[1].difference_ci
    assert -0.002 < low < 0 < high < 0.002


def test_evaluation_is_deterministic_given_the_seed_and_state_is_json_safe():
    arms = [ArmCounts("A", 5000, 200), ArmCounts("B", 5000, 230), ArmCounts("C", 5000, 215)]
    config = ExperimentConfig(mode="bandit", draws=5000)
    first = evaluate(arms, "A", config, ExperimentState(), seed=42)
    again = evaluate(arms, "A", config, ExperimentState(), seed=42)
    assert first == again
    restored = ExperimentState.from_dict(json.loads(json.dumps(asdict(first.state))))
    assert restored == first.state
    assert evaluate(arms, "A", config, restored, seed=9) == evaluate(arms, "A", config, first.state, seed=9)


# --- Thompson weights ------------------------------------------------------------------------


def test_thompson_weights_follow_the_posterior_and_respect_the_floor():
    arms = [ArmCounts("A", 4000, 160), ArmCounts("B", 4000, 240), ArmCounts("C", 4000, 100)]
    weights = thompson_weights(arms, draws=20_000, floor=0.05, seed=1)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["B"] > 0.85 and min(weights.values()) >= 0.05
    assert weights == thompson_weights(arms, draws=20_000, floor=0.05, seed=1)


def test_floor_is_capped_so_many_variants_still_follow_the_posterior():
    arms = [ArmCounts(f"v{i}", 4000, 160) for i in range(29)] + [ArmCounts("best", 4000, 320)]
    weights = thompson_weights(arms, draws=5000, floor=0.05, seed=1)
    assert weights["best"] > 0.5 and min(weights.values()) == pytest.approx(0.5 / 30)


def test_equal_arms_get_roughly_equal_weights():
    arms = [ArmCounts(f"v{i}", 4000, 160) for i in range(4)]
    weights = thompson_weights(arms, draws=20_000, floor=0.0, seed=2)
    assert all(abs(w - 0.25) < 0.02 for w in weights.values())


# --- error rates by simulation ----------------------------------------------------------------


def simulate_aa(runs: int, intervals: int = 20, rate: float = 0.04) -> tuple[float, float]:
    """(default rule false winner rate, naive repeated z-test false winner rate) over the same traffic."""
    default_wins = naive_wins = 0
    for run in range(runs):
        rng = np.random.default_rng([11, run])
        exposures, conversions = np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.int64)
        state, naive_fired = ExperimentState(), False
        for interval in range(intervals):
            traffic = rng.integers(500, 2001, size=2)
            exposures += traffic
            conversions += rng.binomial(traffic, rate)
            decision = evaluate(two_arms(*(int(x) for x in (exposures[0], conversions[0], exposures[1], conversions[1]))),
                                "A", FAST, state, seed=run * 100 + interval)
            state = decision.state
            pooled = conversions.sum() / exposures.sum()
            z = (conversions[1] / exposures[1] - conversions[0] / exposures[0]) / math.sqrt(
                pooled * (1 - pooled) * (1 / exposures[0] + 1 / exposures[1]))
            naive_fired |= abs(z) > 1.96
        default_wins += state.status == "winner"
        naive_wins += naive_fired
    return default_wins / runs, naive_wins / runs


def test_aa_false_winner_rate_stays_under_alpha_despite_peeking_every_interval():
    default_rate, naive_rate = simulate_aa(300)
    assert default_rate <= 0.05
    # The same simulated traffic inflates a naively repeated z-test well past alpha.
    assert naive_rate >= 0.12


def bandit_regret(mode: str, runs: int, rates: np.ndarray) -> float:
    config = ExperimentConfig(mode=mode, draws=2000)
    ids = [f"v{i}" for i in range(len(rates))]
    total = 0.0
    for run in range(runs):
        rng = np.random.default_rng([13, run])
        exposures, conversions = np.zeros(len(rates), dtype=np.int64), np.zeros(len(rates), dtype=np.int64)
        weights, state = np.full(len(rates), 1 / len(rates)), ExperimentState()
        for interval in range(20):
            traffic = rng.multinomial(5000, weights)
            exposures += traffic
            conversions += rng.binomial(traffic, rates)
            total += float(traffic @ (rates.max() - rates))
            arms = [ArmCounts(a, int(n), int(c)) for a, n, c in zip(ids, exposures, conversions)]
            decision = evaluate(arms, "v0", config, state, seed=run * 100 + interval)
            state = decision.state
            weights = np.array([decision.weights[a] for a in ids])
            weights /= weights.sum()
    return total / runs


def test_thompson_allocation_has_less_regret_than_uniform():
    rates = np.array([0.040, 0.042, 0.044, 0.046, 0.050])
    thompson, uniform = bandit_regret("bandit", 20, rates), bandit_regret("ab", 20, rates)
    assert thompson < 0.9 * uniform
