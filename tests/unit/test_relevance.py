"""Generation quality around the small model: relevance to the brief (off-topic findings),
stop-sequence cutting and per-format token budgets."""

from __future__ import annotations

import math

import pytest

from agency.agents.compliance import check_compliance
from agency.agents.content import CHANNEL_LIMITS, cut_at_stop, max_tokens_for, parse_generation
from agency.agents.relevance import OFF_TOPIC_THRESHOLD, brief_text, cosine, draft_text, is_off_topic
from agency.contracts import CalendarEntry, CampaignBrief, ComplianceRequest, ContentDraft
from tests.unit.test_content import make_request

ON_TOPIC_BODY = "Acme CRM sets up in 10 minutes, so small business owners can get back to selling. #CRM"


def brief(product: str = "Acme CRM", audience: str = "small business owners") -> CampaignBrief:
    return CampaignBrief(
        tenant="acme", product=product, audience=audience, goals=["signups"], channels=["social"],
        total_budget_cents=1000, start_date="2026-03-01", end_date="2026-03-07",
    )


def entry(angle: str = "Set up in 10 minutes.") -> CalendarEntry:
    return CalendarEntry("c1:social:1", "social", "social_post", "2026-03-03", angle)


def compliance(relevance: float | None, body: str = ON_TOPIC_BODY):
    draft = ContentDraft("c1:social:1", "c1", "social", "social_post", "", body, "smollm2", 10, 20)
    return check_compliance(ComplianceRequest(draft=draft, key_claims=["Set up in 10 minutes"], relevance=relevance))


# ---- brief text, cosine, threshold ---------------------------------------------------------
def test_brief_text_names_product_audience_and_angle() -> None:
    assert brief_text(brief(), entry()) == "Acme CRM for small business owners. Set up in 10 minutes."


def test_brief_text_without_audience_or_angle() -> None:
    assert brief_text(brief(audience=" "), entry(angle="")) == "Acme CRM."


def test_brief_text_with_nothing_to_compare_is_an_error() -> None:
    with pytest.raises(ValueError):
        brief_text(brief(product="", audience=""), entry(angle=""))


def test_draft_text_is_title_then_body() -> None:
    assert draft_text(" Save time ", "Body here.") == "Save time\nBody here."
    assert draft_text("", "Body here.") == "Body here."


def test_cosine() -> None:
    assert cosine([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-3.0, -3.0]) == pytest.approx(-1.0)
    assert cosine([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24 / 25)


@pytest.mark.parametrize("a, b", [([1.0], [1.0, 0.0]), ([], []), ([0.0, 0.0], [1.0, 0.0])])
def test_cosine_rejects_mismatched_empty_or_zero_vectors(a, b) -> None:
    with pytest.raises(ValueError):
        cosine(a, b)


def test_threshold_logic() -> None:
    assert is_off_topic(OFF_TOPIC_THRESHOLD - 0.01)
    assert not is_off_topic(OFF_TOPIC_THRESHOLD)
    assert not is_off_topic(0.9)
    assert is_off_topic(-0.2)
    assert not is_off_topic(None)  # not measured: no verdict
    assert is_off_topic(0.5, threshold=0.6)
    with pytest.raises(ValueError):
        is_off_topic(math.nan)


# ---- compliance: off-topic drafts block ----------------------------------------------------
def test_off_topic_draft_blocks() -> None:
    result = compliance(relevance=0.12)
    assert not result.passed
    finding = next(f for f in result.findings if f.rule == "content.off_topic")
    assert finding.severity == "block"
    assert "0.12" in finding.message


def test_on_topic_or_unmeasured_draft_passes() -> None:
    for relevance in (0.62, None):
        result = compliance(relevance=relevance)
        assert result.passed, result.findings
        assert "content.off_topic" not in {f.rule for f in result.findings}


def test_parsed_copy_over_the_limit_still_blocks_when_on_topic() -> None:
    result = compliance(relevance=0.9, body="word " * 80)
    assert not result.passed
    assert {f.rule: f.severity for f in result.findings}["length.max"] == "block"


# ---- stop sequences ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Great copy here.<|im_end|>junk", "Great copy here."),
        ("Great copy here.\n<|im_start|>user\nWrite another", "Great copy here."),
        ("Great copy here.\nUser: now an email", "Great copy here."),
        ("Great copy here.\n\nassistant: Here is another one", "Great copy here."),
        ("Post 1: Great copy here.\n\nPost 2: Other copy.", "Post 1: Great copy here."),
        ("Great copy here.\n\n**Option 2:** Other copy.", "Great copy here."),
        ("Great copy here.\nVersion #3 - Other copy.", "Great copy here."),
        ("Great copy here.\n---\nNote: this post is about", "Great copy here."),
    ],
)
def test_output_is_cut_where_a_new_turn_or_variant_starts(raw: str, expected: str) -> None:
    assert cut_at_stop(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "<|im_start|>assistant\nGreat copy here.",  # a leading turn header is not a stop
        "assistant: Great copy here.",
        "Great copy here.\nEmail 2 of our series arrives next week.",  # no variant label
        "Save 2 hours a week. Option 2 is our premium plan.",  # mid-line mention
    ],
)
def test_copy_without_a_stop_is_kept(raw: str) -> None:
    assert cut_at_stop(raw) == raw


def test_parser_drops_the_second_variant() -> None:
    raw = "Meet Acme CRM: set up in 10 minutes. #CRM\n\nOption 2: Acme CRM is the best CRM ever built."
    title, body = parse_generation("social_post", raw, make_request("social"))
    assert body == "Meet Acme CRM: set up in 10 minutes. #CRM"


# ---- per-format token budgets --------------------------------------------------------------
def test_social_budget_is_below_the_campaign_ceiling_and_fits_its_limit() -> None:
    budget = max_tokens_for("social_post", 160)
    assert budget < 160
    # Room for the whole post at ~4 characters a token, with headroom.
    assert budget * 4 >= CHANNEL_LIMITS["social_post"].body_max * 1.2


@pytest.mark.parametrize("fmt", ["email", "blog_post"])
def test_long_formats_are_capped_by_the_ceiling(fmt: str) -> None:
    assert max_tokens_for(fmt, 160) == 160
    assert max_tokens_for(fmt, 40) == 40


def test_budgets_grow_with_the_format_limits() -> None:
    budgets = [max_tokens_for(fmt, 10_000) for fmt in ("social_post", "email", "blog_post")]
    assert budgets == sorted(budgets) and len(set(budgets)) == 3


@pytest.mark.parametrize("fmt, ceiling", [("flyer", 160), ("social_post", 0)])
def test_budget_rejects_unknown_format_or_empty_ceiling(fmt: str, ceiling: int) -> None:
    with pytest.raises(ValueError):
        max_tokens_for(fmt, ceiling)


# ---- message-based relevance and near-duplicates ----------------------------------------------
def test_message_text_names_product_message_topic_and_keywords() -> None:
    from agency.agents.relevance import message_text
    from agency.contracts import MessageBrief

    message = MessageBrief("c1:m1", "setup", "Get going in ten minutes.", "Start free", keywords=["onboarding", "import"])
    assert message_text(brief(), message) == "Acme CRM. Get going in ten minutes. setup. onboarding, import."
    # A topic the message already names is not repeated; the CTA never counts.
    message = MessageBrief("c1:m1", "ten minutes", "Get going in ten minutes.", "Start free")
    assert message_text(brief(), message) == "Acme CRM. Get going in ten minutes."
    with pytest.raises(ValueError):
        message_text(brief(product=""), MessageBrief("c1:m1", "", "", "Start"))


def test_unit_vector() -> None:
    from agency.agents.relevance import unit_vector

    assert unit_vector([3.0, 4.0]) == pytest.approx([0.6, 0.8])
    with pytest.raises(ValueError):
        unit_vector([0.0, 0.0])


def test_near_duplicate_threshold() -> None:
    from agency.agents.relevance import NEAR_DUPLICATE_THRESHOLD, is_near_duplicate

    assert is_near_duplicate(NEAR_DUPLICATE_THRESHOLD)
    assert not is_near_duplicate(NEAR_DUPLICATE_THRESHOLD - 0.001)
    assert not is_near_duplicate(None)
    with pytest.raises(ValueError):
        is_near_duplicate(math.nan)
