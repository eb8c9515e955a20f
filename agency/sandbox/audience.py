"""Deterministic simulated audience for sandbox posts.

Metrics are a pure function of the post (id, channel, copy, budget) and the simulated time
elapsed since it was published, so two reads at the same moment always agree and every
counter is non-decreasing in time. Invariants: ``spend_cents <= budget_cents``,
``clicks <= impressions`` and ``conversions <= clicks``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelProfile:
    """Baseline behaviour of one channel's audience."""

    organic_reach: int  # impressions an unpaid post eventually reaches
    organic_half_life_s: float  # simulated seconds to reach half of that
    cpm_cents: int  # cost of 1,000 paid impressions
    ctr: float  # clicks per impression
    cvr: float  # conversions per click
    flight_s: float  # simulated seconds over which the paid budget is paced evenly


# Rough industry shapes: social reaches most people fast but converts worst; email reaches a
# list within hours and has the best click-through; blog traffic builds slowly but converts.
CHANNEL_PROFILES: dict[str, ChannelProfile] = {
    "blog": ChannelProfile(1_500, 2 * 86_400.0, 900, 0.025, 0.035, 7 * 86_400.0),
    "social": ChannelProfile(6_000, 6 * 3_600.0, 450, 0.012, 0.015, 3 * 86_400.0),
    "email": ChannelProfile(2_500, 3 * 3_600.0, 2_500, 0.045, 0.040, 1 * 86_400.0),
}

# Verbs that typically open a call to action in marketing copy.
_CALL_TO_ACTION = re.compile(
    r"\b(buy|shop|order|sign[ -]?up|subscribe|register|join|download|try|start|get|book|"
    r"learn more|discover|claim|save|contact us|request a demo)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SimulatedMetrics:
    impressions: int
    clicks: int
    conversions: int
    spend_cents: int


@dataclass(frozen=True)
class AudienceModel:
    """Effective rates for one post; compute once, evaluate at any elapsed time."""

    profile: ChannelProfile
    budget_cents: int
    reach_factor: float
    ctr: float
    cvr: float

    def at(self, elapsed_simulated_s: float) -> SimulatedMetrics:
        t = max(0.0, elapsed_simulated_s)
        p = self.profile
        organic = p.organic_reach * self.reach_factor * (1.0 - 0.5 ** (t / p.organic_half_life_s))
        paced_share = min(1.0, t / p.flight_s)
        paid_spend = self.budget_cents * paced_share
        paid_impressions = paid_spend * 1000.0 / p.cpm_cents * self.reach_factor
        # Flooring monotone quantities keeps each counter monotone and the bounds exact.
        impressions = math.floor(organic + paid_impressions)
        clicks = math.floor(impressions * self.ctr)
        conversions = math.floor(clicks * self.cvr)
        return SimulatedMetrics(
            impressions=impressions,
            clicks=min(clicks, impressions),
            conversions=min(conversions, clicks),
            spend_cents=min(math.floor(paid_spend), self.budget_cents),
        )


def _unit_values(seed: str, count: int) -> list[float]:
    """``count`` stable pseudo-random numbers in [0, 1) derived from ``seed``."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "big") / 2**32 for i in range(count)]


def copy_quality(channel: str, title: str, body: str) -> float:
    """Click-through multiplier (about 0.8-1.4) from simple, well-known copy heuristics."""
    factor = 1.0
    if _CALL_TO_ACTION.search(f"{title}\n{body}"):
        factor *= 1.25
    length = len(body)
    if channel == "social":
        factor *= 1.1 if 70 <= length <= 240 else 0.9
    elif channel == "blog":
        factor *= 1.1 if length >= 600 else (1.0 if length >= 200 else 0.8)
    elif channel == "email":
        factor *= 1.1 if 0 < len(title) <= 60 else 0.9  # short subjects get opened more
        factor *= 1.0 if length >= 150 else 0.9
    return factor


def audience_model(
    post_id: str, channel: str, title: str, body: str, budget_cents: int
) -> AudienceModel:
    profile = CHANNEL_PROFILES[channel]
    reach_u, ctr_u, cvr_u = _unit_values(post_id, 3)
    return AudienceModel(
        profile=profile,
        budget_cents=max(0, budget_cents),
        reach_factor=0.75 + 0.5 * reach_u,
        ctr=min(1.0, profile.ctr * copy_quality(channel, title, body) * (0.8 + 0.4 * ctr_u)),
        cvr=min(1.0, profile.cvr * (0.8 + 0.4 * cvr_u)),
    )
