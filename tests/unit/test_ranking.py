"""Ranking N candidates of one item: blocked never wins, then relevance, length fit, warnings,
brand vocabulary and distance from earlier content; deterministic ties; components returned."""

from __future__ import annotations

import pytest

from agency.agents.ranking import WEIGHTS, duplicate_penalty, length_fit, rank_drafts
from agency.agents.relevance import NEAR_DUPLICATE_THRESHOLD
from agency.contracts import (
    BrandProfile,
    ComplianceFinding,
    ComplianceResult,
    ContentDraft,
    DraftCandidate,
    RankRequest,
)

BRAND = BrandProfile("acme", 1, "plain", vocabulary_use=["trail", "dry", "grip", "comfort"])
IDEAL_X = "x" * 220  # x_post's ideal length


def candidate(variant: int, body: str = IDEAL_X, *, relevance: float | None = 0.6, blocked: bool = False,
              warnings: int = 0, duplicate: float | None = None, fmt: str = "x_post") -> DraftCandidate:
    findings = [ComplianceFinding("claims.unapproved", "warn", "check")] * warnings
    if blocked:
        findings.append(ComplianceFinding("length.max", "block", "too long"))
    draft = ContentDraft("c1:social:1", "c1", "social", fmt, "", body, "m", 1, 1, attempt=2, variant=variant)
    check = ComplianceResult("c1:social:1", not blocked, findings, [], "", body)
    return DraftCandidate(draft, check, relevance=relevance, duplicate_similarity=duplicate)


def rank(*candidates: DraftCandidate, brand: BrandProfile | None = BRAND):
    return rank_drafts(RankRequest(candidates=list(candidates), brand=brand))


def test_a_blocked_candidate_never_wins_even_when_it_scores_higher() -> None:
    result = rank(candidate(1, relevance=0.95, blocked=True), candidate(2, relevance=0.31))
    assert result.order == [1, 0]
    assert result.scores[0]["total"] > result.scores[1]["total"]
    assert result.scores[0]["blocked"] and result.scores[0]["blocking_rules"] == ["length.max"]
    assert [s["rank"] for s in result.scores] == [2, 1]


def test_more_relevant_wins() -> None:
    assert rank(candidate(1, relevance=0.4), candidate(2, relevance=0.7)).order == [1, 0]


def test_length_closer_to_the_ideal_wins_at_equal_relevance() -> None:
    assert rank(candidate(1, "x" * 60), candidate(2, IDEAL_X)).order == [1, 0]
    assert length_fit("x_post", 220) == 1.0 and length_fit("x_post", 110) == pytest.approx(0.5)
    assert length_fit("x_post", 0) == 0.0 and length_fit("fax", 100) == 0.0
    assert 0 < length_fit("social_post", 100) < 1  # legacy formats rank too


def test_fewer_warnings_win() -> None:
    result = rank(candidate(1, warnings=2), candidate(2, warnings=0))
    assert result.order == [1, 0]
    assert result.scores[0]["warnings"] == 2
    assert result.scores[1]["total"] - result.scores[0]["total"] == pytest.approx(2 * WEIGHTS["warnings"])


def test_brand_vocabulary_used_wins() -> None:
    plain = ("Wet feet, slip, road. " + "x" * 220)[:220]
    branded = ("Dry feet, grip, trail. " + "x" * 220)[:220]
    result = rank(candidate(1, plain), candidate(2, branded))
    assert result.order == [1, 0]
    assert result.scores[1]["vocabulary_used"] == ["trail", "dry", "grip"]
    assert result.scores[0]["vocabulary_used"] == []
    assert result.scores[1]["total"] - result.scores[0]["total"] == pytest.approx(WEIGHTS["vocabulary"])
    # Without a brand profile there is no vocabulary credit.
    assert rank(candidate(1, branded), brand=None).scores[0]["vocabulary_used"] == []


def test_closer_to_earlier_content_loses() -> None:
    result = rank(candidate(1, duplicate=0.9), candidate(2, duplicate=0.5))
    assert result.order == [1, 0]
    assert result.scores[0]["duplicate_penalty"] > 0 == result.scores[1]["duplicate_penalty"]
    assert duplicate_penalty(None) == 0 and duplicate_penalty(0.8) == 0
    assert duplicate_penalty(NEAR_DUPLICATE_THRESHOLD) == 1.0 and duplicate_penalty(0.99) == 1.0


def test_ties_go_to_the_lower_variant_then_the_earlier_candidate() -> None:
    assert rank(candidate(2), candidate(1)).order == [1, 0]
    assert rank(candidate(1), candidate(1)).order == [0, 1]
    both_blocked = rank(candidate(3, blocked=True), candidate(2, blocked=True))
    assert both_blocked.order == [1, 0]


def test_unmeasured_relevance_counts_as_zero_and_is_reported_as_none() -> None:
    result = rank(candidate(1, relevance=None), candidate(2, relevance=0.2))
    assert result.order == [1, 0]
    assert result.scores[0]["relevance"] is None


def test_scores_carry_every_component_and_are_deterministic() -> None:
    cands = [candidate(v, relevance=0.3 + v / 10, warnings=v % 2) for v in range(1, 5)]
    first, again = rank(*cands), rank(*cands)
    assert first == again
    assert set(first.scores[0]) >= {
        "index", "variant", "attempt", "blocked", "total", "relevance", "length_fit", "warnings",
        "vocabulary_used", "duplicate_similarity", "duplicate_penalty", "blocking_rules", "rank",
    }
    assert sorted(first.order) == [0, 1, 2, 3]


def test_nothing_to_rank_is_an_error() -> None:
    with pytest.raises(ValueError):
        rank_drafts(RankRequest(candidates=[]))
