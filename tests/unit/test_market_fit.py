"""Response-curve fitting: recovery on clean data, intervals, goodness of fit, JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from agency.mmm.fit import MarketFit, fit_market
from agency.mmm.simulator import MarketData, hill, random_market, simulate


@pytest.fixture(scope="module")
def clean():
    spec = dataclasses.replace(random_market(2, n_channels=3), noise=0.0)
    return spec, simulate(spec)


@pytest.fixture(scope="module")
def noisy_fit():
    data = simulate(random_market(6))
    return data, fit_market(data, bootstrap=6, seed=1)


def test_noise_free_history_is_recovered(clean):
    spec, data = clean
    fit = fit_market(data, bootstrap=0, starts=3)
    assert fit.goodness["r2"] > 0.99
    for ch, mean in zip(spec.channels, spec.mean_spend):
        for x in (0.7 * mean, mean, 1.3 * mean):
            truth = ch.beta * float(hill(x, ch.half_saturation, ch.shape))
            assert fit.response(ch.name, x) == pytest.approx(truth, rel=0.1)
        assert abs(next(c for c in fit.channels if c.name == ch.name).decay - ch.decay) < 0.1


def test_goodness_report_and_intervals(noisy_fit):
    data, fit = noisy_fit
    g = fit.goodness
    assert 0.0 < g["r2"] <= 1.0 and 0.0 < g["mape"] < 0.2 and 0.0 < g["nrmse"] < 1.0
    assert 0.0 < g["durbin_watson"] < 4.0
    assert fit.noise_sd == pytest.approx(np.std(data.outcome - fit.predict(data.spend)), rel=0.3)
    assert len(fit.bootstrap) == 6
    for ch in fit.channels:
        for key in ("decay", "half_saturation", "shape", "beta", "response_at_mean_spend"):
            lo, hi = ch.intervals[key]
            assert lo <= hi
        lo, hi = ch.intervals["decay"]
        assert 0.0 <= lo and hi <= 0.9


def test_fit_explains_more_than_the_baseline_alone(noisy_fit):
    data, fit = noisy_fit
    weeks = np.arange(len(data.outcome))
    base_only = data.outcome - fit.base_outcome(weeks)
    with_media = data.outcome - fit.predict(data.spend)
    assert np.mean(with_media**2) < np.mean(base_only**2)


def test_json_round_trip(noisy_fit):
    data, fit = noisy_fit
    restored = MarketFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert restored.names == fit.names
    assert np.allclose(restored.predict(data.spend), fit.predict(data.spend))
    assert restored.response(fit.names[0], 5_000.0) == fit.response(fit.names[0], 5_000.0)
    assert restored.channels[0].intervals == fit.channels[0].intervals
    assert np.allclose(restored.media_model(2).beta, fit.media_model(2).beta)


def test_fit_is_deterministic_in_seed():
    data = simulate(random_market(9, n_channels=3))
    a, b = fit_market(data, bootstrap=2, seed=4), fit_market(data, bootstrap=2, seed=4)
    assert a.to_dict() == b.to_dict()


def test_rejects_bad_history():
    data = simulate(random_market(1, n_channels=3))
    with pytest.raises(ValueError, match="negative"):
        fit_market(MarketData(data.channels, data.week_starts, -data.spend, data.outcome))
    with pytest.raises(ValueError, match="too few"):
        fit_market(MarketData(data.channels, data.week_starts[:10], data.spend[:10], data.outcome[:10]))
    with pytest.raises(ValueError, match="match"):
        fit_market(MarketData(data.channels[:2], data.week_starts, data.spend, data.outcome))
    spend = data.spend.copy()
    spend[:, 1] = 0.0
    with pytest.raises(ValueError, match="without any spend"):
        fit_market(MarketData(data.channels, data.week_starts, spend, data.outcome))
