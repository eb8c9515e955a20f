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
