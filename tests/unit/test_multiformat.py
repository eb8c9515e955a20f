"""Message-based copy: format specs, prompts, and parsing + structural completion of messy
SmolLM2-135M output into drafts that meet each channel's spec (checked by the validator)."""

from __future__ import annotations

import dataclasses

import pytest

from activities.content_generation import generation_seed
from agency.agents.compliance import check_compliance
from agency.agents.content import (
    build_prompt,
    choose_hashtags,
    derive_preheader,
    derived_message_line,
    feedback_hints,
    is_message_request,
    max_tokens_for,
    parse_generation,
    parse_message_draft,
)
from agency.agents.formats import (
    FORMAT_SPECS,
    as_hashtag,
    contains_phrase,
    copy_of,
    format_spec,
    hashtags_in,
    outline_lines,
    uses_format_spec,
)
from agency.contracts import (
    SOCIAL_NETWORK_FORMATS,
    BrandProfile,
    CalendarEntry,
    CampaignBrief,
    CampaignPlan,
    ChannelPlan,
    ComplianceRequest,
    ContentDraft,
    ContentFormat,
    GenerationRequest,
    MessageBrief,
    Persona,
)

BRIEF = CampaignBrief(
    tenant="northwind-outdoor", product="Trailblaze waterproof hiking boots",
    audience="weekend hikers aged 25-45 who hike in wet weather", goals=["sales"],
    channels=["blog", "social", "email"], total_budget_cents=600_000, start_date="2026-12-07",
    end_date="2026-12-20", key_claims=["waterproof for 8 hours of rain", "free returns for 60 days"],
)
PLAN = CampaignPlan(
    "c1", "conversion", ["Dry feet"], "warm and practical",
    [ChannelPlan(c, "conversion", 1 / 3, 0.03, 0.02, 1) for c in ("blog", "social", "email")], 14, [], False,
)
BRAND = BrandProfile(
    "northwind-outdoor", 3, "warm, practical, plain-spoken; no hype",
    vocabulary_use=["trail", "dry", "grip"], vocabulary_avoid=["cheap", "revolutionary", "best ever"],
    claims_needing_substantiation=["waterproof", "lifetime warranty"],
    personas=[Persona("Wet-weather weekender", "hikes most weekends, rain or shine")],
)
MESSAGE = MessageBrief(
    "c1:m1", "hiking in the rain", "Trailblaze boots keep your feet dry on wet trails all day.",
    "Shop the Trailblaze boot", hashtags=["Trailblaze", "HikeDry"], keywords=["wet trails", "dry feet"],
)
CHANNEL = {"blog_post": "blog", "email": "email", **{f: "social" for f in SOCIAL_NETWORK_FORMATS}}
ALL_FORMATS = list(FORMAT_SPECS)

SENTENCES = (
    "Rain all weekend? Trailblaze boots are waterproof for 8 hours of rain. "
    "The grip holds on slick rock and mud. Your socks stay dry from the first mile to the last. "
)


def request(fmt: str, message: MessageBrief | None = MESSAGE, feedback: str = "", variant: int = 1,
            brand: BrandProfile | None = BRAND) -> GenerationRequest:
    entry = CalendarEntry(f"c1:{CHANNEL[fmt]}:1", CHANNEL[fmt], fmt, "2026-12-08", "Dry feet on wet trails",
                          topic="hiking in the rain", message_id="c1:m1")
    return GenerationRequest("c1", entry, BRIEF, PLAN, max_tokens=160, temperature=0.7, message=message,
                             brand=brand, variant=variant, feedback=feedback)


def parse(fmt: str, raw: str, **kw) -> tuple[str, str, dict[str, str]]:
    return parse_message_draft(fmt, raw, request(fmt, **kw))


def validate(fmt: str, title: str, body: str, parts: dict[str, str]):
    draft = ContentDraft(f"c1:{CHANNEL[fmt]}:1", "c1", CHANNEL[fmt], fmt, title, body, "smollm2", 1, 1, parts=parts)
    return check_compliance(ComplianceRequest(draft, BRIEF.key_claims, 0.6, BRAND, MESSAGE))


def blocking(result) -> set[str]:
    return {f.rule for f in result.findings if f.severity == "block"}


# ---- the registry ----------------------------------------------------------------------------
def test_every_content_format_but_the_legacy_social_post_has_a_spec() -> None:
    assert set(FORMAT_SPECS) == {f.value for f in ContentFormat} - {"social_post"}
    assert format_spec("x_post").body_max == 280
    assert (format_spec("email").title_max, format_spec("email").preheader_min, format_spec("email").preheader_max) == (60, 40, 100)
    assert (format_spec("blog_post").outline_min, format_spec("blog_post").outline_max) == (3, 6)
    assert (format_spec("instagram_caption").hashtags_min, format_spec("instagram_caption").hashtags_max) == (3, 10)
    assert format_spec("linkedin_post").hashtags_max == 3
    with pytest.raises(ValueError):
        format_spec("social_post")


def test_legacy_formats_without_a_message_keep_their_old_limits() -> None:
    assert not uses_format_spec("email", has_message=False)
    assert not uses_format_spec("social_post", has_message=True)
    assert uses_format_spec("email", has_message=True)
    assert uses_format_spec("x_post", has_message=False)
    assert not is_message_request(request("email", message=None))
    assert is_message_request(request("x_post", message=None))


def test_phrases_match_whole_words_in_any_case() -> None:
    assert contains_phrase("So CHEAP!", "cheap")
    assert not contains_phrase("the cheapest boots", "cheap")
    assert contains_phrase("Our best-ever boot", "best ever")
    assert not contains_phrase("anything", "")


def test_hashtag_helpers() -> None:
    assert hashtags_in("Dry feet #HikeDry #hikedry #1 #rain_day") == ["HikeDry", "rain_day"]
    assert as_hashtag("wet trails") == "#WetTrails"
    assert as_hashtag("#Trailblaze") == "#Trailblaze"
    assert as_hashtag("!!") == ""


# ---- prompts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_prompt_carries_message_brand_voice_persona_and_keywords(fmt: str) -> None:
    system, user = build_prompt(request(fmt))
    assert "warm, practical, plain-spoken" in system
    for text in (MESSAGE.message, BRIEF.product, "Wet-weather weekender", "wet trails", "trail, dry, grip",
                 "waterproof for 8 hours of rain"):
        assert text in user, text
    assert "Fix:" not in user
    assert len(user) < 800  # short and concrete for the small model


def test_prompt_tells_the_model_what_failed_before() -> None:
    feedback = ("The previous draft failed these checks: brand.banned_word: uses the banned word 'cheap'; "
                "length.max: x_post body too long: 312 > 280 characters.")
    _, user = build_prompt(request("x_post", feedback=feedback))
    avoid = next(line for line in user.splitlines() if line.startswith("Fix:"))
    assert "Write fewer words." in avoid and "cheap" in avoid
    assert "312" not in avoid  # rule details are translated, not pasted


def test_a_reviewers_reason_is_passed_on_in_their_words() -> None:
    assert feedback_hints("Too salesy, talk about the grip instead") == ["Too salesy, talk about the grip instead."]
    assert feedback_hints("") == []


def test_legacy_prompt_is_unchanged_without_a_message() -> None:
    _, user = build_prompt(request("email", message=None))
    assert user.startswith("Write a marketing email. First line: 'Subject: '")
    assert "Main point: Dry feet on wet trails" in user


def test_token_budgets_fit_what_the_model_writes() -> None:
    budgets = {fmt: max_tokens_for(fmt, 10_000, message_based=True) for fmt in ALL_FORMATS}
    assert budgets["x_post"] < budgets["instagram_caption"] < budgets["linkedin_post"] < budgets["blog_post"]
    assert budgets["x_post"] * 4 >= format_spec("x_post").model_chars
    assert max_tokens_for("blog_post", 120, message_based=True) == 120
    # Without a message the legacy budget of email/blog applies.
    assert max_tokens_for("email", 10_000) != budgets["email"]


def test_variant_1_keeps_the_old_seed_and_other_variants_differ() -> None:
    import hashlib

    old = int.from_bytes(hashlib.sha256(b"c1:c1:social:1:1").digest()[:8], "big") >> 1
    assert generation_seed(request("x_post")) == old
    seeds = {generation_seed(request("x_post", variant=v)) for v in (1, 2, 3)}
    assert len(seeds) == 3
    assert generation_seed(request("x_post", variant=2)) == generation_seed(request("x_post", variant=2))


# ---- parsing + completion of messy output ------------------------------------------------------
def test_x_post_gets_cta_and_brief_hashtags_within_280() -> None:
    raw = ("<|im_start|>assistant\nSure! Here is your post:\nOption 1: Rain all weekend? Trailblaze boots "
           "keep your feet dry on every trail. #hiking\n\nOption 2: Another post")
    title, body, parts = parse("x_post", raw)
    assert title == ""
    assert body == "Rain all weekend? Trailblaze boots keep your feet dry on every trail. Shop the Trailblaze boot. #Trailblaze #HikeDry"
    assert parts == {"cta": "Shop the Trailblaze boot.", "hashtags": "#Trailblaze #HikeDry"}
    assert validate("x_post", title, body, parts).passed


def test_x_post_too_long_is_trimmed_at_a_sentence_so_cta_and_tags_still_fit() -> None:
    title, body, parts = parse("x_post", SENTENCES * 4)
    assert len(body) <= 280
    assert body.endswith("Shop the Trailblaze boot. #Trailblaze #HikeDry")
    copy = copy_of(body, MESSAGE.cta)
    assert copy.endswith(".") and SENTENCES.startswith(copy.split(" Your socks")[0])
    assert validate("x_post", title, body, parts).passed


def test_cta_the_model_wrote_is_not_repeated() -> None:
    _, body, _ = parse("linkedin_post", SENTENCES + "Shop the Trailblaze boot today!")
    assert body.lower().count("shop the trailblaze boot") == 1


def test_model_hashtags_are_kept_when_valid_and_banned_ones_dropped() -> None:
    spec = format_spec("instagram_caption")
    tags = choose_hashtags(spec, MESSAGE, ["rainyday", "cheap", "x" * 40], BRAND, BRIEF.product)
    assert tags == ["#Trailblaze", "#HikeDry", "#rainyday"]
    # Too few: filled from the brief's keywords, never beyond the maximum.
    bare = dataclasses.replace(MESSAGE, hashtags=[])
    assert choose_hashtags(spec, bare, [], BRAND, BRIEF.product) == ["#WetTrails", "#DryFeet", "#HikingInTheRain"]
    assert len(choose_hashtags(format_spec("x_post"), MESSAGE, ["rain", "boots"], BRAND, BRIEF.product)) == 2


def test_instagram_caption_ends_with_three_or_more_hashtags() -> None:
    title, body, parts = parse("instagram_caption", "Puddles? Bring them on. #rain #boots #hike #mud")
    assert parts["hashtags"].split() == ["#Trailblaze", "#HikeDry", "#rain", "#boots", "#hike", "#mud"]
    assert body.endswith("Shop the Trailblaze boot.\n\n" + parts["hashtags"])
    assert validate("instagram_caption", title, body, parts).passed


def test_email_without_subject_gets_one_from_the_message_and_a_preheader() -> None:
    raw = ("Dear [First Name],\n\nRain all weekend? Trailblaze boots are waterproof for 8 hours of rain, so your "
           "socks stay dry.\n\nThe grip holds on slick rock.\n\nBest regards,\n[Your Name]")
    title, body, parts = parse("email", raw)
    assert title == "Trailblaze boots keep your feet dry on wet trails all day"
    assert parts["preheader"] == "Rain all weekend? Trailblaze boots are waterproof for 8 hours of rain, so your socks stay dry."
    assert body.endswith("The grip holds on slick rock.\n\nShop the Trailblaze boot.")
    assert "Best regards" not in body and "[" not in body
    assert parts["cta"] == "Shop the Trailblaze boot."
    assert validate("email", title, body, parts).passed


def test_email_subject_is_trimmed_to_60_without_a_dangling_word() -> None:
    long_subject = "Subject: Trailblaze boots keep your feet dry on wet trails and rocky mountain paths all winter long"
    title, _, _ = parse("email", f"{long_subject}\n\n{SENTENCES}")
    assert 0 < len(title) <= 60 and not title.endswith(" and")
    assert derived_message_line("Trailblaze boots keep your feet dry on wet trails, so a rainy weekend is fine", 60) \
        == "Trailblaze boots keep your feet dry on wet trails"


def test_preheader_bounds_and_fallback_to_the_message() -> None:
    spec = format_spec("email")
    assert derive_preheader("Hi there,\n\nShort.", MESSAGE, spec) == MESSAGE.message
    long_first = "Trailblaze " + "boots keep your feet dry " * 10 + "."
    assert 40 <= len(derive_preheader(long_first, MESSAGE, spec)) <= 100
    short = dataclasses.replace(MESSAGE, message="Dry feet, all weekend.")
    assert derive_preheader("", short, spec) == "Dry feet, all weekend. Shop the Trailblaze boot."


def test_blog_outline_comes_from_the_models_headings() -> None:
    raw = ("# Dry Feet on Wet Trails\n\n## Why wet feet end hikes\nSoggy socks cause blisters and cold toes. " + SENTENCES
           + "\n\n## Grip that holds\nThe lugs bite into mud and wet rock so you keep your footing on the way down."
           + "\n\n## Before your next trip\nLace them up at home and walk a few miles before a long rainy weekend.")
    title, body, parts = parse("blog_post", raw)
    assert title == "Dry Feet on Wet Trails"
    assert outline_lines(parts["outline"]) == ["Why wet feet end hikes", "Grip that holds", "Before your next trip"]
    assert "##" not in body and body.count("\n\n") == 3  # three sections, then the CTA
    assert validate("blog_post", title, body, parts).passed


def test_blog_outline_is_derived_from_paragraphs_when_the_model_gives_none() -> None:
    raw = "Keep Your Feet Dry\n\n" + SENTENCES + "Lace them up at home and walk a few miles first. Then head out."
    title, body, parts = parse("blog_post", raw)
    headings = outline_lines(parts["outline"])
    assert 3 <= len(headings) <= 6
    paragraphs = body.split("\n\n")[:-1]  # the last is the CTA
    assert len(paragraphs) == len(headings)
    for heading, paragraph in zip(headings, paragraphs):
        assert paragraph.lower().startswith(heading.lower())
    assert validate("blog_post", title, body, parts).passed


def test_blog_without_a_usable_title_gets_one_from_the_message() -> None:
    title, _, _ = parse("blog_post", "Bathrooms: 5,642\n\n" + SENTENCES * 3)
    assert title == "Trailblaze boots keep your feet dry on wet trails all day"


def test_sentences_that_would_block_are_dropped_not_rewritten() -> None:
    raw = ("Trailblaze boots keep the rain out on every trail. They are so cheap! Call 555-123-4567 to order. "
           "They come with a lifetime warranty. Results guaranteed. Now 12% off this week. "
           "Write only the requested text, in plain English. Grip that holds on wet rock.")
    _, body, _ = parse("linkedin_post", raw)
    copy = copy_of(body, MESSAGE.cta)
    assert "Trailblaze boots keep the rain out on every trail." in copy and "Grip that holds on wet rock." in copy
    for gone in ("cheap", "555", "lifetime", "guaranteed", "12%", "requested text"):
        assert gone not in body


def test_substantiated_claims_and_a_truncated_last_sentence() -> None:
    raw = "Trailblaze boots are waterproof for 8 hours of rain. The grip holds on wet rock. And the lining keeps"
    _, body, _ = parse("instagram_caption", raw)
    assert "waterproof for 8 hours of rain" in body
    assert "lining keeps" not in body


def test_too_little_copy_leads_with_the_message_then_approved_claims_and_never_invents() -> None:
    title, body, parts = parse("linkedin_post", "Rain? Go anyway.")
    assert body.startswith(MESSAGE.message + " Waterproof for 8 hours of rain.")
    assert len(body) >= format_spec("linkedin_post").body_min
    words = set(body.replace("\n", " ").split())
    brief_text = " ".join([MESSAGE.message, *BRIEF.key_claims, "Waterproof", "rain.", "days."])
    allowed = set(f"{brief_text} Rain? Go anyway. {parts['cta']} {parts['hashtags']}".split())
    assert words <= allowed
    assert validate("linkedin_post", title, body, parts).passed
    # Enough copy of its own: nothing is added.
    _, body, _ = parse("linkedin_post", SENTENCES)
    assert body.startswith("Rain all weekend?")


def test_empty_or_garbage_output_fails_validation_for_regeneration() -> None:
    for raw in ("", "<|im_end|>", "1512-TRAILBALEANHISHOOTBAL - 6pm 24/7-SELFMADULLS!"):
        title, body, parts = parse("blog_post", raw)
        assert not validate("blog_post", title, body, parts).passed


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_realistic_output_meets_every_formats_spec(fmt: str) -> None:
    raw = ("Sure! Here's a draft:\n\n**Title:** Dry Feet, Every Trail\n\n" + SENTENCES
           + "\n\nLace them up and walk a few miles first. Then head out into the weather.\n\nBest regards,\nThe team")
    title, body, parts = parse(fmt, raw)
    result = validate(fmt, title, body, parts)
    assert result.passed, result.findings
    assert "Here's" not in body and "Best regards" not in body


def test_per_network_format_without_a_message_uses_the_plans_call_to_action() -> None:
    _, body, parts = parse("x_post", "Dry feet on every wet trail this winter.", message=None)
    assert parts["cta"] == "Get started with Trailblaze waterproof hiking boots today."
    assert "#" in body  # the minimum hashtag comes from the topic


def test_legacy_parsing_is_unchanged() -> None:
    title, body = parse_generation("email", "Subject: Hello\n\nBody text here.", request("email", message=None))
    assert (title, body) == ("Hello", "Body text here.")


@pytest.mark.parametrize("sentences", [3, 4, 5, 7])
def test_blog_sections_regrouped_into_exactly_three_when_the_model_wrote_few_paragraphs(sentences: int) -> None:
    text = " ".join(f"Sentence number {i} talks about dry feet on a wet trail for a while." for i in range(sentences))
    _, body, parts = parse("blog_post", "Dry Feet\n\n" + text)
    assert len(outline_lines(parts["outline"])) == 3
    assert len(body.split("\n\n")) == 4  # three sections + CTA


def test_made_up_labels_links_and_task_talk_are_not_copy() -> None:
    raw = ("Sentence: Dry feet make a wet trail fun. Forum: https://www.example-boots.com/forum?v=1 is here. "
           "I'm happy to help with your marketing emails. The grip holds on slick rock and mud all day.")
    _, body, _ = parse("linkedin_post", raw)
    copy = copy_of(body, MESSAGE.cta)
    assert "Dry feet make a wet trail fun." in copy and "The grip holds on slick rock and mud all day." in copy
    for gone in ("Sentence:", "http", "happy to help"):
        assert gone not in body
