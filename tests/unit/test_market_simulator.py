"""Market simulator: determinism, realistic ranges, and the curve equations it shares with the agent."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from agency.mmm.simulator import adstock, hill, random_market, simulate, truth_model


def test_same_seed_same_market_and_data():
    a, b = simulate(random_market(7)), simulate(random_market(7))
    assert a.channels == b.channels
    assert np.array_equal(a.spend, b.spend) and np.array_equal(a.outcome, b.outcome)
    assert not np.array_equal(a.outcome, simulate(random_market(8)).outcome)


@pytest.mark.parametrize("seed", range(10))
def test_random_market_is_in_realistic_ranges(seed):
    spec = random_market(seed)
    assert 3 <= len(spec.channels) <= 6 and spec.weeks == 104
    for ch, mean in zip(spec.channels, spec.mean_spend):
        assert 0.1 <= ch.decay <= 0.7 and 0.8 <= ch.shape <= 2.5
        assert 2_000 <= mean <= 30_000 and 0.5 * mean <= ch.half_saturation <= 2 * mean
    media = sum(ch.beta * float(hill(m, ch.half_saturation, ch.shape)) for ch, m in zip(spec.channels, spec.mean_spend))
    assert 0.3 <= media / (media + spec.baseline) <= 0.6
    assert 0.05 <= spec.noise <= 0.10


def test_data_shapes_and_monday_weeks():
    spec = random_market(2, n_channels=4, weeks=30, channel_names=["a", "b", "c", "d"])
    data = simulate(spec)
    assert data.channels == ["a", "b", "c", "d"]
    assert data.spend.shape == (30, 4) and data.outcome.shape == (30,)
    days = [date.fromisoformat(w) for w in data.week_starts]
    assert all(d.weekday() == 0 for d in days) and all((b - a).days == 7 for a, b in zip(days, days[1:]))
    assert np.all(data.spend > 0)


def test_spend_variation_is_the_coefficient_of_variation():
    for cv in (0.025, 0.4):
        data = simulate(random_market(3, weeks=3000, spend_variation=cv))
        measured = data.spend.std(axis=0) / data.spend.mean(axis=0)
        assert np.allclose(measured, cv, rtol=0.25)


def test_adstock_is_normalized_and_geometric():
    assert np.allclose(adstock(np.full(20, 500.0), 0.6), 500.0)
    pulse = adstock(np.array([0.0, 100.0, 0.0, 0.0]), 0.5)
    assert np.allclose(pulse, [0.0, 50.0, 25.0, 12.5])


def test_hill_half_saturation_and_shape():
    assert float(hill(3_000.0, 3_000.0, 2.2)) == pytest.approx(0.5)
    assert float(hill(6_000.0, 3_000.0, 2.0)) == pytest.approx(0.8)
    assert float(hill(0.0, 3_000.0, 1.0)) == 0.0


def test_noise_level_matches_spec():
    spec = dataclasses.replace(random_market(4, weeks=2000), trend=0.0)
    noisy = simulate(spec)
    clean = simulate(dataclasses.replace(spec, noise=0.0))
    measured = np.std(noisy.outcome - clean.outcome)
    assert measured == pytest.approx(spec.noise * clean.outcome.mean(), rel=0.1)


def test_truth_model_horizon_matches_continued_simulation():
    """The agent's carry-over arithmetic equals running the simulator on with constant spend."""
    spec = dataclasses.replace(random_market(5), noise=0.0)
    data = simulate(spec)
    model = truth_model(spec, data)
    plan = np.array(spec.mean_spend) * np.linspace(0.5, 1.5, len(spec.channels))
    horizon = 8
    extended = np.vstack([data.spend, np.tile(plan, (horizon, 1))])
    for c, ch in enumerate(spec.channels):
        a = adstock(extended[:, c], ch.decay)[-horizon:]
        expected = ch.beta * hill(a, ch.half_saturation, ch.shape).sum()
        assert float(model.horizon_outcome(c, plan[c], horizon)) == pytest.approx(expected, rel=1e-9)
        step = plan[c] * 1e-4
        numeric = (model.horizon_outcome(c, plan[c] + step, horizon) - model.horizon_outcome(c, plan[c] - step, horizon)) / (2 * step)
        assert float(model.horizon_marginal(c, plan[c], horizon)) == pytest.approx(float(numeric), rel=1e-4)


def test_invalid_market_arguments():
    with pytest.raises(ValueError):
        random_market(0, n_channels=0)
    with pytest.raises(ValueError):
        random_market(0, spend_variation=-0.1)
