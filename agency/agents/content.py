"""Prompts for the small generation model and clean-up of what it writes.

SmolLM2-135M-Instruct is weak: prompts ask for one short, concrete thing, and the
parser turns whatever comes back into a title and body that fit the channel's limits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agency.contracts import ContentFormat, GenerationRequest


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
_PROMPT_LABEL = re.compile(r"^\s*(Product|Audience|Main point|Tone|Facts you may use|End with)\s*:", re.I | re.M)
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
    template = _CALL_TO_ACTION.get(role, _CALL_TO_ACTION["conversion"])
    return template.format(product=req.brief.product.strip())


def build_prompt(req: GenerationRequest) -> tuple[str, str]:
    """(system prompt, user prompt) for one piece of content."""
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


def max_tokens_for(fmt: str, ceiling: int) -> int:
    """Completion-token budget for one piece of the format: enough for its character limits
    with headroom, never more than ``ceiling`` (the campaign's configured maximum)."""
    if ceiling < 1:
        raise ValueError(f"max_tokens must be at least 1, got {ceiling}")
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
