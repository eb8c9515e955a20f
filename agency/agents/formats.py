"""Channel format specs for message-based copy: one registry the generator, the validators and
the ranking all read, so a limit is stated once.

``body`` is always the publishable text: for social posts and emails it already ends with the
call to action (and, for social networks, the hashtags), so every limit holds WITH them.
Campaigns started before message briefs keep the legacy limits in ``content.CHANNEL_LIMITS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agency.contracts import ContentFormat

# A hashtag as networks accept it: a letter first, then letters, digits or underscores.
HASHTAG_RE = re.compile(r"(?<![\w#])#([A-Za-z][A-Za-z0-9_]{1,49})\b")


@dataclass(frozen=True)
class FormatSpec:
    format: str
    label: str  # what the model is asked for, in words
    body_min: int
    body_max: int  # the whole published body: copy + CTA (+ hashtags)
    ideal_length: int  # body length a reader of the channel likes best (ranking)
    model_chars: int  # how much copy the model is asked to write (token budget)
    title_max: int = 0  # 0: the format has no title (email: the subject)
    hashtags_min: int = 0
    hashtags_max: int = 0
    outline_min: int = 0  # blog: section headings in parts["outline"]
    outline_max: int = 0
    preheader_min: int = 0  # email: parts["preheader"]
    preheader_max: int = 0
    cta_separator: str = "\n\n"  # between the copy and the call to action
    # The copy itself (body without CTA and hashtags) must say something: a post of only the
    # CTA and tags is not a post.
    copy_min: int = 40

    @property
    def needs_title(self) -> bool:
        return self.title_max > 0

    @property
    def needs_outline(self) -> bool:
        return self.outline_min > 0

    @property
    def needs_preheader(self) -> bool:
        return self.preheader_min > 0


FORMAT_SPECS: dict[str, FormatSpec] = {
    spec.format: spec
    for spec in (
        FormatSpec(
            ContentFormat.BLOG_POST.value, "blog post", body_min=300, body_max=4000, ideal_length=1200,
            model_chars=700, title_max=90, outline_min=3, outline_max=6,
        ),
        FormatSpec(
            ContentFormat.X_POST.value, "post for X (Twitter)", body_min=40, body_max=280, ideal_length=220,
            model_chars=200, hashtags_min=1, hashtags_max=2, cta_separator=" ",
        ),
        FormatSpec(
            ContentFormat.LINKEDIN_POST.value, "LinkedIn post", body_min=150, body_max=1300, ideal_length=600,
            model_chars=450, hashtags_min=0, hashtags_max=3,
        ),
        FormatSpec(
            ContentFormat.INSTAGRAM_CAPTION.value, "Instagram caption", body_min=50, body_max=2200,
            ideal_length=400, model_chars=300, hashtags_min=3, hashtags_max=10,
        ),
        FormatSpec(
            ContentFormat.EMAIL.value, "marketing email", body_min=120, body_max=2000, ideal_length=600,
            model_chars=500, title_max=60, preheader_min=40, preheader_max=100,
        ),
    )
}

# Formats that exist only with message briefs: their drafts are always checked by FORMAT_SPECS.
MESSAGE_ONLY_FORMATS = frozenset(
    {ContentFormat.X_POST.value, ContentFormat.LINKEDIN_POST.value, ContentFormat.INSTAGRAM_CAPTION.value}
)


def format_spec(fmt: str) -> FormatSpec:
    if fmt not in FORMAT_SPECS:
        raise ValueError(f"unknown content format {fmt!r} for message-based copy")
    return FORMAT_SPECS[fmt]


def uses_format_spec(fmt: str, has_message: bool) -> bool:
    """Message-based items follow FORMAT_SPECS; legacy items (no message) their old limits."""
    return fmt in FORMAT_SPECS and (has_message or fmt in MESSAGE_ONLY_FORMATS)


def copy_of(body: str, cta: str) -> str:
    """The body without the structure added around the model's copy: the CTA line (and what
    follows it on that line, e.g. the URL) and the hashtags."""
    text = HASHTAG_RE.sub("", body)
    wanted = normalize_phrase(cta)
    if wanted:
        kept = []
        for line in text.split("\n"):
            if f" {wanted} " in f" {normalize_phrase(line)} ":
                head = re.split(re.escape(cta.strip()), line, maxsplit=1, flags=re.I)[0]
                line = head if head != line else ""
            kept.append(line)
        text = "\n".join(kept)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def hashtags_in(text: str) -> list[str]:
    """Hashtags written in the text, without '#', in order, without case-insensitive repeats."""
    seen: set[str] = set()
    tags: list[str] = []
    for tag in HASHTAG_RE.findall(text):
        if tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return tags


def as_hashtag(text: str) -> str:
    """'#TrailBoots' from 'trail boots' or '#trailboots'; '' when nothing usable is left."""
    words = re.findall(r"[A-Za-z0-9]+", text)
    if not words:
        return ""
    tag = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
    return f"#{tag}" if HASHTAG_RE.fullmatch(f"#{tag}") else ""


def hashtag_words(tag: str) -> str:
    """'#CheapBoots' -> 'Cheap Boots': the words a camel-case hashtag is made of."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", tag.lstrip("#"))


def outline_lines(outline: str) -> list[str]:
    return [line.strip() for line in outline.splitlines() if line.strip()]


def normalize_phrase(text: str) -> str:
    """Lower-case words joined by single spaces: the form phrases are compared in."""
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))


def contains_phrase(text: str, phrase: str) -> bool:
    """Whole-word/phrase, case-insensitive: 'cheap' matches 'Cheap!' but not 'cheapest'."""
    wanted = normalize_phrase(phrase)
    return bool(wanted) and f" {wanted} " in f" {normalize_phrase(text)} "


def phrases_in(text: str, phrases: list[str]) -> list[str]:
    return [phrase for phrase in phrases if contains_phrase(text, phrase)]
