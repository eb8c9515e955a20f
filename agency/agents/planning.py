"""Campaign planning: objective, key messages, tone and per-channel plan from the brief.

Everything is derived from the brief and the tenant's history; no clock, no randomness.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import date

from agency.contracts import (
    CampaignBrief,
    CampaignPlan,
    ChannelHistory,
    ChannelPlan,
    MarketAssessment,
    PastCampaign,
    PlanRequest,
)

AWARENESS = "awareness"
CONSIDERATION = "consideration"
CONVERSION = "conversion"
FUNNEL = (AWARENESS, CONSIDERATION, CONVERSION)


@dataclass(frozen=True)
class ChannelPrior:
    """Industry-typical starting point for a channel before any tenant history.

    cpm_cents: cost per 1,000 impressions (paid promotion / sends); ctr: clicks per
    impression; cvr: conversions per click; posts_per_week: sustainable cadence;
    role: the funnel stage the channel naturally serves.
    """

    cpm_cents: int
    ctr: float
    cvr: float
    posts_per_week: float
    role: str


# Rough public benchmarks for small B2B/B2C brands. Social is cheap reach with low intent;
# blog content is mid-funnel reading; email reaches people who already opted in, so it
# converts best but costs the most per thousand.
CHANNEL_PRIORS: dict[str, ChannelPrior] = {
    "social": ChannelPrior(cpm_cents=600, ctr=0.012, cvr=0.015, posts_per_week=3, role=AWARENESS),
    "blog": ChannelPrior(cpm_cents=1500, ctr=0.020, cvr=0.030, posts_per_week=1, role=CONSIDERATION),
    "email": ChannelPrior(cpm_cents=2000, ctr=0.030, cvr=0.040, posts_per_week=1, role=CONVERSION),
}

# Shrinkage strength: history counts as much as this many pseudo-observations at the prior.
# 5,000 impressions / 200 clicks means a small past campaign nudges the priors, a large
# one dominates them.
PRIOR_PSEUDO_IMPRESSIONS = 5_000
PRIOR_PSEUDO_CLICKS = 200

# Keyword rules for goals; first matching stage in this order wins for a goal.
_GOAL_KEYWORDS: dict[str, tuple[str, ...]] = {
    CONVERSION: (
        "sale", "sell", "revenue", "purchase", "buy", "order", "signup", "sign-up", "sign up",
        "subscribe", "subscription", "trial", "convert", "conversion", "lead", "book",
        "demo", "register", "registration", "download", "install", "checkout", "roi",
    ),
    CONSIDERATION: (
        "engage", "engaging", "engagement", "consider", "educate", "educating", "education",
        "traffic", "visit", "visitor", "click", "learn", "compare", "evaluate", "nurture", "interest", "webinar", "content",
        "newsletter", "follower", "community",
    ),
    AWARENESS: (
        "awareness", "aware", "brand", "reach", "visibility", "launch", "announce",
        "recognition", "impression", "audience", "exposure", "introduce", "discover",
    ),
}

# Audience keyword → tone. First matching rule wins; order goes from specific to general.
_TONE_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("developer", "engineer", "devops", "programmer", "technical", "data scientist", "it "),
     "technical and precise"),
    (("executive", "cfo", "ceo", "cto", "director", "enterprise", "procurement", "b2b", "leader"),
     "professional and confident"),
    (("doctor", "nurse", "clinician", "patient", "health", "lawyer", "legal", "finance"),
     "trustworthy and clear"),
    (("parent", "famil", "mom", "dad", "caregiver"), "warm and reassuring"),
    (("student", "teen", "gen z", "gamer", "young", "college"), "casual and energetic"),
    (("small business", "founder", "owner", "freelanc", "startup", "shop"),
     "practical and friendly"),
)
DEFAULT_TONE = "clear and friendly"

MAX_KEY_MESSAGES = 6


def plan_campaign(req: PlanRequest, *, max_posts_per_channel: int = 3) -> CampaignPlan:
    """Turn a brief plus tenant history into a channel plan with its reasoning."""
    brief = req.brief
    if max_posts_per_channel < 1:
        raise ValueError("max_posts_per_channel must be at least 1")
    channels = _validated_channels(brief)
    duration_days = campaign_duration_days(brief.start_date, brief.end_date)
    rationale: list[str] = [f"Campaign runs {duration_days} days ({brief.start_date} to {brief.end_date})."]

    stages = [classify_goal(goal) for goal in brief.goals]
    objective = _pick_objective(stages)
    rationale.append(_objective_rationale(brief.goals, stages, objective))

    tone = tone_for_audience(brief.audience)
    rationale.append(f"Tone '{tone}' chosen for audience '{brief.audience}'.")
    rationale.extend(audience_rationale(req.history.campaigns, brief.audience))
    rationale.extend(timing_rationale(req.history.campaigns, brief.start_date))
    key_messages = build_key_messages(brief, stages, objective)

    history_by_channel = {h.channel: h for h in req.history.channels}
    rates: dict[str, tuple[float, float]] = {}
    used_history = False
    for channel in channels:
        prior = CHANNEL_PRIORS[channel]
        past = history_by_channel.get(channel)
        ctr, cvr = blended_rates(prior, past)
        rates[channel] = (ctr, cvr)
        if past is not None and past.impressions > 0:
            used_history = True
        rationale.append(_rates_rationale(channel, prior, past, ctr, cvr))

    values = {c: objective_value_per_dollar(objective, CHANNEL_PRIORS[c].cpm_cents, *rates[c]) for c in channels}
    weights = _normalize(values)
    market = req.market
    weight_source = ""
    if market is not None:
        rationale.extend(market_rationale(market, brief))
        recommended = {i.channel: i.recommended_share for i in market.channels if i.recommended_share is not None}
        if market.evidence == "sufficient" and set(recommended) >= set(channels):
            # The fitted, recovery-gated allocation outranks benchmark rates.
            weights = _normalize({c: recommended[c] for c in channels})
            weight_source = " (the market model's recommended share)"
            used_history = True
    weeks = duration_days / 7
    plans: list[ChannelPlan] = []
    for channel in channels:
        prior = CHANNEL_PRIORS[channel]
        posts = posts_for_channel(prior.posts_per_week, duration_days, max_posts_per_channel)
        ctr, cvr = rates[channel]
        plans.append(
            ChannelPlan(
                channel=channel, role=prior.role, weight=weights[channel],
                expected_cvr=cvr, expected_ctr=ctr, posts=posts,
            )
        )
        rationale.append(
            f"{channel}: role {prior.role}; {objective} value {values[channel]:.4g} per $1 "
            f"→ weight {weights[channel]:.2f}{weight_source}; {posts} post(s) "
            f"({prior.posts_per_week:g}/week × {weeks:.1f} weeks, capped at {max_posts_per_channel})."
        )

    return CampaignPlan(
        campaign_id=req.campaign_id,
        objective=objective,
        key_messages=key_messages,
        tone=tone,
        channels=plans,
        duration_days=duration_days,
        rationale=rationale,
        used_history=used_history,
    )


_AUDIENCE_STOPWORDS = {"and", "or", "the", "a", "an", "of", "for", "who", "in", "on", "with", "to", "aged", "at"}


def _audience_words(audience: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", audience.lower()) if w not in _AUDIENCE_STOPWORDS and len(w) > 2}


def audience_rationale(past: list[PastCampaign], audience: str, *, top: int = 3) -> list[str]:
    """How the tenant's past audiences converted (per $100), and which one this brief's is closest to."""
    results: dict[str, list[int]] = {}
    for c in past:
        if c.spend_cents > 0 and c.audience.strip():
            spend_conv = results.setdefault(" ".join(c.audience.split()), [0, 0, 0])
            spend_conv[0] += c.spend_cents
            spend_conv[1] += c.conversions
            spend_conv[2] += 1
    if not results:
        return []
    rate = {a: conv * 10_000 / spend for a, (spend, conv, _) in results.items()}
    ranked = sorted(rate, key=lambda a: (-rate[a], a))
    lines = [
        "Past audiences: " + "; ".join(
            f"'{a}' {rate[a]:.2f} conversions per $100 over {results[a][2]} campaign(s)" for a in ranked[:top]
        ) + "."
    ]
    words = _audience_words(audience)
    overlap = {a: words & _audience_words(a) for a in results}
    closest = max(results, key=lambda a: (len(overlap[a]), rate[a]))
    if overlap[closest]:
        standing = "the best" if closest == ranked[0] else f"#{ranked.index(closest) + 1} of {len(ranked)}"
        lines.append(
            f"This audience is closest to '{closest}' (shared: {', '.join(sorted(overlap[closest]))}), "
            f"{standing} past audience at {rate[closest]:.2f} conversions per $100."
        )
    else:
        lines.append("This audience shares no terms with past ones: no audience history applies.")
    return lines


def timing_rationale(past: list[PastCampaign], start_date: str) -> list[str]:
    """Which start months of past campaigns converted best per $100, and where this one starts."""
    by_month: dict[int, list[int]] = {}
    for c in past:
        try:
            month = date.fromisoformat(c.start_date).month
        except ValueError:
            continue
        if c.spend_cents > 0:
            acc = by_month.setdefault(month, [0, 0])
            acc[0] += c.spend_cents
            acc[1] += c.conversions
    if len(by_month) < 2:
        return []
    rate = {m: conv * 10_000 / spend for m, (spend, conv) in by_month.items()}
    best = max(rate, key=lambda m: (rate[m], -m))
    start = date.fromisoformat(start_date).month
    name = calendar.month_name
    here = (
        f"this campaign starts in {name[start]} ({rate[start]:.2f})" if start in rate
        else f"no past campaign started in {name[start]}"
    )
    return [
        f"Past campaigns by start month: best {name[best]} at {rate[best]:.2f} conversions per $100 "
        f"over {len(rate)} months with history; {here}."
    ]


def market_rationale(market: MarketAssessment, brief: CampaignBrief) -> list[str]:
    """The numbers from the tenant's fitted history that the plan rests on, in words."""
    if market.evidence == "none":
        return [f"Market model: not fitted ({market.reason}); benchmark rates used."]
    lines = [
        f"Market model fitted on {market.weeks} weeks of history"
        + (f" (R² {market.r2:.2f}, MAPE {market.mape:.1%})" if market.r2 is not None and market.mape is not None else "")
        + (
            "; recovery gate passed."
            if market.evidence == "sufficient"
            else f"; insufficient evidence to advise an allocation: {market.reason}."
        )
    ]
    ranked = sorted(market.channels, key=lambda i: i.marginal_conversions_per_dollar, reverse=True)
    for i in ranked:
        lines.append(
            f"{i.channel}: {i.conversions_per_dollar * 100:.2f} conversions per $100 over the history, "
            f"{i.marginal_conversions_per_dollar * 100:.2f} per extra $100 at ${i.avg_weekly_spend_cents / 100:,.0f}/week, "
            f"{i.share_of_media_outcome:.0%} of media-driven conversions"
            + (f"; recommended share {i.recommended_share:.0%}." if i.recommended_share is not None else ".")
        )
    if ranked:
        lines.append(f"Best channel for the next dollar: {ranked[0].channel}.")
    if market.peak_month:
        start_month = date.fromisoformat(brief.start_date).strftime("%B")
        timing = "falls in" if start_month == market.peak_month else "is outside"
        lines.append(f"Seasonal peak of the baseline: {market.peak_month}; the campaign start ({start_month}) {timing} it.")
    if market.expected_conversions is not None and len(market.interval) == 2:
        lines.append(
            f"Expected {market.expected_conversions:,.0f} media-driven conversions over the campaign "
            f"(90% interval {market.interval[0]:,.0f}–{market.interval[1]:,.0f})."
        )
    return lines


def campaign_duration_days(start_date: str, end_date: str) -> int:
    """Inclusive number of days; a one-day campaign starts and ends on the same date."""
    start, end = date.fromisoformat(start_date), date.fromisoformat(end_date)
    if end < start:
        raise ValueError(f"end_date {end_date} is before start_date {start_date}")
    return (end - start).days + 1


def classify_goal(goal: str) -> str | None:
    """Funnel stage a goal aims at, by keyword; None when no rule matches."""
    text = f" {goal.lower()} "
    for stage in (CONVERSION, CONSIDERATION, AWARENESS):
        if any(_contains_keyword(text, keyword) for keyword in _GOAL_KEYWORDS[stage]):
            return stage
    return None


def tone_for_audience(audience: str) -> str:
    text = f" {audience.lower()} "
    for keywords, tone in _TONE_RULES:
        if any(keyword in text for keyword in keywords):
            return tone
    return DEFAULT_TONE


def build_key_messages(brief: CampaignBrief, stages: list[str | None], objective: str) -> list[str]:
    """Messages the content rotates through: approved claims first, then one per funnel stage."""
    messages: list[str] = []
    for claim in brief.key_claims:
        text = " ".join(claim.split())
        if text:
            messages.append(text)
    wanted = [objective] + [s for s in FUNNEL if s in stages and s != objective]
    for stage in wanted:
        messages.append(_stage_message(stage, brief.product.strip(), brief.audience.strip()))
    return _dedupe(messages)[:MAX_KEY_MESSAGES]


def blended_rates(prior: ChannelPrior, past: ChannelHistory | None) -> tuple[float, float]:
    """CTR and CVR shrunk towards the prior: (observed + k·prior) / (n + k)."""
    if past is None:
        return prior.ctr, prior.cvr
    impressions, clicks, conversions = max(past.impressions, 0), max(past.clicks, 0), max(past.conversions, 0)
    clicks = min(clicks, impressions)
    conversions = min(conversions, clicks)
    ctr = (clicks + PRIOR_PSEUDO_IMPRESSIONS * prior.ctr) / (impressions + PRIOR_PSEUDO_IMPRESSIONS)
    cvr = (conversions + PRIOR_PSEUDO_CLICKS * prior.cvr) / (clicks + PRIOR_PSEUDO_CLICKS)
    return ctr, cvr


def objective_value_per_dollar(objective: str, cpm_cents: int, ctr: float, cvr: float) -> float:
    """What $1 buys for the objective: impressions, clicks or conversions."""
    impressions = 100_000 / cpm_cents  # 100 cents per dollar, CPM is per 1,000
    if objective == AWARENESS:
        return impressions
    if objective == CONSIDERATION:
        return impressions * ctr
    return impressions * ctr * cvr


def posts_for_channel(posts_per_week: float, duration_days: int, max_posts: int) -> int:
    return max(1, min(max_posts, math.ceil(posts_per_week * duration_days / 7)))


# ---- helpers --------------------------------------------------------------------------
def _validated_channels(brief: CampaignBrief) -> list[str]:
    channels = _dedupe([c.strip().lower() for c in brief.channels])
    if not channels:
        raise ValueError("the brief names no channels")
    unknown = [c for c in channels if c not in CHANNEL_PRIORS]
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; known: {sorted(CHANNEL_PRIORS)}")
    return channels


def _pick_objective(stages: list[str | None]) -> str:
    """Most frequent stage among goals; ties go to the deeper funnel stage (closer to revenue)."""
    counts = {stage: stages.count(stage) for stage in FUNNEL}
    if not any(counts.values()):
        return AWARENESS
    return max(reversed(FUNNEL), key=lambda stage: counts[stage])


def _objective_rationale(goals: list[str], stages: list[str | None], objective: str) -> str:
    if not any(stages):
        return f"Objective {objective}: no goal matched a funnel keyword, so the campaign builds awareness."
    parts = [f"'{g}' → {s or 'unclassified'}" for g, s in zip(goals, stages)]
    return f"Objective {objective} from goals: " + "; ".join(parts) + "."


def _rates_rationale(
    channel: str, prior: ChannelPrior, past: ChannelHistory | None, ctr: float, cvr: float
) -> str:
    if past is None or past.impressions <= 0:
        return f"{channel}: no history; priors CTR {prior.ctr:.2%}, CVR {prior.cvr:.2%}."
    return (
        f"{channel}: history {past.impressions} impressions, {past.clicks} clicks, "
        f"{past.conversions} conversions blended with priors (CTR {prior.ctr:.2%}, CVR {prior.cvr:.2%}) "
        f"→ CTR {ctr:.2%}, CVR {cvr:.2%}."
    )


def _stage_message(stage: str, product: str, audience: str) -> str:
    if stage == AWARENESS:
        return f"Meet {product}, built for {audience}"
    if stage == CONSIDERATION:
        return f"Why {audience} choose {product}"
    return f"Get started with {product} today"


def _normalize(values: dict[str, float]) -> dict[str, float]:
    total = sum(values.values())
    if total <= 0:
        return {k: 1 / len(values) for k in values}
    return {k: v / total for k, v in values.items()}


def _contains_keyword(text: str, keyword: str) -> bool:
    # Whole word plus simple inflections: "sale" matches "sales", "lead" not "leadership".
    pattern = r"(?<![a-z])" + re.escape(keyword) + r"(?:s|es|d|ed|ing)?(?![a-z])"
    return re.search(pattern, text) is not None


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
