"""Is a draft about what its brief asked for? Embedding similarity between the two.

Pure logic: the relevance activity embeds ``brief_text`` (legacy items) or ``message_text``
(items of a message set) and the draft with the embedder (all-MiniLM-L6-v2, unit vectors) and
returns their cosine plus the draft's vector; compliance turns a score below
``OFF_TOPIC_THRESHOLD`` into a blocking finding so the draft is regenerated, and a similarity to
earlier content at or above ``NEAR_DUPLICATE_THRESHOLD`` into a near-duplicate finding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agency.contracts import CalendarEntry, CampaignBrief, MessageBrief

# Measured with the served embedder on 14 drafts the generator wrote for 7 briefs (social,
# email, blog): 13 scored 0.35-0.93 against their own brief; the 14th (0.18) never named the
# product, a real miss. The same drafts against the 6 other briefs scored -0.06-0.35 (mean
# 0.12, 83 of 84 below 0.30), unrelated texts (a recipe, a refusal, echoed instructions)
# -0.10-0.22. 0.30 sits low in the gap: a weak but on-topic draft must not be thrown away.
OFF_TOPIC_THRESHOLD = 0.30

# At or above this cosine (all-MiniLM-L6-v2 unit vectors) a draft is a near-duplicate of earlier
# content: rewordings of one text score 0.9+, while different pieces carrying the same message
# (which SHOULD be similar) stay well below.
NEAR_DUPLICATE_THRESHOLD = 0.92


def brief_text(brief: CampaignBrief, entry: CalendarEntry) -> str:
    """What the piece should be about: the product, who it is for, and the piece's angle."""
    parts = [brief.product.strip()]
    audience = brief.audience.strip()
    if audience:
        parts.append(f"for {audience}")
    text = " ".join(part for part in parts if part)
    angle = entry.angle.strip().rstrip(".")
    if angle:
        text = f"{text}. {angle}" if text else angle
    if not text:
        raise ValueError("the brief names no product, audience or angle to compare a draft with")
    return f"{text}."


def message_text(brief: CampaignBrief, message: MessageBrief) -> str:
    """What a message-based piece should say: the product, the set's message, its topic and
    keywords (the CTA is left out: every item carries it, it says nothing about the topic)."""
    parts = [brief.product.strip().rstrip("."), message.message.strip().rstrip(".")]
    topic = message.topic.strip().rstrip(".")
    if topic and topic.lower() not in message.message.lower():
        parts.append(topic)
    keywords = [k.strip() for k in message.keywords if k.strip()]
    if keywords:
        parts.append(", ".join(keywords))
    text = ". ".join(part for part in parts if part)
    if not text:
        raise ValueError("the message brief has no text to compare a draft with")
    return f"{text}."


def unit_vector(vector: Sequence[float]) -> list[float]:
    """The vector scaled to length 1 (the embedder's output already is, up to rounding)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not vector or norm == 0.0:
        raise ValueError("cannot normalize an empty or zero vector")
    return [x / norm for x in vector]


def draft_text(title: str, body: str) -> str:
    """The copy as the reader sees it: title (if any) then body."""
    return "\n".join(part for part in (title.strip(), body.strip()) if part)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in [-1, 1]; vectors must have the same, non-zero length and norm."""
    if len(a) != len(b) or not a:
        raise ValueError(f"vectors of different or zero length: {len(a)} and {len(b)}")
    dot = math.fsum(x * y for x, y in zip(a, b))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if norm == 0.0:
        raise ValueError("cannot compare a zero vector")
    # Rounding can push unit vectors a hair past 1.
    return max(-1.0, min(1.0, dot / norm))


def is_off_topic(similarity: float | None, threshold: float = OFF_TOPIC_THRESHOLD) -> bool:
    """True when a measured similarity is below the threshold; no measurement is no verdict."""
    if similarity is None:
        return False
    if math.isnan(similarity):
        raise ValueError("relevance similarity is NaN")
    return similarity < threshold


def is_near_duplicate(similarity: float | None, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> bool:
    """True when the closest earlier content is at least ``threshold`` similar; None: nothing to compare."""
    if similarity is None:
        return False
    if math.isnan(similarity):
        raise ValueError("duplicate similarity is NaN")
    return similarity >= threshold
