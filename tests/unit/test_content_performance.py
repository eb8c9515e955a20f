"""Content Performance Analyzer on simulated data: planted effects are found and sized, noise is not.

The simulator gives every item its own true rate (lognormal around the channel baseline), the
overdispersion real content shows; the analyzer must neither miss a planted +30% nor turn that
item-to-item spread into confident recommendations when nothing was planted.
"""

from __future__ import annotations

import numpy as np
import pytest

from agency.agents.performance import (
    FORMAT_WEEKDAY,
    SIMULATED_FORMATS,
    AnalysisSettings,
    PlantedEffect,
    _Columns,
    _comparisons,
    analyze_performance,
    compare,
    holm,
    hour_bucket,
    length_bucket,
    own_topic_trends,
    simulate_performance,
)
from agency.contracts import SOCIAL_NETWORK_FORMATS

LINKEDIN_TUESDAY = PlantedEffect(FORMAT_WEEKDAY, "linkedin_post@Tuesday", 0.30)


def test_a_planted_format_weekday_lift_is_the_top_recommendation_and_sized() -> None:
    rows = simulate_performance(2000, seed=7, effects=[LINKEDIN_TUESDAY], formats=SOCIAL_NETWORK_FORMATS)
    analysis = analyze_performance(rows)
    top = analysis.recommendations[0]
    assert (top.number, top.factor, top.level, top.metric) == (1, "format_weekday", "linkedin_post@Tuesday", "ctr")
    assert top.confident
    assert top.interval[0] <= 0.30 <= top.interval[1]
    assert top.interval[0] > 0
    assert top.text.startswith("1. Publish linkedin_post items on Tuesday: CTR +")
    assert "90% CI" in top.text and "items" in top.text
    # Numbered in order, confident ones first.
    assert [r.number for r in analysis.recommendations] == list(range(1, len(analysis.recommendations) + 1))
    flags = [r.confident for r in analysis.recommendations]
    assert flags == sorted(flags, reverse=True)


def test_a_planted_cvr_lift_on_a_topic_is_found_among_all_formats() -> None:
    rows = simulate_performance(3000, seed=3, effects=[PlantedEffect("topic", "gear care", 0.35, metric="cvr")])
    confident = [r for r in analyze_performance(rows).recommendations if r.confident]
    assert confident, "a +35% CVR lift on 3000 items must be found"
    assert (confident[0].factor, confident[0].level, confident[0].metric) == ("topic", "gear care", "cvr")
    assert confident[0].interval[0] <= 0.35 <= confident[0].interval[1]
    assert "Cover the topic 'gear care'" in confident[0].text


def test_no_planted_effect_gives_no_confident_recommendation() -> None:
    analysis = analyze_performance(simulate_performance(1500, seed=11))
    assert analysis.tests > 50  # many levels were tested...
    assert not [r.text for r in analysis.recommendations if r.confident]  # ...none passed
    assert all(not r.text.split(". ", 1)[1].startswith(("Publish", "Avoid")) for r in analysis.recommendations)


def test_false_positive_rate_over_null_datasets_is_controlled() -> None:
    """Holm over every level and metric: the chance of any confident finding stays near alpha."""
    runs = 200
    with_confident = sum(
        any(r.confident for r in analyze_performance(simulate_performance(400, seed=10_000 + s)).recommendations)
        for s in range(runs)
    )
    assert with_confident / runs <= 0.10, f"{with_confident} of {runs} null datasets gave a confident recommendation"


def test_binomial_variance_alone_would_call_noise_significant() -> None:
    """Why the overdispersion term matters: on null data, plain binomial noise (κ = 0) rejects far
    more often than the nominal rate; the analyzer's variance does not."""
    rows = simulate_performance(1500, seed=5)
    cols = _Columns(sorted(rows, key=lambda r: r.item_id))
    naive = fitted = tested = 0
    for _, level, rest, metrics, _ in _comparisons(cols, FORMAT_WEEKDAY):
        y, x = metrics["ctr"]
        kappa = cols.kappa["ctr"]
        zero = np.zeros_like(kappa)
        p_naive = compare((y[level], x[level], zero[level]), (y[rest], x[rest], zero[rest]), 0.9)[2]
        p_fitted = compare((y[level], x[level], kappa[level]), (y[rest], x[rest], kappa[rest]), 0.9)[2]
        tested += 1
        naive += p_naive < 0.05
        fitted += p_fitted < 0.05
    assert tested == len(SIMULATED_FORMATS) * 7
    assert naive / tested > 0.4
    assert fitted / tested < 0.15


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []


def test_small_levels_are_not_tested_and_cvr_needs_clicks() -> None:
    rows = simulate_performance(120, seed=2)
    analysis = analyze_performance(rows, AnalysisSettings(min_items=15, min_clicks_for_cvr=10**9))
    assert all(e.items >= 15 and e.baseline_items >= 15 for e in analysis.effects)
    assert {e.metric for e in analysis.effects} == {"ctr"}
    assert analyze_performance([]).recommendations == []


def test_buckets() -> None:
    assert [hour_bucket(h) for h in (None, 23, 3, 7, 12, 15, 19)] == [
        None, "night", "night", "morning", "midday", "afternoon", "evening",
    ]
    assert [length_bucket(c) for c in (0, 299, 300, 1199, 1200)] == ["short", "short", "medium", "medium", "long"]


def test_same_input_same_answer_whatever_the_row_order() -> None:
    rows = simulate_performance(600, seed=4, effects=[LINKEDIN_TUESDAY])
    assert analyze_performance(rows).recommendations == analyze_performance(list(reversed(rows))).recommendations


def test_a_topic_rising_in_the_last_window_is_an_own_trend() -> None:
    # 8 weeks from 2026-01-05; the last 28 days run 2026-02-02..03-01 (the last day published).
    rising = PlantedEffect("topic", "waterproofing", 0.5, since="2026-02-02")
    rows = simulate_performance(1500, seed=3, weeks=8, effects=[rising])
    trends = own_topic_trends(rows)
    assert [(t.topic, t.source) for t in trends] == [("waterproofing", "own")]
    assert 0.3 < trends[0].momentum < 0.7
    assert "last 28 days" in trends[0].evidence and "CI" in trends[0].evidence
    # A lift that was always there is not a trend, and neither is noise.
    always = PlantedEffect("topic", "waterproofing", 0.5)
    assert own_topic_trends(simulate_performance(1500, seed=3, weeks=8, effects=[always])) == []
    assert own_topic_trends(simulate_performance(1500, seed=4, weeks=8)) == []
