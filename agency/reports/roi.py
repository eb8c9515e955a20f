"""ROI-analysis report: the data model, the numbers derived from it, and number formatting.

Money is integer cents, rates are floats and ``None`` means "not available" (no spend, no
conversions, no fitted curve). Every figure the renderers print goes through the formatting
helpers here (``money``, ``ratio``, ``pct``, ``count``, ``p_value``) so that a test holding
database values can format them the same way and find them in the HTML or PDF text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

ALLOCATION_STATUSES = ("applied", "approved", "rejected", "expired", "pending")
SCOPES = ("campaign", "tenant")
NOT_AVAILABLE = "n/a"


# ---- data model -----------------------------------------------------------------------
@dataclass
class ChannelRoi:
    channel: str
    spend_cents: int
    budget_cents: int
    impressions: int
    clicks: int
    conversions: int
    revenue_cents: int  # conversions x value per conversion
    roi: float | None  # revenue / spend
    mroi: float | None  # revenue per extra dollar at the current spend, from the response curve
    cac_cents: float | None  # spend / conversions


@dataclass
class RoundPoint:
    round: int
    spend_cents: int  # cumulative up to and including this metrics round
    conversions: int  # cumulative


@dataclass
class CurvePoint:
    weekly_spend_cents: int
    weekly_outcome: float  # conversions per week expected at this weekly spend


@dataclass
class ResponseCurve:
    channel: str
    points: list[CurvePoint]
    current_weekly_spend_cents: int | None


@dataclass
class ArmLine:
    arm_id: str
    exposures: int
    conversions: int
    rate: float
    prob_beats_control: float | None  # None for the control arm itself
    p_value: float | None


@dataclass
class ExperimentLine:
    experiment_id: str
    channel: str
    mode: str
    status: str
    winner: str | None
    threshold: str  # the decision rule in words, e.g. "p <= 0.05 and P(beat) >= 95%"
    reason: str
    arms: list[ArmLine]
    # What an arm's exposures and conversions count, e.g. ("Impressions", "Clicks") for a CTR test.
    counts: tuple[str, str] = ("Exposures", "Conversions")


@dataclass
class AllocationChangeLine:
    round: int
    status: str  # one of ALLOCATION_STATUSES
    change: float  # largest absolute share change across channels, 0..1
    before: dict[str, int]  # cents per channel
    after: dict[str, int]
    reason: str
    decided_by: str


@dataclass
class RoiReport:
    scope: str  # "campaign" | "tenant"
    subject_id: str  # campaign id or tenant id
    title: str
    tenant: str
    period_start: str
    period_end: str
    generated_at: str  # ISO timestamp supplied by the caller: rendering never reads a clock
    value_per_conversion_cents: int
    channels: list[ChannelRoi]
    rounds: list[RoundPoint] = field(default_factory=list)
    curves: list[ResponseCurve] = field(default_factory=list)
    experiments: list[ExperimentLine] = field(default_factory=list)
    allocation_changes: list[AllocationChangeLine] = field(default_factory=list)
    allocation_method: str = ""
    expected_outcome: float | None = None  # conversions the current allocation is expected to bring
    expected_interval: tuple[float, float] | None = None
    campaigns: list[dict] = field(default_factory=list)  # tenant scope: {campaign_id, name, status, spend_cents, conversions, roi}
    findings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")


# ---- numbers --------------------------------------------------------------------------
def roi_of(revenue_cents: int, spend_cents: int) -> float | None:
    """Revenue per unit of spend; undefined without spend."""
    return revenue_cents / spend_cents if spend_cents else None


def cac_of(spend_cents: int, conversions: int) -> float | None:
    """Customer acquisition cost in cents; undefined without conversions."""
    return spend_cents / conversions if conversions else None


def channel_roi(
    channel: str,
    *,
    spend_cents: int,
    budget_cents: int,
    impressions: int,
    clicks: int,
    conversions: int,
    value_per_conversion_cents: int,
    curve: ResponseCurve | None = None,
) -> ChannelRoi:
    """One channel's line, with revenue, ROI and CAC derived the same way ``totals`` does."""
    revenue = conversions * value_per_conversion_cents
    return ChannelRoi(
        channel=channel,
        spend_cents=spend_cents,
        budget_cents=budget_cents,
        impressions=impressions,
        clicks=clicks,
        conversions=conversions,
        revenue_cents=revenue,
        roi=roi_of(revenue, spend_cents),
        mroi=marginal_roi(curve, value_per_conversion_cents) if curve is not None else None,
        cac_cents=cac_of(spend_cents, conversions),
    )


def marginal_roi(curve: ResponseCurve, value_per_conversion_cents: int) -> float | None:
    """Revenue per extra dollar at the curve's current weekly spend.

    The curve is taken as piecewise linear between its points (sorted by spend); the slope
    at the current spend is the gradient there (one-sided at the ends, a central difference
    at an interior point). Outside the sampled range the end slope applies, since the curve
    says nothing better. Needs two distinct spends and a known current spend.
    """
    if curve.current_weekly_spend_cents is None:
        return None
    spends = np.array([p.weekly_spend_cents for p in curve.points], dtype=float)
    outcomes = np.array([p.weekly_outcome for p in curve.points], dtype=float)
    order = np.argsort(spends, kind="stable")
    spends, outcomes = spends[order], outcomes[order]
    spends, first = np.unique(spends, return_index=True)
    outcomes = outcomes[first]
    if spends.size < 2:
        return None
    slope = np.interp(float(curve.current_weekly_spend_cents), spends, np.gradient(outcomes, spends))
    # slope is outcome per cent; outcome x value (cents) per cent spent is a pure ratio.
    return float(slope * value_per_conversion_cents)


def merge_channels(groups: list[list[ChannelRoi]], value_per_conversion_cents: int) -> list[ChannelRoi]:
    """Tenant scope: sum each channel's counters over campaigns, first-seen channel order.

    Revenue is summed as each campaign valued its conversions (campaigns may differ), and ROI
    follows from that sum; ``value_per_conversion_cents`` only prices lines without revenue.
    Marginal ROI does not add across campaigns (each has its own curve), so it is left None.
    """
    merged: dict[str, dict[str, int]] = {}
    for group in groups:
        for c in group:
            acc = merged.setdefault(
                c.channel,
                dict.fromkeys(("spend_cents", "budget_cents", "impressions", "clicks", "conversions", "revenue_cents"), 0),
            )
            for name in acc:
                acc[name] += getattr(c, name)
    out = []
    for name, counters in merged.items():
        revenue = counters.pop("revenue_cents")
        line = channel_roi(name, value_per_conversion_cents=value_per_conversion_cents, **counters)
        line.revenue_cents = revenue
        line.roi = roi_of(revenue, line.spend_cents)
        out.append(line)
    return out


def totals(report: RoiReport) -> dict:
    """Report-wide spend, budget, counters, revenue, ROI and CAC (same formulas as per channel)."""
    t: dict = {
        name: sum(getattr(c, name) for c in report.channels)
        for name in ("spend_cents", "budget_cents", "impressions", "clicks", "conversions", "revenue_cents")
    }
    t["roi"] = roi_of(t["revenue_cents"], t["spend_cents"])
    t["cac_cents"] = cac_of(t["spend_cents"], t["conversions"])
    return t


# ---- formatting -----------------------------------------------------------------------
def money(cents: int | float | None) -> str:
    """Cents as dollars: 123456 -> "$1,234.56", -5 -> "-$0.05"; half a cent rounds away from zero."""
    if cents is None:
        return NOT_AVAILABLE
    # Decimal from str() so a float CAC such as 1234.5 rounds the way a person expects.
    dollars = (Decimal(str(cents)) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if dollars < 0 else ""
    return f"{sign}${abs(dollars):,.2f}"


def ratio(x: float | None) -> str:
    """A multiple such as ROI: 2.3456 -> "2.35x"."""
    return NOT_AVAILABLE if x is None else f"{x:.2f}x"


def pct(x: float | None, places: int = 2) -> str:
    """A fraction as a percentage: 0.1234 -> "12.34%"."""
    return NOT_AVAILABLE if x is None else f"{x * 100:.{places}f}%"


def count(n: int | None) -> str:
    """An integer with thousands separators: 12345 -> "12,345"."""
    return NOT_AVAILABLE if n is None else f"{n:,}"


def p_value(p: float | None) -> str:
    """A p-value with four decimals; anything smaller prints as "<0.0001"."""
    if p is None:
        return NOT_AVAILABLE
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def number(x: float | None, places: int = 1) -> str:
    """A plain float such as an expected outcome: 1234.56 -> "1,234.6"."""
    return NOT_AVAILABLE if x is None else f"{x:,.{places}f}"
