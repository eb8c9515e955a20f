"""The coordinated multi-format set for the demo brief, generated for real by SmolLM2-135M on
Triton: every format's draft passes its validator within the pipeline's regeneration limit,
with no personal data and no banned word, and every draft carries the shared message.

Per round it runs what the content pipeline runs for each of its candidates: generate ->
score relevance against the message (embedding) -> compliance (format spec, brand, CTA, claims,
PII, on-topic), then ranks them; a round whose best candidate is blocked feeds its blocking
findings to the next round. (The duplicate lookup needs the database: not part of this test;
the items of one set are not each other's duplicates.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from temporalio.testing import ActivityEnvironment

from activities.content_generation import ContentGenerationActivities
from activities.ranking import RankingActivities
from activities.relevance import RelevanceActivities
from agency.agents.compliance import check_compliance
from agency.agents.formats import phrases_in
from agency.agents.relevance import OFF_TOPIC_THRESHOLD, cosine
from agency.contracts import (
    BrandProfile,
    CalendarEntry,
    CampaignBrief,
    CampaignPlan,
    ChannelPlan,
    ComplianceRequest,
    ComplianceResult,
    ContentDraft,
    DraftCandidate,
    GenerationRequest,
    MessageBrief,
    Persona,
    RankRequest,
    RankResult,
    RelevanceRequest,
    RelevanceResult,
)
from agency.inference import TritonInference

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 3  # CampaignTimings.max_generation_attempts: rounds per item
VARIANTS = 2  # CampaignTimings.generation_variants: candidates per round, the ranking keeps the best
MAX_TOKENS = 120  # the demo's AGENCY_GENERATION_MAX_TOKENS; short formats budget less themselves

# agency.demo.demo_brief, as the API turns it into a CampaignBrief.
BRIEF = CampaignBrief(
    tenant="northwind-outdoor",
    product="Trailblaze waterproof hiking boots",
    audience="weekend hikers aged 25-45 who hike in wet weather",
    goals=["drive online sales of the new boot", "grow newsletter signups"],
    channels=["blog", "social", "email"],
    total_budget_cents=600_000,
    start_date="2026-12-07",
    end_date="2026-12-20",
    name="Trailblaze winter launch",
    key_claims=["waterproof for 8 hours of rain", "free returns for 60 days"],
)
PLAN = CampaignPlan(
    campaign_id="mf1", objective="conversion", key_messages=["Dry feet on wet trails"],
    tone="warm, practical and encouraging",
    channels=[ChannelPlan(c, "conversion", 1 / 3, 0.03, 0.02, 1) for c in ("blog", "social", "email")],
    duration_days=14, rationale=[], used_history=False,
)
BRAND = BrandProfile(
    tenant="northwind-outdoor", version=1, voice="warm, practical, plain-spoken; no hype",
    vocabulary_use=["trail", "dry", "comfort", "grip"],
    vocabulary_avoid=["cheap", "revolutionary", "game-changer", "best ever", "unbeatable"],
    claims_needing_substantiation=["waterproof", "free returns", "lifetime"],
    personas=[Persona("Wet-weather weekender", "hikes most weekends, rain or shine", ["dry feet", "grip"])],
)
MESSAGE = MessageBrief(
    message_id="mf1:m1", topic="hiking in the rain",
    message="Trailblaze boots keep your feet dry on wet trails, so a rainy weekend is still a hiking weekend.",
    cta="Shop the Trailblaze boot", hashtags=["Trailblaze", "HikeDry"], keywords=["wet trails", "dry feet"],
)
FORMATS = [
    ("blog", "blog_post"), ("social", "x_post"), ("social", "linkedin_post"),
    ("social", "instagram_caption"), ("email", "email"),
]


@dataclass
class Outcome:
    fmt: str
    rounds: int
    first_try_candidates: int  # candidates of round 1 that passed on their own
    draft: ContentDraft
    check: ComplianceResult
    relevance: float
    embedding: list[float]
    ranking: RankResult


async def candidate(env: ActivityEnvironment, inference: TritonInference, req: GenerationRequest):
    draft: ContentDraft = await env.run(ContentGenerationActivities(inference).generate_content, req)
    scored: RelevanceResult = await env.run(
        RelevanceActivities(inference).score_relevance,
        RelevanceRequest(BRIEF, req.entry, draft.title, draft.body, message=MESSAGE),
    )
    check = check_compliance(
        ComplianceRequest(
            draft=draft, key_claims=BRIEF.key_claims, relevance=scored.similarity, brand=BRAND, message=MESSAGE,
        )
    )
    print(f"\n[{req.entry.format} round {req.attempt} variant {req.variant}] passed={check.passed} "
          f"relevance={scored.similarity:.2f} len={len(draft.body)} title={draft.title!r}\n{draft.body}\n"
          f"parts={draft.parts}\nfindings={[(f.rule, f.severity) for f in check.findings]}")
    return DraftCandidate(draft, check, relevance=scored.similarity), scored.embedding


async def produce(inference: TritonInference, channel: str, fmt: str, campaign_id: str = "mf1") -> Outcome:
    """One item as the content pipeline makes it: per round VARIANTS candidates, ranked; a round
    whose best is blocked feeds its blocking findings to the next round."""
    env = ActivityEnvironment()
    entry = CalendarEntry(
        f"{campaign_id}:{channel}:{fmt}", channel, fmt, "2026-12-08", "Dry feet on wet trails",
        topic=MESSAGE.topic, message_id=MESSAGE.message_id,
    )
    feedback, first_try = "", 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        scored = [
            await candidate(env, inference, GenerationRequest(
                campaign_id, entry, BRIEF, PLAN, max_tokens=MAX_TOKENS, temperature=0.7, attempt=attempt,
                message=MESSAGE, brand=BRAND, variant=variant, feedback=feedback,
            ))
            for variant in range(1, VARIANTS + 1)
        ]
        candidates = [c for c, _ in scored]
        if attempt == 1:
            first_try = sum(1 for c in candidates if c.compliance.passed)
        ranking: RankResult = await env.run(
            RankingActivities().rank_drafts, RankRequest(candidates=candidates, brand=BRAND)
        )
        best = candidates[ranking.order[0]]
        if best.compliance.passed:
            assert best.relevance is not None
            return Outcome(fmt, attempt, first_try, best.draft, best.compliance, best.relevance,
                           scored[ranking.order[0]][1], ranking)
        blocking = [f for f in best.compliance.findings if f.severity == "block"]
        feedback = "The previous draft failed these checks: " + "; ".join(
            f"{f.rule}: {f.message}" for f in blocking[:3]
        ) + "."
    pytest.fail(f"{fmt}: no draft passed in {MAX_ATTEMPTS} rounds; last findings {best.compliance.findings}")


async def test_every_format_of_the_demo_message_passes_its_validator(inference: TritonInference) -> None:
    outcomes = [await produce(inference, channel, fmt) for channel, fmt in FORMATS]

    first_round = sum(1 for o in outcomes if o.rounds == 1)
    first_try = sum(o.first_try_candidates for o in outcomes)
    print(f"\nitems passed in round 1: {first_round}/{len(outcomes)}; first-round candidates passed: "
          f"{first_try}/{len(outcomes) * VARIANTS}; rounds: " + ", ".join(f"{o.fmt}={o.rounds}" for o in outcomes))
    assert len(outcomes) == len(FORMATS)
    for o in outcomes:
        texts = [o.draft.title, o.draft.body, *o.draft.parts.values()]
        assert not any(f.rule.startswith("pii.") for f in o.check.findings), o.check.findings
        assert not [p for text in texts for p in phrases_in(text, BRAND.vocabulary_avoid)], o.fmt
        assert "Shop the Trailblaze boot" in o.draft.body, o.fmt
        assert o.relevance >= OFF_TOPIC_THRESHOLD, (o.fmt, o.relevance)
        assert o.ranking.scores[o.ranking.order[0]]["blocked"] is False
        assert len(o.embedding) == 384
        assert abs(sum(x * x for x in o.embedding) - 1.0) < 1e-6
    x_post = next(o for o in outcomes if o.fmt == "x_post")
    assert len(x_post.draft.body) <= 280
    email = next(o for o in outcomes if o.fmt == "email")
    assert 0 < len(email.draft.title) <= 60 and 40 <= len(email.draft.parts["preheader"]) <= 100
    # Reported, not asserted: each draft is held to the message (its relevance, asserted above),
    # and two on-message drafts in different formats can still be far apart from each other.
    pairwise = [
        cosine(a.embedding, b.embedding) for i, a in enumerate(outcomes) for b in outcomes[i + 1 :]
    ]
    print(f"pairwise similarity within the set: min {min(pairwise):.2f}, mean {sum(pairwise) / len(pairwise):.2f}")
