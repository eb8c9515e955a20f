"""Compliance agent: PII blocked and redacted, claims checked against the brief, limits."""

from __future__ import annotations

import pytest

from agency.agents.compliance import check_compliance, luhn_valid
from agency.contracts import ComplianceRequest, ContentDraft

FILLER = "Acme CRM keeps every customer conversation in one place for your whole team."
CLAIMS = ["Set up in 10 minutes", "Cuts admin time by 30%"]


def check(body: str, fmt: str = "social_post", title: str = "", claims: list[str] = CLAIMS):
    channel = {"social_post": "social", "email": "email", "blog_post": "blog"}[fmt]
    draft = ContentDraft("c1:x:1", "c1", channel, fmt, title, body, "smollm2", 10, 20)
    return check_compliance(ComplianceRequest(draft=draft, key_claims=claims))


def rules(result) -> dict[str, str]:
    return {f.rule: f.severity for f in result.findings}


@pytest.mark.parametrize(
    "card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559", "378282246310005"]
)
def test_luhn_valid_card_numbers_are_blocked_and_redacted(card: str) -> None:
    result = check(f"{FILLER} Pay with {card} now.")
    assert not result.passed
    assert rules(result)["pii.credit_card"] == "block"
    assert "[card removed]" in result.sanitized_body
    assert card not in result.sanitized_body
    # The finding must not leak the number it found.
    assert all(card not in f.excerpt and card not in f.message for f in result.findings)


@pytest.mark.parametrize("digits", ["4111 1111 1111 1112", "1234567890123", "Order 0000 1111 2222 3334"])
def test_digit_strings_failing_luhn_are_not_cards(digits: str) -> None:
    result = check(f"{FILLER} Reference {digits}.")
    assert "pii.credit_card" not in rules(result)


@pytest.mark.parametrize(
    "phone",
    ["(555) 123-4567", "555-123-4567", "555.123.4567", "555 123 4567", "1-800-555-0199",
     "+1 555 123 4567", "+44 20 7946 0958", "+49 30 1234567", "+33 1 23 45 67 89"],
)
def test_phone_numbers_are_blocked_and_redacted(phone: str) -> None:
    result = check(f"{FILLER} Call {phone} today.")
    assert rules(result).get("pii.phone") == "block"
    assert result.sanitized_body.endswith("Call [phone removed] today.")


@pytest.mark.parametrize(
    "text",
    ["Launching in 2026 for $49.99 a month.", "Plans from $1,299.00 per year.", "Join 10,000 teams.",
     "Offer ends 2026-03-31.", "Open 9-5 on weekdays."],
)
def test_years_prices_and_dates_are_not_personal_data(text: str) -> None:
    result = check(f"{FILLER} {text}")
    assert not any(r.startswith("pii.") for r in rules(result))
    assert result.sanitized_body == f"{FILLER} {text}"


def test_email_addresses_are_blocked_and_redacted() -> None:
    result = check(f"{FILLER} Write to jane.doe+promo@example.co.uk for details.", fmt="email", title="Hi")
    assert rules(result)["pii.email"] == "block"
    assert "[email removed]" in result.sanitized_body
    assert "jane.doe" not in result.sanitized_body
    assert not result.passed


def test_approved_claims_pass_and_unapproved_claims_warn() -> None:
    approved = check(f"{FILLER} Acme cuts admin time by 30%.")
    assert approved.passed
    assert approved.claims_found == ["Acme cuts admin time by 30%."]
    assert "claims.unapproved" not in rules(approved)

    inflated = check(f"{FILLER} Acme cuts admin time by 90%.")
    assert inflated.passed  # a warning goes to the human reviewer, it does not block
    assert rules(inflated)["claims.unapproved"] == "warn"

    superlative = check(f"{FILLER} It is the best CRM for small teams!")
    assert rules(superlative)["claims.unapproved"] == "warn"
    assert superlative.claims_found == ["It is the best CRM for small teams!"]


@pytest.mark.parametrize("sentence", ["Results guaranteed.", "Try it risk-free today.", "It will cure your sales slump."])
def test_unapproved_absolute_promises_block(sentence: str) -> None:
    result = check(f"{FILLER} {sentence}")
    assert not result.passed
    assert rules(result)["claims.unapproved"] == "block"


def test_an_approved_guarantee_does_not_block() -> None:
    result = check(f"{FILLER} Every plan has a 30-day money-back guarantee.", claims=["30-day money-back guarantee"])
    assert result.passed


def test_plain_copy_has_no_claims() -> None:
    result = check(f"{FILLER} Best regards, the Acme team.")
    assert result.claims_found == []
    assert result.passed and result.findings == []


def test_copy_over_the_channel_limit_blocks() -> None:
    result = check("word " * 80)
    assert not result.passed
    assert rules(result)["length.max"] == "block"


def test_empty_copy_blocks_and_short_copy_warns() -> None:
    assert rules(check(""))["content.empty"] == "block"
    short = check("Hi there.")
    assert short.passed and rules(short)["length.min"] == "warn"


def test_claims_in_the_title_are_checked() -> None:
    result = check(f"{FILLER} " * 3, fmt="email", title="The #1 CRM for owners")
    assert "The #1 CRM for owners" in result.claims_found


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41x1")


@pytest.mark.parametrize(
    "body",
    [
        "Write one social media post of at most 40 words.",
        "Sure! Write a marketing email about boots. Then the email body in two short paragraphs.",
        "Product: Trailblaze boots\nAudience: hikers\nGreat boots for rain.",
    ],
)
def test_drafts_that_echo_their_instructions_block(body: str) -> None:
    result = check(body)
    assert rules(result).get("content.prompt_echo") == "block"
    assert not result.passed


def test_copy_mentioning_a_product_line_is_not_an_echo() -> None:
    result = check("Our new product: Trailblaze boots keep your feet dry on every wet trail this winter.")
    assert "content.prompt_echo" not in rules(result)


# ---- message-based copy: format spec, brand rules, CTA, duplicates ----------------------------
from agency.agents.relevance import NEAR_DUPLICATE_THRESHOLD  # noqa: E402
from agency.contracts import BrandProfile, MessageBrief  # noqa: E402

BRAND = BrandProfile(
    "acme", 2, "plain", vocabulary_use=["simple"], vocabulary_avoid=["cheap", "game changer"],
    claims_needing_substantiation=["fastest setup", "unlimited"],
)
MESSAGE = MessageBrief("c1:m1", "setup", "Acme CRM sets up in minutes.", "Start your free trial", hashtags=["AcmeCRM"])
CTA = "Start your free trial."
COPY = "Acme CRM keeps every customer conversation in one place, so small teams follow up on time."
VALID = {
    "x_post": ("", f"{COPY} {CTA} #AcmeCRM", {"cta": CTA, "hashtags": "#AcmeCRM"}),
    "linkedin_post": ("", f"{COPY} {COPY}\n\n{CTA}\n\n#AcmeCRM", {"cta": CTA, "hashtags": "#AcmeCRM"}),
    "instagram_caption": ("", f"{COPY}\n\n{CTA}\n\n#AcmeCRM #CRM #SmallBusiness", {"cta": CTA}),
    "email": ("Your pipeline, in one place", f"{COPY} {COPY}\n\n{CTA}",
              {"cta": CTA, "preheader": "Every customer conversation in one place for small teams."}),
    "blog_post": ("Follow up on time", "\n\n".join([COPY] * 4 + [CTA]),
                  {"cta": CTA, "outline": "Why follow-ups slip\nOne place\nOn time"}),
}


def check_message(fmt: str, title: str | None = None, body: str | None = None, parts: dict | None = None,
                  claims: list[str] = CLAIMS, brand: BrandProfile | None = BRAND, **kw):
    valid_title, valid_body, valid_parts = VALID[fmt]
    channel = {"blog_post": "blog", "email": "email"}.get(fmt, "social")
    draft = ContentDraft("c1:x:1", "c1", channel, fmt, valid_title if title is None else title,
                         valid_body if body is None else body, "smollm2", 10, 20,
                         parts=dict(valid_parts if parts is None else parts))
    return check_compliance(ComplianceRequest(draft=draft, key_claims=claims, brand=brand, message=MESSAGE, **kw))


@pytest.mark.parametrize("fmt", list(VALID))
def test_valid_message_copy_passes_every_format(fmt: str) -> None:
    result = check_message(fmt)
    assert result.passed and result.findings == [], result.findings


@pytest.mark.parametrize(
    "fmt, change, rule",
    [
        ("x_post", dict(body=f"{COPY} {COPY} {COPY} {CTA} #AcmeCRM"), "length.max"),
        ("x_post", dict(body=f"{COPY} {CTA}"), "parts.hashtags"),
        ("x_post", dict(body=f"{COPY} {CTA} #A1 #B2 #C3"), "parts.hashtags"),
        ("x_post", dict(body=f"{CTA} #AcmeCRM"), "length.min"),
        ("x_post", dict(title="A title"), "parts.title"),
        ("linkedin_post", dict(body=f"Short copy here, really. {CTA}"), "length.min"),
        ("linkedin_post", dict(body=f"{COPY} {COPY}\n\n{CTA}\n\n#AcmeCRM #Aa #Bb #Cc"), "parts.hashtags"),
        ("instagram_caption", dict(body=f"{COPY}\n\n{CTA}\n\n#AcmeCRM #CRM"), "parts.hashtags"),
        ("email", dict(title=""), "parts.title"),
        ("email", dict(title="A subject line that runs on far longer than sixty characters allow"), "length.max"),
        ("email", dict(parts={"cta": CTA}), "parts.preheader"),
        ("email", dict(parts={"cta": CTA, "preheader": "Too short."}), "parts.preheader"),
        ("blog_post", dict(title=""), "parts.title"),
        ("blog_post", dict(parts={"cta": CTA, "outline": "One\nTwo"}), "parts.outline"),
        ("blog_post", dict(parts={"cta": CTA, "outline": "\n".join("abcdefg")}), "parts.outline"),
        ("blog_post", dict(body=f"{COPY}\n\n{CTA}"), "length.min"),
        ("blog_post", dict(body=""), "content.empty"),
    ],
)
def test_format_spec_violations_block(fmt: str, change: dict, rule: str) -> None:
    result = check_message(fmt, **change)
    assert not result.passed
    assert {f.rule: f.severity for f in result.findings}.get(rule) == "block", result.findings


def test_missing_cta_blocks() -> None:
    result = check_message("linkedin_post", body=f"{COPY} {COPY}\n\n#AcmeCRM")
    assert rules(result)["cta.missing"] == "block"
    assert "Start your free trial" in next(f.message for f in result.findings if f.rule == "cta.missing")


@pytest.mark.parametrize("where", ["body", "title", "preheader"])
def test_banned_words_block_anywhere_whole_word_any_case(where: str) -> None:
    text = "A real Game Changer for small teams, every day of the week"
    change = {
        "body": dict(body=f"{text}. {COPY} {COPY}\n\n{CTA}"),
        "title": dict(title="A Game Changer"),
        "preheader": dict(parts={"cta": CTA, "preheader": text}),
    }[where]
    result = check_message("email", **change)
    assert rules(result)["brand.banned_word"] == "block"
    assert not result.passed


def test_banned_word_hidden_in_a_camel_case_hashtag_blocks() -> None:
    result = check_message("x_post", body=f"{COPY} {CTA} #CheapCRM")
    assert rules(result)["brand.banned_word"] == "block"


def test_banned_word_inside_a_longer_word_is_fine() -> None:
    result = check_message("x_post", body=f"Cheapest? No: worth it. {COPY} {CTA} #AcmeCRM")
    assert "brand.banned_word" not in rules(result)


def test_claims_needing_substantiation_block_unless_a_key_claim_supports_them() -> None:
    body = f"Acme has the fastest setup of any CRM. {COPY}\n\n{CTA}\n\n#AcmeCRM"
    assert rules(check_message("linkedin_post", body=body))["claims.unsubstantiated"] == "block"
    supported = check_message("linkedin_post", body=body, claims=["the fastest setup of any CRM"])
    assert "claims.unsubstantiated" not in rules(supported)


def test_near_duplicates_block_and_name_the_earlier_item() -> None:
    result = check_message("x_post", duplicate_similarity=NEAR_DUPLICATE_THRESHOLD, duplicate_of="c0:social:3")
    assert rules(result)["content.duplicate"] == "block"
    assert "near-duplicate of c0:social:3" in next(f.message for f in result.findings if f.rule == "content.duplicate")
    for similarity in (NEAR_DUPLICATE_THRESHOLD - 0.01, None):
        assert check_message("x_post", duplicate_similarity=similarity).passed


def test_off_topic_message_copy_blocks() -> None:
    assert rules(check_message("x_post", relevance=0.1))["content.off_topic"] == "block"


def test_pii_and_absolute_claims_still_apply_to_message_copy() -> None:
    result = check_message("x_post", body=f"Call 555-123-4567. Results guaranteed. {CTA} #AcmeCRM")
    assert rules(result)["pii.phone"] == "block" and rules(result)["claims.unapproved"] == "block"


def test_without_brand_or_message_only_the_format_rules_apply() -> None:
    draft = ContentDraft("c1:x:1", "c1", "social", "x_post", "", f"{COPY} #AcmeCRM", "smollm2", 1, 1)
    result = check_compliance(ComplianceRequest(draft=draft, key_claims=[]))
    assert result.passed, result.findings


def test_a_claim_word_inside_the_product_name_is_not_a_claim():
    from agency.agents.compliance import unsubstantiated_phrases
    from agency.contracts import BrandProfile

    brand = BrandProfile(tenant="t", version=1, voice="plain", claims_needing_substantiation=["waterproof"])
    product = "Trailblaze waterproof hiking boots"
    assert unsubstantiated_phrases("Meet the Trailblaze waterproof hiking boots.", [], brand, product) == []
    # The same word as the copy's own promise still needs a key claim.
    assert unsubstantiated_phrases(
        "Trailblaze waterproof hiking boots are waterproof all day.", [], brand, product
    ) == ["waterproof"]
    assert unsubstantiated_phrases("Meet the Trailblaze waterproof hiking boots.", [], brand) == ["waterproof"]
