"""Prompts for the small generation model and clean-up of what it writes.

SmolLM2-135M-Instruct is weak: prompts ask for one short, concrete thing, and the
parser turns whatever comes back into a title and body that fit the channel's limits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agency.agents.formats import (
    MESSAGE_ONLY_FORMATS,
    FormatSpec,
    as_hashtag,
    contains_phrase,
    format_spec,
    hashtag_words,
    hashtags_in,
    phrases_in,
)
from agency.contracts import BrandProfile, ContentFormat, GenerationRequest, MessageBrief


@dataclass(frozen=True)
class FormatLimits:
    title_max: int  # 0: the format has no title
    body_min: int
    body_max: int

    @property
    def needs_title(self) -> bool:
        return self.title_max > 0


CHANNEL_LIMITS: dict[str, FormatLimits] = {
    ContentFormat.SOCIAL_POST.value: FormatLimits(title_max=0, body_min=40, body_max=280),
    ContentFormat.EMAIL.value: FormatLimits(title_max=78, body_min=120, body_max=2000),
    ContentFormat.BLOG_POST.value: FormatLimits(title_max=90, body_min=300, body_max=4000),
}

SYSTEM_PROMPT = (
    "You are a marketing copywriter. Write only the requested text, in plain English. "
    "Do not invent prices, numbers, guarantees or contact details."
)

# The ChatML system turn per format: the shared rules plus the channel's voice and shape.
# The small model follows a short, concrete system turn better than rules buried in the prompt.
SYSTEM_PROMPTS: dict[str, str] = {
    ContentFormat.SOCIAL_POST.value: SYSTEM_PROMPT + (
        " You write social media posts: one short, punchy paragraph in a conversational voice, "
        "under 280 characters. Write a single post, never a list of options."
    ),
    ContentFormat.EMAIL.value: SYSTEM_PROMPT + (
        " You write marketing emails: a clear subject line, then a friendly, direct body "
        "addressed to one reader. Write a single email and sign it from the brand."
    ),
    ContentFormat.BLOG_POST.value: SYSTEM_PROMPT + (
        " You write blog posts: a plain title, then short informative paragraphs that explain "
        "and give practical detail. Write a single post with no notes or comments after it."
    ),
}

# Length control: token budget per format from its character limits. English copy from this
# tokenizer averages about 4 characters per token; the headroom covers labels ("Subject:"),
# hashtags and a sentence the parser will trim, so the model is not cut mid-thought.
CHARS_PER_TOKEN = 4
TOKEN_HEADROOM = 1.25
LABEL_TOKENS = 8

_CALL_TO_ACTION = {
    "awareness": "Learn more about {product}.",
    "consideration": "See how {product} works for you.",
    "conversion": "Get started with {product} today.",
}

_FORMAT_INSTRUCTIONS = {
    ContentFormat.SOCIAL_POST.value: (
        "Write one social media post of at most 40 words. No title. One or two hashtags at most."
    ),
    ContentFormat.EMAIL.value: (
        "Write a marketing email. First line: 'Subject: ' and a subject of at most 10 words. "
        "Then the email body in two short paragraphs."
    ),
    ContentFormat.BLOG_POST.value: (
        "Write a short blog post. First line: the title, at most 12 words. "
        "Then three short paragraphs."
    ),
}

# Role labels and special tokens a chat model may leak into its answer.
_CHAT_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>")
_ROLE_LABEL = re.compile(r"^\s*(?:system|user|assistant|copywriter)\s*:?\s*$|^\s*(?:system|user|assistant)\s*:\s*", re.I)
_SUBJECT_LINE = re.compile(r"^\s*(?:subject(?:\s+line)?|title|headline)\s*:\s*(.*)$", re.I)
_BODY_LABEL = re.compile(r"^\s*(?:body|email body|post|blog post|email)\s*:\s*", re.I)
_PLACEHOLDER = re.compile(r"\[(?:your|insert|company|name|link|recipient|first name)[^\]]{0,40}\]", re.I)
_MARKDOWN_NOISE = re.compile(r"^\s*#{1,6}\s*|\*\*|__|^\s*[-*_]{3,}\s*$")
_EMPTY_GREETING = re.compile(r"^(dear|hi|hello|hey)\s*,?$", re.I)
_DANGLING_SIGN_OFF = re.compile(
    r"(?:best(?: regards| wishes)?|regards|kind regards|sincerely|cheers|thanks|thank you|warmly),?$", re.I
)
_PREAMBLE = re.compile(r"^\s*(?:here is|here's|sure|certainly|of course)\b.*:\s*$", re.I)
_PROMPT_LABEL = re.compile(
    r"^\s*(Product|Audience|Main point|Tone|Facts you may use|End with|Message|Voice|Mention|Avoid|Fix|Use words like)\s*:",
    re.I | re.M,
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")

# Where the model starts a new chat turn or a second variant of the copy: everything from
# there on is not part of the one piece asked for. Matched only after some copy was written,
# so a leading "<|im_start|>assistant" or "Option 1:" does not empty the output.
_STOP_SEQUENCES = re.compile(
    r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>"
    r"|^[ \t]*(?:user|human|system|assistant)[ \t]*:"
    r"|^[ \t*#>_]*(?:post|option|variant|version|variation|alternative|example|email|tweet|draft)"
    r"[ \t]*(?:#|no\.?)?[ \t]*[2-9][ \t*_]*(?:[:.)\-–—]|$)"
    r"|^[ \t]*(?:-{3,}|\*{3,}|_{3,}|={3,})[ \t]*$",
    re.I | re.M,
)
_COPY_CHARACTER = re.compile(r"\w")
# A turn header the model may open its answer with; it is not copy.
_LEADING_TURN = re.compile(r"^(?:\s*(?:<\|im_start\|>)?\s*(?:assistant|copywriter)\b\s*:?)+", re.I)


def _normalize_words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


# Instruction sentences of at least four words, normalized, for echo detection.
_INSTRUCTION_SENTENCES = tuple(
    sentence
    for prompt in (*SYSTEM_PROMPTS.values(), *_FORMAT_INSTRUCTIONS.values())
    for sentence in (_normalize_words(part) for part in re.split(r"[.:]\s", prompt))
    if len(sentence.split()) >= 4
)


def call_to_action(req: GenerationRequest) -> str:
    role = next((c.role for c in req.plan.channels if c.channel == req.entry.channel), req.plan.objective)
    return call_to_action_for(role, req.brief.product)


def call_to_action_for(role: str, product: str) -> str:
    """The call to action for a channel role (or campaign objective); conversion wording by default."""
    template = _CALL_TO_ACTION.get(role, _CALL_TO_ACTION["conversion"])
    return template.format(product=product.strip())


def build_prompt(req: GenerationRequest) -> tuple[str, str]:
    """(system prompt, user prompt) for one piece of content."""
    if is_message_request(req):
        return build_message_prompt(req)
    fmt = req.entry.format
    if fmt not in _FORMAT_INSTRUCTIONS:
        raise ValueError(f"unknown content format {fmt!r}")
    lines = [
        _FORMAT_INSTRUCTIONS[fmt],
        f"Product: {req.brief.product.strip()}",
        f"Audience: {req.brief.audience.strip()}",
        f"Main point: {req.entry.angle.strip()}",
        f"Tone: {req.plan.tone}",
    ]
    claims = [c.strip() for c in req.brief.key_claims if c.strip()]
    if claims:
        lines.append("Facts you may use: " + "; ".join(claims))
    lines.append(f"End with: {call_to_action(req)}")
    return SYSTEM_PROMPTS[fmt], "\n".join(lines)


def max_tokens_for(fmt: str, ceiling: int, *, message_based: bool = False) -> int:
    """Completion-token budget for one piece of the format: enough for its character limits
    with headroom, never more than ``ceiling`` (the campaign's configured maximum).

    Message-based copy budgets only what the model writes (``FormatSpec.model_chars``): the
    CTA and hashtags are added by the structure, and fewer tokens is faster on the CPU."""
    if ceiling < 1:
        raise ValueError(f"max_tokens must be at least 1, got {ceiling}")
    if message_based or fmt in MESSAGE_ONLY_FORMATS:
        spec = format_spec(fmt)
        chars = spec.title_max + spec.model_chars
    else:
        limits = _limits(fmt)
        chars = limits.title_max + limits.body_max
    budget = math.ceil(chars / CHARS_PER_TOKEN * TOKEN_HEADROOM) + LABEL_TOKENS
    return min(ceiling, budget)


def cut_at_stop(raw: str) -> str:
    """The model's output up to the first stop sequence that follows some copy."""
    for match in _STOP_SEQUENCES.finditer(raw):
        before = raw[: match.start()]
        if _COPY_CHARACTER.search(_CHAT_TOKENS.sub("", _LEADING_TURN.sub("", before))):
            return before.rstrip()
    return raw


def parse_generation(fmt: str, raw: str, req: GenerationRequest) -> tuple[str, str]:
    """(title, body) from raw model output, cleaned and within the format's limits."""
    limits = _limits(fmt)
    lines = _clean_lines(cut_at_stop(raw))
    title = ""
    if limits.needs_title:
        title, lines = _extract_title(fmt, lines)
    else:
        lines = [line for line in lines if not _SUBJECT_LINE.match(line)]
    body = _join_body(fmt, lines)
    if fmt == ContentFormat.EMAIL.value and _DANGLING_SIGN_OFF.search(body):
        # The signer's name was a placeholder: sign as the brand instead.
        body = f"{body}\nThe {req.brief.product.strip()} team"
    if limits.needs_title and not title:
        title = derived_title(req)
    return enforce_limits(fmt, title, body)


def derived_title(req: GenerationRequest) -> str:
    """Fallback title from the piece's angle, naming the product when the angle doesn't."""
    angle, product = req.entry.angle.strip().rstrip("."), req.brief.product.strip()
    if product and product.lower() not in angle.lower():
        return f"{product}: {angle}" if angle else product
    return angle or product


def enforce_limits(fmt: str, title: str, body: str) -> tuple[str, str]:
    """Trim title and body to the format's maxima at sentence or word boundaries."""
    limits = _limits(fmt)
    title = " ".join(title.split())
    title = _trim_words(title, limits.title_max) if limits.needs_title else ""
    return title, _trim_body(body.strip(), limits.body_max)


def echoed_instruction(title: str, body: str) -> str | None:
    """The prompt line a draft repeats back instead of writing copy, if any.

    A small model often answers with its own instructions ("Write one social media post...");
    such a draft must be regenerated, never offered for approval.
    """
    text = _normalize_words(f"{title}\n{body}")
    for instruction in _INSTRUCTION_SENTENCES:
        if instruction in text:
            return instruction
    labels = _PROMPT_LABEL.findall(f"{title}\n{body}")
    return labels[0] if len(labels) >= 2 else None


def content_issues(fmt: str, title: str, body: str) -> list[str]:
    """Human-readable violations of the format's limits; empty when the copy fits."""
    return [message for _, message in limit_violations(fmt, title, body)]


def limit_violations(fmt: str, title: str, body: str) -> list[tuple[str, str]]:
    """(code, message) per violation; codes: body.empty, body.short, body.long,
    title.empty, title.long, title.unexpected."""
    limits = _limits(fmt)
    found: list[tuple[str, str]] = []
    if not body.strip():
        found.append(("body.empty", "body is empty"))
    elif len(body) < limits.body_min:
        found.append(("body.short", f"body too short: {len(body)} < {limits.body_min} characters"))
    if len(body) > limits.body_max:
        found.append(("body.long", f"body too long: {len(body)} > {limits.body_max} characters"))
    if limits.needs_title and not title.strip():
        found.append(("title.empty", "title is empty"))
    if limits.needs_title and len(title) > limits.title_max:
        found.append(("title.long", f"title too long: {len(title)} > {limits.title_max} characters"))
    if not limits.needs_title and title.strip():
        found.append(("title.unexpected", f"{fmt} has no title but one was given"))
    return found


# ---- helpers --------------------------------------------------------------------------
def _limits(fmt: str) -> FormatLimits:
    if fmt not in CHANNEL_LIMITS:
        raise ValueError(f"unknown content format {fmt!r}")
    return CHANNEL_LIMITS[fmt]


def _clean_lines(raw: str) -> list[str]:
    """Lines without chat tokens, role labels, markdown markers or template placeholders."""
    text = _CHAT_TOKENS.sub("\n", raw)
    cleaned: list[str] = []
    for line in text.splitlines():
        line = _ROLE_LABEL.sub("", line)
        line = _MARKDOWN_NOISE.sub("", line)
        line = _PLACEHOLDER.sub("", line)
        line = _BODY_LABEL.sub("", line)
        line = re.sub(r"\s+([,.!?])", r"\1", " ".join(line.split()))
        if _PREAMBLE.match(line):
            continue
        # A greeting whose name placeholder was removed still needs someone to greet.
        cleaned.append("Hi there," if _EMPTY_GREETING.match(line) else line)
    return cleaned


def _extract_title(fmt: str, lines: list[str]) -> tuple[str, list[str]]:
    """An explicit Subject:/Title: line wins; a blog's short first line counts as its title."""
    for i, line in enumerate(lines):
        match = _SUBJECT_LINE.match(line)
        if match and match.group(1).strip():
            return match.group(1).strip().strip("\"'"), lines[:i] + lines[i + 1 :]
    if fmt == ContentFormat.BLOG_POST.value:
        first = next((i for i, line in enumerate(lines) if line), None)
        if first is not None and _looks_like_title(lines[first], lines[first + 1 :]):
            return lines[first].strip("\"'"), lines[first + 1 :]
    return "", lines


def _looks_like_title(line: str, rest: list[str]) -> bool:
    short = len(line) <= CHANNEL_LIMITS[ContentFormat.BLOG_POST.value].title_max
    return short and not line.endswith((".", ",", ";")) and any(rest)


def _join_body(fmt: str, lines: list[str]) -> str:
    """Social copy is one paragraph; email and blog keep blank-line paragraph breaks."""
    if fmt == ContentFormat.SOCIAL_POST.value:
        return " ".join(line for line in lines if line)
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines + [""]:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)


def _trim_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    spaces = [m.start() for m in re.finditer(r"\s", text[: limit + 1])]
    # A single word longer than the limit has no boundary: cut it rather than exceed.
    trimmed = text[: spaces[-1]] if spaces and spaces[-1] > 0 else text[:limit]
    return trimmed.rstrip(" \n,;:-–—")


def _trim_body(body: str, limit: int) -> str:
    """Keep whole sentences when that keeps at least half the limit, else whole words."""
    if len(body) <= limit:
        return body
    window = body[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] >= limit // 2:
        return window[: ends[-1]].rstrip()
    return _trim_words(body, limit)


# ---- message-based copy: one message, one CTA, every channel format ------------------------
# The small model writes only the middle of each piece; the structure around it (CTA, hashtags,
# subject, preheader, outline) comes from the message brief, so every draft can meet its spec.
_MESSAGE_INSTRUCTIONS: dict[str, str] = {
    ContentFormat.BLOG_POST.value: (
        "Write a short blog post. First line: the title, at most 10 words. "
        "Then three short paragraphs separated by blank lines."
    ),
    ContentFormat.X_POST.value: "Write one post for X of at most 30 words. No hashtags, no links.",
    ContentFormat.LINKEDIN_POST.value: (
        "Write one LinkedIn post of four sentences about the message below, for working professionals."
    ),
    ContentFormat.INSTAGRAM_CAPTION.value: (
        "Write one Instagram caption of three lively sentences about the message below."
    ),
    ContentFormat.EMAIL.value: (
        "Write a marketing email. First line: 'Subject: ' and a subject of at most 8 words. "
        "Then the email body in two short paragraphs. Do not sign it."
    ),
}
_MESSAGE_SYSTEM_PROMPTS: dict[str, str] = {
    ContentFormat.BLOG_POST.value: SYSTEM_PROMPTS[ContentFormat.BLOG_POST.value],
    ContentFormat.X_POST.value: SYSTEM_PROMPT + (
        " You write posts for X: one short, punchy sentence or two. Write a single post, never a list."
    ),
    ContentFormat.LINKEDIN_POST.value: SYSTEM_PROMPT + (
        " You write LinkedIn posts: clear, useful and professional, in one short paragraph. "
        "Write a single post, never a list of options."
    ),
    ContentFormat.INSTAGRAM_CAPTION.value: SYSTEM_PROMPT + (
        " You write Instagram captions: warm, vivid and personal. Write a single caption, never a list."
    ),
    ContentFormat.EMAIL.value: SYSTEM_PROMPT + (
        " You write marketing emails: a clear subject line, then a friendly, direct body "
        "addressed to one reader. Write a single email."
    ),
}
# Lines of the prompt a model may copy into its answer; never copy.
_MESSAGE_LABELS = (
    "Product", "Message", "Main point", "Audience", "Voice", "Tone", "Use words like", "Mention",
    "Facts you may use", "Avoid", "Fix", "End with", "Keywords", "Hashtags", "Call to action", "CTA", "Topic",
)
_LABEL_LINE = re.compile(r"^\s*(?:" + "|".join(re.escape(label) for label in _MESSAGE_LABELS) + r")\s*:", re.I)
_FIRST_VARIANT_LABEL = re.compile(
    r"^\s*(?:option|variant|version|post|tweet|caption|draft)\s*#?\s*1\s*[:.)\-–—]\s*", re.I
)
_FORMAT_LABEL = re.compile(
    r"^\s*(?:x post|tweet|linkedin post|instagram caption|caption|blog post|post|email body|body)\s*:\s*", re.I
)
_SIGN_OFF_LINE = re.compile(
    r"^(?:best(?: regards| wishes)?|regards|kind regards|sincerely|cheers|thanks|thank you|warmly)\b.{0,40}$"
    r"|^(?:the\s+)?[\w ]{0,40}\bteam[.!]?$",
    re.I,
)
_FEEDBACK_MAX_CHARS = 220
# Finding rules of the validator -> a concrete instruction the small model can follow.
_FEEDBACK_HINTS = (
    ("length.max", "Write fewer words."),
    ("length.min", "Write a little more."),
    ("content.off_topic", "Stay on the message and name the product."),
    ("content.prompt_echo", "Write the copy itself, not the instructions."),
    ("content.duplicate", "Say it in new words."),
    ("claims.", "Use only the facts given."),
    ("pii.", "No email addresses, phone numbers or card numbers."),
    ("parts.outline", "Write three short paragraphs."),
)
# The model talking about its task instead of writing copy.
_META_SENTENCE = re.compile(
    r"\b(?:hashtags?|emojis?|copywriter|word count|characters|instructions?|"
    r"(?:marketing|this|the|an?) (?:emails?|posts?|captions?|tweets?|blog posts?)(?! series)|"
    r"here is|here's|as an ai|you asked|happy to help|i can help|i write)\b|^(?:sure|certainly|of course|okay)\b",
    re.I,
)
_QUOTED = re.compile(r"['\"“‘]([^'\"”’]{2,40})['\"”’]")


# Echo detection knows the message-based instructions too.
_INSTRUCTION_SENTENCES = _INSTRUCTION_SENTENCES + tuple(
    sentence
    for prompt in (*_MESSAGE_SYSTEM_PROMPTS.values(), *_MESSAGE_INSTRUCTIONS.values())
    for sentence in (_normalize_words(part) for part in re.split(r"[.:]\s", prompt))
    if len(sentence.split()) >= 4 and sentence not in _INSTRUCTION_SENTENCES
)
_LEADING_GREETING = re.compile(r"^(?:hi|hello|hey|dear)\b[^,.!\n]{0,30}[,!]\s*", re.I)


def is_message_request(req: GenerationRequest) -> bool:
    """Message-based copy (the coordinated set); legacy requests keep the old prompts and limits."""
    return req.message is not None or req.entry.format in MESSAGE_ONLY_FORMATS


def effective_message(req: GenerationRequest) -> MessageBrief:
    """The request's message brief; for a per-network format without one, the entry's angle and
    the plan's call to action stand in."""
    if req.message is not None:
        return req.message
    return MessageBrief(
        message_id="", topic=req.entry.topic or req.entry.angle, message=req.entry.angle,
        cta=call_to_action(req),
    )


def build_message_prompt(req: GenerationRequest) -> tuple[str, str]:
    """(system, user) for message-based copy: short, concrete lines the small model can follow."""
    fmt = req.entry.format
    format_spec(fmt)  # unknown formats fail here, not at the model
    message, brand = effective_message(req), req.brand
    system = _MESSAGE_SYSTEM_PROMPTS[fmt]
    if brand is not None and brand.voice.strip():
        system += f" Brand voice: {brand.voice.strip()}"
    lines = [
        _MESSAGE_INSTRUCTIONS[fmt],
        f"Message: {message.message.strip()}",
        f"Product: {req.brief.product.strip()}",
        f"Audience: {_audience(req, brand)}",
        f"Tone: {req.plan.tone}",
    ]
    if brand is not None and brand.vocabulary_use:
        lines.append("Use words like: " + ", ".join(brand.vocabulary_use[:4]))
    if message.keywords:
        lines.append("Mention: " + ", ".join(message.keywords[:4]))
    claims = [c.strip() for c in req.brief.key_claims if c.strip()]
    if claims:
        lines.append("Facts you may use: " + "; ".join(claims))
    avoid = feedback_hints(req.feedback, brand)
    if avoid:
        lines.append("Fix: " + " ".join(avoid))
    return system, "\n".join(lines)


def feedback_hints(feedback: str, brand: BrandProfile | None = None) -> list[str]:
    """What the next candidate must avoid, from a reviewer's reason or the failed checks' text.

    Known rule codes become short instructions; banned words and quoted phrases are named; a
    reviewer's free text is passed on, shortened, because it is the most specific hint there is.
    """
    text = " ".join(feedback.split())
    if not text:
        return []
    hints = [hint for code, hint in _FEEDBACK_HINTS if code in text]
    banned = phrases_in(text, brand.vocabulary_avoid) if brand is not None else []
    quoted = [q for q in _QUOTED.findall(text) if q not in banned]
    if banned or quoted:
        hints.append("Do not use: " + ", ".join(dict.fromkeys([*banned, *quoted])) + ".")
    if not any(code in text for code, _ in _FEEDBACK_HINTS) and "failed these checks" not in text:
        # A reviewer's own words.
        hints.append(_trim_words(text, _FEEDBACK_MAX_CHARS).rstrip(".") + ".")
    return list(dict.fromkeys(hints))


def parse_message_draft(fmt: str, raw: str, req: GenerationRequest) -> tuple[str, str, dict[str, str]]:
    """(title, body, parts) of message-based copy that meets the format's spec by structure:
    the model's copy cleaned and trimmed, then the brief's CTA and hashtags, a subject,
    preheader or outline where the format needs one. Nothing is added that the brief or the
    model's own copy does not say."""
    spec = format_spec(fmt)
    message = effective_message(req)
    lines = _message_lines(raw)
    title = ""
    if spec.needs_title:
        title, lines = _extract_title(fmt, lines)
    else:
        lines = [line for line in lines if not _SUBJECT_LINE.match(line)]
    headings: list[str] = []
    if spec.needs_outline:
        headings, lines = _take_headings(lines)
    model_tags = hashtags_in("\n".join(lines))
    copy = _join_body(ContentFormat.SOCIAL_POST.value if spec.cta_separator == " " else fmt, lines)
    copy = _strip_hashtags(copy)
    copy = _drop_unusable_sentences(copy, req, message)
    cta = cta_line(message)
    tags = choose_hashtags(spec, message, model_tags, req.brand, req.brief.product)
    suffix = spec.cta_separator + cta + (_tag_separator(spec) + " ".join(tags) if tags else "")
    copy = _fill_from_brief(copy, message, req.brief.key_claims, spec, suffix)
    copy = _trim_body(copy, max(0, spec.body_max - len(suffix))) if copy else ""
    if spec.needs_outline:
        copy, outline = _sections(copy, headings, spec, message)
    body = (copy + suffix) if copy else suffix.strip()
    parts: dict[str, str] = {"cta": cta}
    if tags:
        parts["hashtags"] = " ".join(tags)
    if spec.needs_outline:
        parts["outline"] = "\n".join(outline)
    if spec.needs_title:
        title = _usable_title(title, spec, req, message)
    if spec.needs_preheader:
        parts["preheader"] = derive_preheader(copy, message, spec)
    return title, body, parts


def cta_line(message: MessageBrief) -> str:
    """The brief's CTA verbatim, closed with a full stop when it has no end mark, then its URL."""
    cta = " ".join(message.cta.split())
    if cta and not cta.endswith((".", "!", "?")):
        cta += "."
    url = message.cta_url.strip()
    return f"{cta} {url}".strip() if url else cta


def choose_hashtags(
    spec: FormatSpec, message: MessageBrief, model_tags: list[str], brand: BrandProfile | None, product: str
) -> list[str]:
    """The brief's hashtags first, then the model's valid ones, then (only to reach the format's
    minimum) tags made from the brief's keywords, topic and product; capped at the maximum."""
    if spec.hashtags_max == 0:
        return []
    banned = brand.vocabulary_avoid if brand is not None else []
    chosen: list[str] = []

    def add(tag: str) -> None:
        seen = {t.lower() for t in chosen}
        if tag and tag.lower() not in seen and not phrases_in(hashtag_words(tag), banned):
            chosen.append(tag)

    for tag in message.hashtags:
        add(as_hashtag(tag))
    for tag in model_tags:
        if len(tag) <= 30:
            add(as_hashtag(tag))
    for source in (*message.keywords, message.topic, product):
        if len(chosen) >= spec.hashtags_min:
            break
        add(as_hashtag(source))
    return chosen[: spec.hashtags_max]


def derive_preheader(copy: str, message: MessageBrief, spec: FormatSpec) -> str:
    """The inbox preview line: the body's first sentence(s), else the message (+ CTA), within
    the preheader's bounds; always text the reader will also find in the email or brief."""
    from agency.agents.compliance import split_sentences  # compliance imports this module

    low, high = spec.preheader_min, spec.preheader_max
    opening = _LEADING_GREETING.sub("", copy.strip())
    for sentences in (
        split_sentences(opening),
        split_sentences(message.message) + [cta_line(message)],
    ):
        text = ""
        for sentence in sentences:
            text = f"{text} {sentence}".strip()
            if len(text) >= low:
                break
        text = _trim_words(text, high) if len(text) > high else text
        if low <= len(text) <= high:
            return text
    return _trim_words(" ".join(message.message.split()), high)


# ---- message-based helpers ------------------------------------------------------------------
def _audience(req: GenerationRequest, brand: BrandProfile | None) -> str:
    if brand is not None and brand.personas:
        persona = brand.personas[0]
        return f"{persona.name}: {persona.description}".strip(": ")
    return req.brief.audience.strip()


def _message_lines(raw: str) -> list[str]:
    """Cleaned lines without prompt echoes, format labels and a leading 'Option 1:'."""
    lines: list[str] = []
    for line in _clean_lines(cut_at_stop(raw)):
        if _LABEL_LINE.match(line):
            continue
        line = _FORMAT_LABEL.sub("", _FIRST_VARIANT_LABEL.sub("", line)).strip().strip('"')
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and (not lines[-1] or _SIGN_OFF_LINE.match(lines[-1])):
        lines.pop()  # sign-offs and the signer's name: the CTA closes message-based copy
    return lines


def _strip_hashtags(copy: str) -> str:
    """Trailing runs of hashtags go (the structure adds the right ones); '#word' in a
    sentence keeps its word."""
    copy = re.sub(r"(?:\s*#[A-Za-z]\w*)+\s*$", "", copy)
    copy = re.sub(r"(?<![\w#])#([A-Za-z]\w*)", r"\1", copy)
    return copy.strip()


def _tag_separator(spec: FormatSpec) -> str:
    return " " if spec.cta_separator == " " else "\n\n"


def _drop_unusable_sentences(copy: str, req: GenerationRequest, message: MessageBrief) -> str:
    """Sentences the validator would block (personal data, banned words, claims nobody
    substantiated, unapproved absolute promises), unapproved claims (invented discounts,
    superlatives), talk about the task, garbled text, the model's own go at the CTA and a last
    sentence the token budget cut off are dropped: removing text never invents facts, and the
    rest of the draft may still be good."""
    from agency.agents.compliance import blocking_sentence_reason, claim_supported, is_claim

    cta = message.cta.strip()
    key_claims = req.brief.key_claims

    # Sentences made mostly of the prompt's audience/tone/voice lines are the prompt, not copy.
    voice = req.brand.voice if req.brand is not None else ""
    echo_words = _content_words(" ".join([_audience(req, req.brand), req.plan.tone, voice]))

    def usable(sentence: str) -> bool:
        words = _content_words(sentence)
        return not (
            (cta and contains_phrase(sentence, cta))
            or (len(words) >= 2 and len(words & echo_words) >= 0.7 * len(words))
            or _META_SENTENCE.search(sentence)
            or echoed_instruction("", sentence) is not None
            or _garbled(sentence)
            or blocking_sentence_reason(sentence, key_claims, req.brand, req.brief.product) is not None
            or (is_claim(sentence) and not claim_supported(sentence, key_claims))
        )

    paragraphs = [
        [s for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s]
        for paragraph in copy.split("\n\n")
    ]
    paragraphs = [p for p in paragraphs if p]
    if paragraphs and not _SENTENCE_END.search(paragraphs[-1][-1][-3:] + " ") and sum(map(len, paragraphs)) > 1:
        paragraphs[-1].pop()  # cut off mid-sentence by the token budget
    # A made-up label opening a sentence ("Premises:", "Sentence:") is not copy; the rest may be.
    paragraphs = [[_SENTENCE_LABEL.sub("", s) for s in paragraph] for paragraph in paragraphs]
    kept = [" ".join(s for s in paragraph if s and usable(s)) for paragraph in paragraphs]
    return "\n\n".join(p for p in kept if p)


_SENTENCE_LABEL = re.compile(r"^[A-Z][a-z]{2,12}:\s+(?=\S)")
_ECHO_STOPWORDS = frozenset("a an the and or of for to in on with by your our is are who it this that".split())


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _ECHO_STOPWORDS}


def _garbled(sentence: str) -> bool:
    """Token soup the small model emits now and then: long all-caps runs, links and markup it
    made up (the brief's own link is added by the structure), or mostly non-letters."""
    letters = sum(ch.isalpha() for ch in sentence)
    return (
        bool(re.search(r"\b[A-Z]{9,}\b|https?:|www\.|[{}|<>\[\]]", sentence))
        or letters < 0.6 * len(sentence.replace(" ", ""))
    )


def _fill_from_brief(copy: str, message: MessageBrief, key_claims: list[str], spec: FormatSpec, suffix: str) -> str:
    """Too little copy for the format: lead with the message itself, then the brief's approved
    claims, until the format's minimum is met (brief text only: nothing is invented)."""

    def enough(text: str) -> bool:
        return len(text) + len(suffix) >= spec.body_min and len(text) >= spec.copy_min

    if enough(copy):
        return copy
    lead: list[str] = []
    if not contains_phrase(copy, message.message):
        lead.append(" ".join(message.message.split()))
    for claim in key_claims:
        text = " ".join(claim.split()).rstrip(".")
        if enough(" ".join([*lead, copy])) or not text:
            break
        if not contains_phrase(copy, text):
            lead.append(text[:1].upper() + text[1:] + ".")
    if not lead:
        return copy
    joiner = " " if spec.cta_separator == " " else "\n\n"
    return joiner.join(part for part in (" ".join(lead), copy) if part)


def _usable_title(title: str, spec: FormatSpec, req: GenerationRequest, message: MessageBrief) -> str:
    """The model's title or subject when it is clean and fits, else one from the message."""
    from agency.agents.compliance import blocking_sentence_reason  # compliance imports this module

    title = " ".join(_strip_hashtags(title).split()).strip("\"'")
    if len(title) > spec.title_max:
        title = _trim_words(title, spec.title_max)
    # A usable title is about the message (shares a word with it) and is not a dangling label.
    about = _content_words(" ".join([message.message, message.topic, *message.keywords, req.brief.product]))
    on_message = bool(_content_words(title) & about)
    if (
        title and on_message and not title.endswith((":", ",", ";"))
        and blocking_sentence_reason(title, req.brief.key_claims, req.brand, req.brief.product) is None
        and not _garbled(title)
    ):
        return title
    derived = derived_message_line(message.message, spec.title_max)
    return derived or _trim_words(req.brief.product.strip(), spec.title_max)


def derived_message_line(text: str, limit: int) -> str:
    """A title/subject from the message: all of it when it fits, else its first clause, else
    its first words, never ending on a dangling 'and'/'so a'."""
    text = " ".join(text.split()).rstrip(".!")
    if len(text) <= limit:
        return text
    clause = re.split(r"[,;:—–]\s*", text, maxsplit=1)[0].strip()
    if len(clause.split()) >= 3 and len(clause) <= limit:
        return clause
    line = _trim_words(clause if len(clause.split()) >= 3 else text, limit)
    while _HEADING_TAIL.search(line):
        line = _HEADING_TAIL.sub("", line)
    return line


def _take_headings(lines: list[str]) -> tuple[list[str], list[str]]:
    """Section headings the model wrote (short lines without an end mark, followed by text)."""
    headings: list[str] = []
    rest: list[str] = []
    for i, line in enumerate(lines):
        following = next((nxt for nxt in lines[i + 1 :] if nxt), "")
        is_heading = (
            line and len(line) <= 70 and not line.endswith((".", "!", "?", ",", ";", ":"))
            and following and len(following) > len(line)
        )
        if is_heading:
            headings.append(line.rstrip(":"))
            if rest and rest[-1]:
                rest.append("")  # a heading starts a new paragraph
        else:
            rest.append(line)
    return headings, rest


def _sections(copy: str, headings: list[str], spec: FormatSpec, message: MessageBrief) -> tuple[str, list[str]]:
    """Blog body as 3-6 paragraphs and one outline heading per paragraph: the model's
    headings when they match its paragraphs, else each paragraph's opening words. Too few
    paragraphs are regrouped from sentences (clauses split at ';' and dashes count); too few
    sentences get the message itself as the opening paragraph."""
    paragraphs = [p for p in copy.split("\n\n") if p.strip()]
    if len(paragraphs) < spec.outline_min:
        sentences = [s for p in paragraphs for s in _section_sentences(p)]
        if len(sentences) < spec.outline_min and not contains_phrase(copy, message.message):
            sentences.insert(0, " ".join(message.message.split()))
            headings = []
        if len(sentences) >= spec.outline_min:
            # Exactly outline_min groups, sizes differing by at most one, order kept.
            n, k = len(sentences), spec.outline_min
            paragraphs = [" ".join(sentences[i * n // k : (i + 1) * n // k]) for i in range(k)]
        else:
            paragraphs = sentences
    if len(paragraphs) > spec.outline_max:
        paragraphs = paragraphs[: spec.outline_max - 1] + [" ".join(paragraphs[spec.outline_max - 1 :])]
    if len(headings) != len(paragraphs):
        headings = [_heading(p) for p in paragraphs]
    return "\n\n".join(paragraphs), headings


def _section_sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?;])\s+|\s+[-–—]\s+", paragraph) if s.strip()]


_HEADING_TAIL = re.compile(
    r"\s+(?:a|an|the|and|or|so|but|of|for|to|in|on|with|by|at|as|from|your|our|their|is|are|that|which)$", re.I
)


def _heading(paragraph: str) -> str:
    """A section heading from a paragraph's first words (at most 7), without a dangling word."""
    first = re.split(r"(?<=[.!?])\s+|[,;:—–]\s*", paragraph.strip(), maxsplit=1)[0]
    words = first.rstrip(".!?").split()[:7]
    heading = " ".join(words)
    while _HEADING_TAIL.search(heading):
        heading = _HEADING_TAIL.sub("", heading)
    return heading[:1].upper() + heading[1:]
