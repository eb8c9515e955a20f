"""Content agent: prompts for the small model, parsing its output, channel limits."""

from __future__ import annotations

import pytest

from agency.agents.content import (
    CHANNEL_LIMITS,
    build_prompt,
    content_issues,
    echoed_instruction,
    enforce_limits,
    parse_generation,
)
from agency.contracts import CalendarEntry, CampaignBrief, CampaignPlan, ChannelPlan, GenerationRequest

FORMATS = {"social": "social_post", "email": "email", "blog": "blog_post"}


def make_request(channel: str, angle: str = "Set up in 10 minutes") -> GenerationRequest:
    brief = CampaignBrief(
        tenant="acme", product="Acme CRM", audience="small business owners", goals=["signups"],
        channels=[channel], total_budget_cents=1000, start_date="2026-03-01", end_date="2026-03-07",
        key_claims=["Set up in 10 minutes"],
    )
    plan = CampaignPlan(
        campaign_id="c1", objective="conversion", key_messages=[angle], tone="practical and friendly",
        channels=[ChannelPlan(channel, "conversion", 1.0, 0.03, 0.02, 1)], duration_days=7,
        rationale=[], used_history=False,
    )
    entry = CalendarEntry(f"c1:{channel}:1", channel, FORMATS[channel], "2026-03-03", angle)
    return GenerationRequest("c1", entry, brief, plan, max_tokens=160, temperature=0.7)


@pytest.mark.parametrize("channel", ["social", "email", "blog"])
def test_prompt_names_product_audience_angle_tone_and_call_to_action(channel: str) -> None:
    system, user = build_prompt(make_request(channel, angle="Why teams switch"))
    assert "copywriter" in system
    for text in ("Acme CRM", "small business owners", "Why teams switch", "practical and friendly",
                 "Get started with Acme CRM today", "Set up in 10 minutes"):
        assert text in user


def test_system_turn_is_per_channel_and_keeps_the_shared_rules() -> None:
    systems = {channel: build_prompt(make_request(channel))[0] for channel in FORMATS}
    assert len(set(systems.values())) == 3
    for system in systems.values():
        assert "Do not invent prices" in system
    assert "social media posts" in systems["social"] and "280 characters" in systems["social"]
    assert "subject line" in systems["email"]
    assert "blog posts" in systems["blog"]


def test_echo_of_a_channel_system_prompt_is_detected() -> None:
    system = build_prompt(make_request("social"))[0]
    assert echoed_instruction("", system) is not None


def test_prompt_format_instructions_differ_per_channel() -> None:
    assert "Subject:" in build_prompt(make_request("email"))[1]
    assert "title" in build_prompt(make_request("blog"))[1]
    assert "40 words" in build_prompt(make_request("social"))[1]


def test_email_subject_line_is_parsed_and_chat_noise_removed() -> None:
    raw = (
        "<|im_start|>assistant\nSure! Here is your email:\n**Subject:** Save an hour a day\n\n"
        "Dear [First Name],\n\nAcme CRM sets up in 10 minutes.\nYour team  will love it.\n\n"
        "Best regards,\n[Your Name]<|im_end|>"
    )
    title, body = parse_generation("email", raw, make_request("email"))
    assert title == "Save an hour a day"
    assert body.startswith("Hi there,\n\nAcme CRM sets up in 10 minutes. Your team will love it.")
    assert body.endswith("Best regards,\nThe Acme CRM team")
    for noise in ("<|", "assistant", "**", "[", "Subject", "Here is"):
        assert noise not in body


def test_email_without_subject_gets_a_title_from_angle_and_product() -> None:
    title, body = parse_generation("email", "Acme CRM helps you close deals.", make_request("email"))
    assert title == "Acme CRM: Set up in 10 minutes"
    assert body == "Acme CRM helps you close deals."


def test_blog_title_from_first_line_or_markdown_heading() -> None:
    raw = "# Five Ways Acme CRM Saves Time\n\nFirst paragraph here.\n\nSecond paragraph here."
    title, body = parse_generation("blog_post", raw, make_request("blog"))
    assert title == "Five Ways Acme CRM Saves Time"
    assert body == "First paragraph here.\n\nSecond paragraph here."


def test_social_copy_has_no_title_and_is_one_paragraph() -> None:
    raw = "assistant: Meet Acme CRM!\n\nSet up in 10 minutes. #CRM"
    title, body = parse_generation("social_post", raw, make_request("social"))
    assert title == ""
    assert body == "Meet Acme CRM! Set up in 10 minutes. #CRM"


def test_social_copy_is_trimmed_to_280_at_a_word_boundary() -> None:
    words = "Acme CRM keeps every customer conversation in one place for busy owners"
    raw = " ".join([words] * 10)  # no sentence ends: must cut between words
    _, body = parse_generation("social_post", raw, make_request("social"))
    assert len(body) <= 280
    assert raw.startswith(body)
    assert raw[len(body)] == " "  # the next character was a space: no word was cut


def test_trimming_prefers_the_last_full_sentence() -> None:
    sentence = "Acme CRM keeps your pipeline tidy. "
    _, body = enforce_limits("social_post", "", sentence * 12)
    assert len(body) <= 280
    assert body.endswith("tidy.")


@pytest.mark.parametrize("fmt", ["email", "blog_post"])
def test_titles_are_trimmed_to_their_limit_without_cutting_words(fmt: str) -> None:
    title, _ = enforce_limits(fmt, "Grow " * 40, "body")
    assert 0 < len(title) <= CHANNEL_LIMITS[fmt].title_max
    assert title.split() == ["Grow"] * len(title.split())


def test_content_issues_report_violations() -> None:
    assert content_issues("social_post", "", "x" * 300) == ["body too long: 300 > 280 characters"]
    issues = content_issues("email", "", "Too short.")
    assert "title is empty" in issues
    assert any(i.startswith("body too short") for i in issues)
    assert content_issues("blog_post", "A title", "") == ["body is empty"]
    assert content_issues("email", "Hello", "Long enough body text. " * 10) == []


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError):
        enforce_limits("fax", "", "body")
