"""Simulated tenant history in the shapes the product stores and the API accepts.

Used by the demo (a tenant with three years of weekly history), the CLI and tests.
"""

from __future__ import annotations

import csv
import io

import numpy as np
from dataclasses import replace

from agency.mmm.simulator import MarketData, MarketSpec, random_market


def scaled_market(spec: MarketSpec, weekly_spend_total: float) -> MarketSpec:
    """The same market at another spend scale: spends, half-saturation points and outcomes
    scale together, so conversions per dollar and the optimal shares are unchanged."""
    factor = weekly_spend_total / sum(spec.mean_spend)
    return replace(
        spec,
        mean_spend=tuple(m * factor for m in spec.mean_spend),
        channels=tuple(
            replace(c, half_saturation=c.half_saturation * factor, beta=c.beta * factor) for c in spec.channels
        ),
        baseline=spec.baseline * factor,
        trend=spec.trend * factor,
    )


def tenant_market(
    channels: list[str], *, weekly_spend_total: float, seed: int = 7, weeks: int = 156, spend_variation: float = 0.4
) -> MarketSpec:
    return scaled_market(
        random_market(seed, weeks=weeks, spend_variation=spend_variation, channel_names=channels), weekly_spend_total
    )


def api_rows(data: MarketData) -> list[dict]:
    """Body rows of PUT /v1/market/weeks."""
    return [
        {
            "week_start": week,
            "spend_cents": {c: int(round(float(data.spend[t, i]) * 100)) for i, c in enumerate(data.channels)},
            "conversions": round(float(data.outcome[t]), 3),
        }
        for t, week in enumerate(data.week_starts)
    ]


def to_csv(data: MarketData) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["week_start", *[f"{c}_spend" for c in data.channels], "outcome"])
    for t, week in enumerate(data.week_starts):
        writer.writerow([week, *[f"{float(v):.2f}" for v in data.spend[t]], f"{float(data.outcome[t]):.3f}"])
    return out.getvalue()


def from_csv(text: str) -> MarketData:
    """The inverse of ``to_csv``: week_start, one ``<channel>_spend`` column per channel, outcome."""
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    spend_cols = [i for i, h in enumerate(header) if h.endswith("_spend")]
    return MarketData(
        channels=[header[i].removesuffix("_spend") for i in spend_cols],
        week_starts=[r[0] for r in body],
        spend=np.array([[float(r[i]) for i in spend_cols] for r in body]),
        outcome=np.array([float(r[-1]) for r in body]),
    )
