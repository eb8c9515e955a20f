"""Dynamic reallocation inside a running campaign: recalibrate each channel's response to what
the campaign has measured so far, then re-split the budget that is left.

Recalibration is a Gamma-Poisson update of each channel's level: with E conversions expected
under the current response curve for what the channel spent so far and O observed,
the multiplier is (O + a) / (E + a); ``a`` (pseudo-conversions) keeps a handful of early
conversions from swinging the split. The remaining budget is then split by greedy marginal
allocation in small steps within ramp bounds around the current split, which is optimal for
concave curves and close for mildly S-shaped ones at this step size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Pseudo-conversions of prior weight behind the fitted level of each channel.
PRIOR_CONVERSIONS = 10.0
STEPS = 400

# (channel, spend in cents over the remaining period) -> expected conversions in that period
ResponseFn = Callable[[str, float], float]


@dataclass
class ChannelProgress:
    channel: str
    budget_cents: int  # current campaign-total budget of the channel
    spent_cents: int
    conversions: int
    expected_conversions: float  # what the response curve predicted for spent_cents so far


@dataclass
class Proposal:
    before_cents: dict[str, int]
    after_cents: dict[str, int]
    change: float  # largest absolute share change of the campaign total
    multipliers: dict[str, float]
    reasons: list[str]


def recalibration(progress: ChannelProgress, prior: float = PRIOR_CONVERSIONS) -> float:
    return (progress.conversions + prior) / (max(progress.expected_conversions, 0.0) + prior)


def propose(progress: list[ChannelProgress], remaining_response: ResponseFn, *, ramp_limit: float) -> Proposal:
    """Re-split what is left of the budget; spent money stays where it was spent."""
    if not progress:
        raise ValueError("no channels to reallocate")
    if ramp_limit < 0:
        raise ValueError("ramp_limit must be >= 0")
    before = {p.channel: p.budget_cents for p in progress}
    left = {p.channel: max(0, p.budget_cents - p.spent_cents) for p in progress}
    total_left = sum(left.values())
    multipliers = {p.channel: recalibration(p) for p in progress}
    if total_left <= 0:
        return Proposal(before, dict(before), 0.0, multipliers, ["Nothing left to reallocate: the budget is spent."])

    low = {c: left[c] * (1 - ramp_limit) for c in left}
    high = {c: left[c] * (1 + ramp_limit) for c in left}
    step = total_left / STEPS
    split = dict(low)
    budget = total_left - sum(low.values())

    def gain(channel: str) -> float:
        now = split[channel]
        return multipliers[channel] * (
            remaining_response(channel, now + step) - remaining_response(channel, now)
        )

    while budget > 1e-9:
        amount = min(step, budget)
        open_channels = [c for c in split if split[c] + amount <= high[c] + 1e-6]
        if not open_channels:  # every channel at its ramp ceiling: keep the rest where it was
            for c in split:
                split[c] += budget * left[c] / total_left
            break
        best = max(open_channels, key=gain)
        split[best] += amount
        budget -= amount

    after = _cents(before, left, split, total_left)
    total = sum(before.values()) or 1
    change = max(abs(after[c] - before[c]) / total for c in before)
    reasons = []
    for p in progress:
        reasons.append(
            f"{p.channel}: {p.conversions} conversions on ${p.spent_cents / 100:,.2f} vs {p.expected_conversions:.1f} "
            f"expected (level x{multipliers[p.channel]:.2f}); ${before[p.channel] / 100:,.2f} -> "
            f"${after[p.channel] / 100:,.2f}"
        )
    return Proposal(before, after, change, multipliers, reasons)


def _cents(before: dict[str, int], left: dict[str, int], split: dict[str, float], total_left: int) -> dict[str, int]:
    spent = {c: before[c] - left[c] for c in before}
    whole = {c: int(split[c]) for c in split}
    # Hand the rounding remainder to the largest fractions so the total is unchanged.
    short = total_left - sum(whole.values())
    for c in sorted(split, key=lambda c: split[c] - whole[c], reverse=True)[: max(short, 0)]:
        whole[c] += 1
    return {c: spent[c] + whole[c] for c in before}
