"""Canary evaluation of a candidate model version: a fixed prompt set and the promotion rule.

Pure logic. The rollout activity runs every prompt on the candidate and on the serving
version (greedy, so outputs are reproducible), embeds both outputs, and hands the samples
here; ``evaluate_canary`` decides promote or roll back and says why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agency.agents.content import CHANNEL_LIMITS, SYSTEM_PROMPT
from agency.contracts import CanaryPolicy, CanaryReport, CanarySample, ContentFormat


@dataclass(frozen=True)
class CanaryPrompt:
    prompt_id: str
    prompt: str
    max_chars: int  # the channel's limit for the whole output


_SOCIAL = CHANNEL_LIMITS[ContentFormat.SOCIAL_POST.value].body_max
_EMAIL = CHANNEL_LIMITS[ContentFormat.EMAIL.value].body_max

CANARY_SYSTEM_PROMPT = SYSTEM_PROMPT

# Fixed, versioned with the code: every candidate faces the same prompts.
CANARY_PROMPTS: tuple[CanaryPrompt, ...] = (
    CanaryPrompt("social-bottle", "Write one social media post of at most 40 words about a reusable steel water bottle for hikers.", _SOCIAL),
    CanaryPrompt("social-coffee", "Write one social media post of at most 40 words about a compostable coffee cup for commuters.", _SOCIAL),
    CanaryPrompt("social-shoes", "Write one social media post of at most 40 words about trail running shoes with a grippy sole.", _SOCIAL),
    CanaryPrompt("social-app", "Write one social media post of at most 40 words about a budgeting app for students.", _SOCIAL),
    CanaryPrompt("email-tent", "Write a short marketing email about a lightweight two-person tent. First line: 'Subject: ' and a subject.", _EMAIL),
    CanaryPrompt("email-bakery", "Write a short marketing email announcing a neighbourhood bakery's new sourdough. First line: 'Subject: ' and a subject.", _EMAIL),
)

_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i can(?:no|')t (?:help|assist|do)|as an ai|i am unable|i'm unable|cannot comply)\b",
    re.I,
)
_WORD = re.compile(r"[A-Za-z]{2,}")


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def is_garbage(text: str) -> bool:
    """Empty, mostly non-words, or one word repeated: output no reviewer could use."""
    stripped = text.strip()
    if len(stripped) < 12:
        return True
    words = [w.lower() for w in _WORD.findall(stripped)]
    if len(words) < 3:
        return True
    letters = sum(len(w) for w in words)
    if letters / max(1, len(stripped.replace(" ", ""))) < 0.5:
        return True
    most_common = max(words.count(w) for w in set(words))
    return len(words) >= 8 and most_common / len(words) > 0.4


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def evaluate_canary(samples: list[CanarySample], policy: CanaryPolicy) -> CanaryReport:
    """Promote only if every rule of ``policy`` holds; ``reasons`` lists each rule broken."""
    count = max(1, len(samples))
    length_violations = sum(1 for s in samples if len(s.candidate_text) > s.max_chars)
    serving_violations = sum(1 for s in samples if len(s.serving_text) > s.max_chars)
    bad_outputs = sum(1 for s in samples if is_refusal(s.candidate_text) or is_garbage(s.candidate_text))
    mean_agreement = sum(s.agreement for s in samples) / count if samples else 0.0
    candidate_p95 = percentile([s.candidate_latency_s for s in samples], 95)
    serving_p95 = percentile([s.serving_latency_s for s in samples], 95)
    latency_ratio = candidate_p95 / serving_p95 if serving_p95 > 0 else 1.0

    report = CanaryReport(
        passed=True,
        reasons=[],
        length_violation_rate=round(length_violations / count, 4),
        serving_length_violation_rate=round(serving_violations / count, 4),
        bad_output_rate=round(bad_outputs / count, 4),
        mean_agreement=round(mean_agreement, 4),
        latency_ratio=round(latency_ratio, 3),
        candidate_p95_s=round(candidate_p95, 3),
        serving_p95_s=round(serving_p95, 3),
        samples=samples,
    )
    if not samples:
        report.reasons.append("no canary samples were evaluated")
    if length_violations - serving_violations > policy.max_length_violation_increase * count:
        report.reasons.append(
            f"{length_violations} of {len(samples)} outputs break the channel length limit "
            f"(the serving version: {serving_violations})"
        )
    if report.bad_output_rate > policy.max_bad_output_rate:
        report.reasons.append(
            f"{bad_outputs} of {len(samples)} outputs are refusals or garbage "
            f"(allowed rate {policy.max_bad_output_rate:g})"
        )
    if samples and mean_agreement < policy.min_agreement:
        report.reasons.append(
            f"mean embedding agreement with the serving version is {mean_agreement:.2f} "
            f"(minimum {policy.min_agreement:g})"
        )
    if latency_ratio > policy.max_latency_ratio:
        report.reasons.append(
            f"p95 latency is {latency_ratio:.2f}x the serving version's (maximum {policy.max_latency_ratio:g}x)"
        )
    report.passed = not report.reasons
    return report
