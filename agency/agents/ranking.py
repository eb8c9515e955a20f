"""Which of N candidates of one item goes to the reviewer: a scored, explainable ranking.

Order of concerns: a blocked candidate never beats one that passed; then a weighted total of
relevance to the message, length fit to the format's ideal, fewer warnings, brand vocabulary
used and distance from earlier content. Ties go to the lower variant, then the earlier
candidate, so the same inputs always give the same order. Every component is returned so a
reviewer can see why the winner won.
"""

from __future__ import annotations

from agency.agents.content import CHANNEL_LIMITS
from agency.agents.formats import FORMAT_SPECS, phrases_in
from agency.agents.relevance import NEAR_DUPLICATE_THRESHOLD
from agency.contracts import BrandProfile, DraftCandidate, RankRequest, RankResult

# Relevance dominates (the message is the point of the set); length fit and warnings next;
# vocabulary is a nudge. Penalties subtract.
WEIGHTS = {"relevance": 1.0, "length_fit": 0.5, "vocabulary": 0.2, "warnings": 0.15, "duplicate": 1.0}
# Similarity to earlier content starts to cost from here (blocking starts at the threshold).
DUPLICATE_PENALTY_FROM = 0.80
MAX_VOCABULARY_CREDIT = 3  # preferred words beyond this earn nothing more
_ROUND = 6  # scores are stored; rounding keeps them stable across platforms


def rank_drafts(req: RankRequest) -> RankResult:
    if not req.candidates:
        raise ValueError("nothing to rank: no candidates")
    scores = [score_candidate(i, c, req.brand) for i, c in enumerate(req.candidates)]
    order = sorted(
        range(len(scores)),
        key=lambda i: (scores[i]["blocked"], -scores[i]["total"], scores[i]["variant"], i),
    )
    for rank, index in enumerate(order, start=1):
        scores[index]["rank"] = rank
    return RankResult(order=order, scores=scores)


def score_candidate(index: int, candidate: DraftCandidate, brand: BrandProfile | None) -> dict:
    draft, check = candidate.draft, candidate.compliance
    relevance = candidate.relevance if candidate.relevance is not None else 0.0
    fit = length_fit(draft.format, len(check.sanitized_body or draft.body))
    warnings = sum(1 for f in check.findings if f.severity == "warn")
    used = vocabulary_used(f"{draft.title}\n{draft.body}", brand)
    vocabulary = min(len(used), MAX_VOCABULARY_CREDIT) / MAX_VOCABULARY_CREDIT
    duplicate = duplicate_penalty(candidate.duplicate_similarity)
    total = (
        WEIGHTS["relevance"] * relevance
        + WEIGHTS["length_fit"] * fit
        + WEIGHTS["vocabulary"] * vocabulary
        - WEIGHTS["warnings"] * warnings
        - WEIGHTS["duplicate"] * duplicate
    )
    return {
        "index": index,
        "variant": draft.variant,
        "attempt": draft.attempt,
        "blocked": not check.passed,
        "total": round(total, _ROUND),
        "relevance": None if candidate.relevance is None else round(candidate.relevance, _ROUND),
        "length_fit": round(fit, _ROUND),
        "warnings": warnings,
        "vocabulary_used": used,
        "duplicate_similarity": (
            None if candidate.duplicate_similarity is None else round(candidate.duplicate_similarity, _ROUND)
        ),
        "duplicate_penalty": round(duplicate, _ROUND),
        "blocking_rules": sorted({f.rule for f in check.findings if f.severity == "block"}),
    }


def length_fit(fmt: str, length: int) -> float:
    """1.0 at the format's ideal length, falling linearly to 0 at zero or twice the ideal.
    Legacy formats (no spec) take three quarters of their maximum as the ideal."""
    if fmt in FORMAT_SPECS:
        ideal = FORMAT_SPECS[fmt].ideal_length
    elif fmt in CHANNEL_LIMITS:
        ideal = round(CHANNEL_LIMITS[fmt].body_max * 0.75)
    else:
        return 0.0
    return max(0.0, 1.0 - abs(length - ideal) / ideal)


def vocabulary_used(text: str, brand: BrandProfile | None) -> list[str]:
    return phrases_in(text, brand.vocabulary_use) if brand is not None else []


def duplicate_penalty(similarity: float | None) -> float:
    """0 below DUPLICATE_PENALTY_FROM, rising linearly to 1 at the near-duplicate threshold."""
    if similarity is None or similarity <= DUPLICATE_PENALTY_FROM:
        return 0.0
    span = NEAR_DUPLICATE_THRESHOLD - DUPLICATE_PENALTY_FROM
    return min(1.0, (similarity - DUPLICATE_PENALTY_FROM) / span)
