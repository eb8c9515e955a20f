"""Budget allocation across channels under diminishing returns.

Each channel's response is concave: value_c(s) = v_c · S · (s / S)^β, where v_c is what a
dollar buys on that channel for the plan's objective (conversions for a conversion campaign:
impressions per dollar from CPM × CTR × CVR) and S a reference spend at which that linear
rate holds. The plan's weights are exactly v_c normalized, so the allocation maximizes
Σ w_c · s_c^β subject to Σ s_c = total and s_c ≥ min_share · total. For a power response
the optimum is closed form, s_c ∝ w_c^(1/(1-β)); floors are enforced by water-filling.
Expected conversions per channel (v_c for conversions) are reported in the notes.
"""

from __future__ import annotations

import math

from agency.agents.planning import CHANNEL_PRIORS, CONVERSION, objective_value_per_dollar
from agency.contracts import BudgetAllocation, BudgetRequest, ChannelBudget, ChannelPlan, MarketAssessment

# Square-root response, a common media-mix assumption: doubling spend yields ~1.41× results.
# Higher exponents concentrate budgets sharply on the best-looking channel.
RESPONSE_EXPONENT = 0.5
# Spend (cents) at which a channel converts at its linear, per-dollar rate.
REFERENCE_SPEND_CENTS = 100_000


def allocate_budget(req: BudgetRequest, *, min_share: float = 0.1) -> BudgetAllocation:
    """Split the total into integer cents per channel, maximizing expected conversions."""
    total = req.total_budget_cents
    if total < 0:
        raise ValueError("total_budget_cents must not be negative")
    if not 0 <= min_share <= 1:
        raise ValueError("min_share must be between 0 and 1")
    plans = req.plan.channels
    if not plans:
        raise ValueError("the plan has no channels to fund")
    method = (
        f"concave response value=w·S·(s/S)^{RESPONSE_EXPONENT} maximized in closed form "
        f"(s ∝ w^{1 / (1 - RESPONSE_EXPONENT):g}), floor {min_share:.0%} per channel, "
        f"largest-remainder rounding to cents"
    )
    if total == 0:
        zeros = [ChannelBudget(channel=p.channel, amount_cents=0, share=0.0) for p in plans]
        return BudgetAllocation(req.campaign_id, 0, zeros, method, ["Budget is zero: nothing to allocate."])

    efficiency = {p.channel: conversions_per_dollar(p) for p in plans}
    scores = {p.channel: max(p.weight, 0.0) for p in plans}
    floor_share = min(min_share, 1 / len(plans))
    shares = optimal_shares(scores, floor_share)
    amounts = largest_remainder_cents({c: s * total for c, s in shares.items()}, total)

    channels = [
        ChannelBudget(channel=p.channel, amount_cents=amounts[p.channel], share=amounts[p.channel] / total)
        for p in plans
    ]
    notes = _explain(plans, efficiency, shares, amounts, floor_share, min_share, total)
    return BudgetAllocation(req.campaign_id, total, channels, method, notes)


def conversions_per_dollar(plan: ChannelPlan) -> float:
    """Expected conversions per dollar from the plan's rates and the channel's CPM."""
    if plan.channel not in CHANNEL_PRIORS:
        raise ValueError(f"no cost model for channel {plan.channel!r}")
    cpm = CHANNEL_PRIORS[plan.channel].cpm_cents
    return objective_value_per_dollar(CONVERSION, cpm, plan.expected_ctr, plan.expected_cvr)


def expected_conversions(efficiency_per_dollar: float, spend_cents: float) -> float:
    """Concave response: linear rate at the reference spend, diminishing beyond it."""
    if spend_cents <= 0:
        return 0.0
    reference_conversions = efficiency_per_dollar * REFERENCE_SPEND_CENTS / 100
    return reference_conversions * (spend_cents / REFERENCE_SPEND_CENTS) ** RESPONSE_EXPONENT


def optimal_shares(scores: dict[str, float], floor_share: float) -> dict[str, float]:
    """Budget shares maximizing Σ a_c·s_c^β with every share ≥ floor_share (water-filling).

    Channels whose unconstrained share falls below the floor are pinned to it and the rest
    is re-split among the others; repeating until none falls below is optimal because the
    objective is separable and concave.
    """
    power = 1 / (1 - RESPONSE_EXPONENT)
    pull = {c: a**power for c, a in scores.items()}
    if sum(pull.values()) <= 0:
        return {c: 1 / len(scores) for c in scores}
    pinned: set[str] = set()
    while True:
        free = [c for c in scores if c not in pinned]
        remaining = 1 - floor_share * len(pinned)
        free_pull = sum(pull[c] for c in free)
        shares = {c: floor_share for c in pinned}
        if free_pull <= 0:  # every free channel is worthless: share what is left equally
            shares.update({c: remaining / len(free) for c in free})
            return shares
        shares.update({c: remaining * pull[c] / free_pull for c in free})
        below = {c for c in free if shares[c] < floor_share}
        if not below:
            return shares
        pinned |= below


def largest_remainder_cents(raw: dict[str, float], total: int) -> dict[str, int]:
    """Round to integer cents summing exactly to total; leftover cents go to the largest fractions."""
    amounts = {c: math.floor(v) for c, v in raw.items()}
    leftover = total - sum(amounts.values())
    position = {c: i for i, c in enumerate(raw)}
    order = sorted(raw, key=lambda c: (-(raw[c] - amounts[c]), position[c]))
    for channel in order[: max(leftover, 0)]:
        amounts[channel] += 1
    # Float noise can overshoot by a cent; take it back from the smallest fractions.
    for channel in order[::-1][: max(-leftover, 0)]:
        amounts[channel] -= 1
    return amounts


def _explain(
    plans: list[ChannelPlan],
    efficiency: dict[str, float],
    shares: dict[str, float],
    amounts: dict[str, int],
    floor_share: float,
    min_share: float,
    total: int,
) -> list[str]:
    notes: list[str] = []
    if len(plans) == 1:
        notes.append(f"Single channel {plans[0].channel} receives the whole budget.")
    if floor_share < min_share:
        notes.append(f"Floor {min_share:.0%} × {len(plans)} channels exceeds 100%; using {floor_share:.1%} each.")
    for p in plans:
        at_floor = len(plans) > 1 and math.isclose(shares[p.channel], floor_share)
        notes.append(
            f"{p.channel}: weight {p.weight:.2f} ({efficiency[p.channel]:.4f} conversions/$) "
            f"→ ${amounts[p.channel] / 100:,.2f} ({amounts[p.channel] / total:.1%})"
            + (", held at the floor" if at_floor else "")
            + f"; expected {expected_conversions(efficiency[p.channel], amounts[p.channel]):.1f} conversions."
        )
    optimal = sum(expected_conversions(efficiency[c], amounts[c]) for c in amounts)
    even = sum(expected_conversions(efficiency[c], total / len(plans)) for c in amounts)
    if len(plans) > 1 and even > 0:
        notes.append(
            f"Expected {optimal:.1f} conversions in total vs {even:.1f} with an even split "
            f"({(optimal - even) / even:+.1%})."
        )
    return notes


def allocate_from_market(req: BudgetRequest, market: MarketAssessment, recommended: list[dict]) -> BudgetAllocation:
    """Integer cents from the market model's recommended spend per channel (recovery-gated).

    ``recommended`` rows: channel, total_spend (dollars over the horizon), expected_outcome,
    marginal_roi (conversions per extra dollar).
    """
    total = req.total_budget_cents
    rows = {r["channel"]: r for r in recommended}
    channels = [p.channel for p in req.plan.channels]
    missing = [c for c in channels if c not in rows]
    if missing:
        raise ValueError(f"the market recommendation has no spend for {missing}")
    spend = {c: max(float(rows[c]["total_spend"]), 0.0) for c in channels}
    whole = sum(spend.values())
    raw = {c: (spend[c] / whole if whole > 0 else 1 / len(channels)) * total for c in channels}
    amounts = largest_remainder_cents(raw, total)
    budgets = [
        ChannelBudget(
            channel=c,
            amount_cents=amounts[c],
            share=amounts[c] / total if total else 0.0,
            expected_conversions=float(rows[c]["expected_outcome"]),
            marginal_conversions_per_dollar=float(rows[c]["marginal_roi"]),
        )
        for c in channels
    ]
    notes = [
        f"{b.channel}: ${b.amount_cents / 100:,.2f} ({b.share:.1%}); expected {b.expected_conversions:,.1f} "
        f"conversions; next dollar buys {b.marginal_conversions_per_dollar * 100:.2f} conversions per $100."
        for b in budgets
    ]
    if market.expected_conversions is not None and len(market.interval) == 2:
        notes.append(
            f"Expected {market.expected_conversions:,.1f} conversions in total "
            f"(90% interval {market.interval[0]:,.1f}–{market.interval[1]:,.1f})."
        )
    return BudgetAllocation(
        campaign_id=req.campaign_id,
        total_budget_cents=total,
        channels=budgets,
        method=(
            f"market model (geometric adstock + Hill saturation) fitted on {market.weeks} weeks, "
            "recovery-gated, expected conversions maximized over the campaign weeks"
        ),
        notes=notes,
        evidence="fitted",
        expected_conversions=market.expected_conversions,
        interval=list(market.interval),
        fit_id=market.fit_id,
    )
