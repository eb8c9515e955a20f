"""Deterministic simulated audience for sandbox posts.

Metrics are a pure function of the post (id, channel, copy, budget and its budget changes) and
the simulated time elapsed since it was published, so two reads at the same moment always agree
and every counter is non-decreasing in time. Invariants: ``spend_cents <= budget_cents``,
``clicks <= impressions`` and ``conversions <= clicks``.

Paid spend is piecewise linear: a :class:`PacingSegment` per budget in effect. The first paces
the published budget evenly over the channel's flight; a budget change at simulated time ``s``
keeps what was spent by ``s`` and paces the rest (new total - spent) evenly over the remaining
flight, or, when the flight is already over, over a fresh flight of the channel's default length
starting at ``s``. Cumulative spend is therefore continuous and non-decreasing, and impressions,
clicks and conversions (monotone functions of spend and time) stay monotone too.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
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
class PacingSegment:
    """Paid spend from ``start_s`` on: linear from ``spent_at_start`` up to ``budget_cents``,
    reached at ``end_s``, flat afterwards."""

    start_s: float  # simulated seconds since publishing
    end_s: float
    budget_cents: int  # the total budget in effect during this segment
    spent_at_start: float  # cumulative spend (unfloored) when the segment began

    def spend_at(self, t: float) -> float:
        remaining = max(0.0, self.budget_cents - self.spent_at_start)
        duration = self.end_s - self.start_s
        share = 1.0 if duration <= 0 else min(1.0, max(0.0, (t - self.start_s) / duration))
        return self.spent_at_start + remaining * share


def pacing_segments(
    flight_s: float, budget_cents: int, changes: Iterable[tuple[float, int]] = ()
) -> tuple[PacingSegment, ...]:
    """Segments for a published ``budget_cents`` and ``changes`` as (simulated time, new total).

    Changes apply in time order (ties in the given order). A new total below what was already
    spent cannot un-spend money: the sandbox rejects such changes, and here it is raised to the
    spend so far (rounded down, as reported) so the invariants hold for any input.
    """
    segments = [PacingSegment(0.0, flight_s, max(0, budget_cents), 0.0)]
    for at_s, new_budget in sorted(changes, key=lambda change: change[0]):
        current = segments[-1]
        start = max(float(at_s), current.start_s)
        spent = current.spend_at(start)
        # Inside the flight, the rest is paced over what remains of it; after it, a new flight.
        end = current.end_s if start < current.end_s else start + flight_s
        budget = max(int(new_budget), math.floor(spent))
        segments.append(PacingSegment(start, end, budget, spent))
    return tuple(segments)


@dataclass(frozen=True)
class AudienceModel:
    """Effective rates and budget schedule for one post; evaluate at any elapsed time."""

    profile: ChannelProfile
    segments: tuple[PacingSegment, ...]
    reach_factor: float
    ctr: float
    cvr: float

    @property
    def budget_cents(self) -> int:
        """The latest total budget."""
        return self.segments[-1].budget_cents

    def segment_at(self, t: float) -> PacingSegment:
        """The segment in effect at simulated time ``t`` (the latest that started by then)."""
        for segment in reversed(self.segments):
            if segment.start_s <= t:
                return segment
        return self.segments[0]

    def at(self, elapsed_simulated_s: float) -> SimulatedMetrics:
        t = max(0.0, elapsed_simulated_s)
        p = self.profile
        organic = p.organic_reach * self.reach_factor * (1.0 - 0.5 ** (t / p.organic_half_life_s))
        segment = self.segment_at(t)
        paid_spend = segment.spend_at(t)
        paid_impressions = paid_spend * 1000.0 / p.cpm_cents * self.reach_factor
        # Flooring monotone quantities keeps each counter monotone and the bounds exact.
        impressions = math.floor(organic + paid_impressions)
        clicks = math.floor(impressions * self.ctr)
        conversions = math.floor(clicks * self.cvr)
        return SimulatedMetrics(
            impressions=impressions,
            clicks=min(clicks, impressions),
            conversions=min(conversions, clicks),
            spend_cents=min(math.floor(paid_spend), segment.budget_cents),
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
    post_id: str,
    channel: str,
    title: str,
    body: str,
    budget_cents: int,
    budget_changes: Iterable[tuple[float, int]] = (),
) -> AudienceModel:
    """The model of one post; ``budget_cents`` is the published budget and ``budget_changes``
    the later totals as (simulated seconds since publishing, new total budget)."""
    profile = CHANNEL_PROFILES[channel]
    reach_u, ctr_u, cvr_u = _unit_values(post_id, 3)
    return AudienceModel(
        profile=profile,
        segments=pacing_segments(profile.flight_s, budget_cents, budget_changes),
        reach_factor=0.75 + 0.5 * reach_u,
        ctr=min(1.0, profile.ctr * copy_quality(channel, title, body) * (0.8 + 0.4 * ctr_u)),
        cvr=min(1.0, profile.cvr * (0.8 + 0.4 * cvr_u)),
    )
