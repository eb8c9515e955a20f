"""Compliance checks on generated copy: personal data, unapproved claims, channel limits,
drafts that only echo their instructions, and drafts off the brief's topic; for message-based
copy also the format spec (agency.agents.formats), brand vocabulary, substantiation, the shared
CTA and near-duplicates of earlier content.

Findings never repeat the personal data they found: excerpts are masked.

Finding rule codes (stable: stored with drafts, counted in reports, mapped to model feedback):
  pii.email | pii.phone | pii.credit_card   block  personal data (redacted in the sanitized copy)
  claims.unapproved        warn/block  claim-like sentence not among the brief's key claims
                                       (absolute promises block)
  claims.unsubstantiated   block  a brand "needs substantiation" phrase no key claim supports
  brand.banned_word        block  a word/phrase of brand.vocabulary_avoid (whole word, any case)
  length.max               block  body or title/subject longer than the format allows
  length.min               legacy: warn; message-based formats: block
  content.empty            block  no body
  content.title            legacy: warn (missing/unexpected title)
  parts.title              block  blog title / email subject missing
  parts.outline            block  blog outline outside 3-6 headings
  parts.preheader          block  email preheader missing or outside 40-100 characters
  parts.hashtags           block  hashtag count outside the format's range
  cta.missing              block  the message's CTA is not in the body
  content.duplicate        block  embedding similarity to earlier content >= NEAR_DUPLICATE_THRESHOLD
  content.prompt_echo      block  the draft repeats its instructions
  content.off_topic        block  relevance below OFF_TOPIC_THRESHOLD
  format.unknown           block  no limits known for the format
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agency.agents.content import CHANNEL_LIMITS, cta_line, echoed_instruction, limit_violations
from agency.agents.formats import (
    FormatSpec,
    contains_phrase,
    copy_of,
    format_spec,
    hashtag_words,
    hashtags_in,
    normalize_phrase,
    outline_lines,
    phrases_in,
    uses_format_spec,
)
from agency.agents.relevance import NEAR_DUPLICATE_THRESHOLD, OFF_TOPIC_THRESHOLD, is_near_duplicate, is_off_topic
from agency.contracts import (
    BrandProfile,
    ComplianceFinding,
    ComplianceRequest,
    ComplianceResult,
    ContentDraft,
    MessageBrief,
)

BLOCK = "block"
WARN = "warn"

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, optionally grouped by single spaces or dashes.
CARD_RE = re.compile(r"(?<![\d$.,])\d(?:[ -]?\d){12,18}(?![\d%])")
# International: + country code then groups (the + is what makes a bare number a phone).
INTL_PHONE_RE = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?![\d%])")
# US/NANP: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, 1-800-555-0199.
US_PHONE_RE = re.compile(
    r"(?<![\w$.,+])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d%]|[.,]\d)"
)

_CLAIM_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.I))
    for label, pattern in (
        # "Best regards" is a sign-off, not a claim.
        ("superlative", r"\bbest\b(?! regards| wishes)|\b(?:fastest|cheapest|strongest|safest|"
                        r"smartest|industry-leading|market-leading|the leading|top-rated|"
                        r"most (?:trusted|popular|advanced|powerful|reliable)|unbeatable|unmatched|"
                        r"world'?s (?:first|only|best)|number one|no\. ?1)\b|#1\b"),
        ("proof", r"\b(?:clinically|scientifically|medically) (?:proven|tested)\b|\bproven\b"),
        ("number", r"\b\d+(?:\.\d+)?\s?(?:%|percent\b)|\b\d+(?:\.\d+)?x\b|"
                   r"\b\d+(?:\.\d+)?\s?times (?:more|less|faster|better|cheaper|higher|lower|as)\b"),
        ("absolute", r"\bguarantee[sd]?\b|\brisk[- ]free\b|\bcure[sd]?\b"),
    )
)
# Absolute promises block unless the brief approved them; other unapproved claims warn.
_ABSOLUTE = dict(_CLAIM_PATTERNS)["absolute"]

_STOPWORDS = frozenset(
    "a an the and or of for to in on with by our your you we is are be it its this that "
    "at as from can will than more most".split()
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_CLAIM_OVERLAP = 0.6


def check_compliance(req: ComplianceRequest) -> ComplianceResult:
    """Redact personal data, flag claims against the approved list, enforce channel limits."""
    draft = req.draft
    findings: list[ComplianceFinding] = []
    title = redact_pii(draft.title, findings)
    body = redact_pii(draft.body, findings)

    claims_found: list[str] = []
    for sentence in split_sentences(title) + split_sentences(body):
        if not is_claim(sentence):
            continue
        claims_found.append(sentence)
        if claim_supported(sentence, req.key_claims):
            continue
        absolute = _ABSOLUTE.search(sentence) is not None
        findings.append(
            ComplianceFinding(
                rule="claims.unapproved",
                severity=BLOCK if absolute else WARN,
                message=(
                    "absolute promise not approved in the brief" if absolute
                    else "claim not among the brief's approved claims; a reviewer must confirm it"
                ),
                excerpt=sentence[:160],
            )
        )

    spec_based = uses_format_spec(draft.format, req.message is not None)
    if spec_based:
        cta = req.message.cta if req.message is not None else draft.parts.get("cta", "")
        findings.extend(spec_findings(format_spec(draft.format), title, body, draft.parts, cta))
    else:
        findings.extend(_limit_findings(draft.format, title, body))
    if req.brand is not None:
        findings.extend(brand_findings(req.brand, req.key_claims, draft, title, body, req.product))
    if req.message is not None:
        findings.extend(cta_findings(req.message, body))
    if is_near_duplicate(req.duplicate_similarity):
        findings.append(
            ComplianceFinding(
                rule="content.duplicate",
                severity=BLOCK,
                message=(
                    f"near-duplicate of {req.duplicate_of or 'earlier content'}: similarity "
                    f"{req.duplicate_similarity:.2f} >= {NEAR_DUPLICATE_THRESHOLD:.2f}"
                ),
            )
        )
    echo = echoed_instruction(title, body)
    if echo:
        findings.append(
            ComplianceFinding(
                rule="content.prompt_echo",
                severity=BLOCK,
                message="the draft repeats the writing instructions instead of being copy",
                excerpt=echo[:160],
            )
        )
    if is_off_topic(req.relevance):
        findings.append(
            ComplianceFinding(
                rule="content.off_topic",
                severity=BLOCK,
                message=(
                    f"the draft is not about the brief: similarity {req.relevance:.2f} "
                    f"< {OFF_TOPIC_THRESHOLD:.2f}"
                ),
            )
        )
    return ComplianceResult(
        item_id=draft.item_id,
        passed=not any(f.severity == BLOCK for f in findings),
        findings=findings,
        claims_found=claims_found,
        sanitized_title=title,
        sanitized_body=body,
    )


def spec_findings(
    spec: FormatSpec, title: str, body: str, parts: dict[str, str], cta: str = ""
) -> list[ComplianceFinding]:
    """Length and required parts of message-based copy (agency.agents.formats); all block."""
    found: list[ComplianceFinding] = []

    def block(rule: str, message: str) -> None:
        found.append(ComplianceFinding(rule, BLOCK, message))

    fmt = spec.format
    if not body.strip():
        block("content.empty", "body is empty")
    elif len(body) < spec.body_min:
        block("length.min", f"{fmt} body too short: {len(body)} < {spec.body_min} characters")
    elif len(copy_of(body, cta)) < spec.copy_min:
        block("length.min", f"{fmt} copy without CTA and hashtags is under {spec.copy_min} characters")
    if len(body) > spec.body_max:
        block("length.max", f"{fmt} body too long: {len(body)} > {spec.body_max} characters")
    if spec.needs_title:
        name = "subject" if fmt == "email" else "title"
        if not title.strip():
            block("parts.title", f"{fmt} needs a {name}")
        elif len(title) > spec.title_max:
            block("length.max", f"{name} too long: {len(title)} > {spec.title_max} characters")
    elif title.strip():
        block("parts.title", f"{fmt} has no title but one was given")
    if spec.needs_outline:
        headings = outline_lines(parts.get("outline", ""))
        if not spec.outline_min <= len(headings) <= spec.outline_max:
            block("parts.outline", f"outline has {len(headings)} headings, needs {spec.outline_min}-{spec.outline_max}")
    if spec.needs_preheader:
        preheader = parts.get("preheader", "").strip()
        if not spec.preheader_min <= len(preheader) <= spec.preheader_max:
            block(
                "parts.preheader",
                f"preheader has {len(preheader)} characters, needs {spec.preheader_min}-{spec.preheader_max}",
            )
    tags = len(hashtags_in(body))
    if not spec.hashtags_min <= tags <= spec.hashtags_max:
        block("parts.hashtags", f"{tags} hashtags, {fmt} needs {spec.hashtags_min}-{spec.hashtags_max}")
    return found


def brand_findings(
    brand: BrandProfile, key_claims: list[str], draft: ContentDraft, title: str, body: str, product: str = ""
) -> list[ComplianceFinding]:
    """Banned vocabulary anywhere in the copy (title, body, named parts) and sentences using a
    phrase that needs substantiation without a key claim to support it."""
    found: list[ComplianceFinding] = []
    tags = " ".join(hashtag_words(tag) for tag in hashtags_in(body))  # '#CheapBoots' hides 'cheap'
    texts = [title, body, tags, *(value for key, value in sorted(draft.parts.items()))]
    banned = list(dict.fromkeys(p for text in texts for p in phrases_in(text, brand.vocabulary_avoid)))
    for phrase in banned:
        found.append(ComplianceFinding("brand.banned_word", BLOCK, f"uses the banned word '{phrase}'", phrase))
    for sentence in split_sentences(title) + split_sentences(body):
        for phrase in unsubstantiated_phrases(sentence, key_claims, brand, product):
            found.append(
                ComplianceFinding(
                    "claims.unsubstantiated", BLOCK,
                    f"'{phrase}' needs substantiation and no key claim of the brief supports it",
                    sentence[:160],
                )
            )
    return found


def cta_findings(message: MessageBrief, body: str) -> list[ComplianceFinding]:
    cta = message.cta.strip()
    if cta and not contains_phrase(body, cta):
        return [ComplianceFinding("cta.missing", BLOCK, f"the call to action '{cta_line(message)}' is missing")]
    return []


def unsubstantiated_phrases(
    sentence: str, key_claims: list[str], brand: BrandProfile | None, product: str = ""
) -> list[str]:
    """Phrases of brand.claims_needing_substantiation in the sentence that no key claim supports:
    a key claim containing the phrase, or one that covers the whole sentence, substantiates it.
    The product's own name is not a claim ("waterproof" in "Trailblaze waterproof boots")."""
    if brand is None:
        return []
    text = normalize_phrase(sentence)
    name = normalize_phrase(product)
    if name:
        text = f" {text} ".replace(f" {name} ", " | ")
    phrases = phrases_in(text, brand.claims_needing_substantiation)
    if not phrases or claim_supported(sentence, key_claims):
        return []
    return [p for p in phrases if not any(contains_phrase(claim, p) for claim in key_claims)]


def blocking_sentence_reason(
    sentence: str, key_claims: list[str], brand: BrandProfile | None, product: str = ""
) -> str | None:
    """The rule a sentence alone would be blocked by, if any (the generator drops such
    sentences before a draft is checked): PII, banned words, unsubstantiated or unapproved
    absolute claims."""
    findings: list[ComplianceFinding] = []
    redact_pii(sentence, findings)
    if findings:
        return findings[0].rule
    if brand is not None and phrases_in(sentence, brand.vocabulary_avoid):
        return "brand.banned_word"
    if unsubstantiated_phrases(sentence, key_claims, brand, product):
        return "claims.unsubstantiated"
    if _ABSOLUTE.search(sentence) and not claim_supported(sentence, key_claims):
        return "claims.unapproved"
    return None


def redact_pii(text: str, findings: list[ComplianceFinding] | None = None) -> str:
    """Replace emails, card numbers and phone numbers; record a masked finding for each."""
    sink = findings if findings is not None else []
    # Cards first: a long digit run must not be half-eaten by the phone patterns.
    text = _redact(text, CARD_RE, "[card removed]", "pii.credit_card", "a payment card number", _card_match, sink)
    text = _redact(text, EMAIL_RE, "[email removed]", "pii.email", "an email address", _email_mask, sink)
    for pattern in (INTL_PHONE_RE, US_PHONE_RE):
        text = _redact(text, pattern, "[phone removed]", "pii.phone", "a phone number", _phone_match, sink)
    return text


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]


def is_claim(sentence: str) -> bool:
    return any(pattern.search(sentence) for _, pattern in _CLAIM_PATTERNS)


def claim_supported(sentence: str, key_claims: list[str]) -> bool:
    """True when an approved claim covers the sentence.

    Either text contains the other (case-insensitive), or most of the approved claim's
    words appear in the sentence and every number in the sentence is in the claim (so an
    approved "cuts costs by 30%" does not cover "cuts costs by 90%").
    """
    text = _normalize(sentence)
    words, numbers = _content_words(text), _numbers(text)
    for claim in key_claims:
        approved = _normalize(claim)
        if not approved:
            continue
        if f" {approved} " in f" {text} " or f" {text} " in f" {approved} ":
            return True
        approved_words = _content_words(approved)
        if not approved_words or not numbers <= _numbers(approved):
            continue
        if len(approved_words & words) / len(approved_words) >= _CLAIM_OVERLAP:
            return True
    return False


# ---- helpers --------------------------------------------------------------------------
def _redact(
    text: str,
    pattern: re.Pattern[str],
    replacement: str,
    rule: str,
    label: str,
    describe: Callable[[str], str | None],
    findings: list[ComplianceFinding],
) -> str:
    """Replace matches that describe() accepts (it returns the masked excerpt, or None)."""

    def substitute(match: re.Match[str]) -> str:
        excerpt = describe(match.group(0))
        if excerpt is None:
            return match.group(0)
        findings.append(ComplianceFinding(rule, BLOCK, f"copy contains {label}", excerpt))
        return replacement

    return pattern.sub(substitute, text)


def _card_match(candidate: str) -> str | None:
    digits = re.sub(r"\D", "", candidate)
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return None
    return f"card ending {digits[-4:]}"


def _email_mask(candidate: str) -> str:
    local, _, domain = candidate.partition("@")
    return f"{local[:1]}***@{domain}"


def _phone_match(candidate: str) -> str | None:
    digits = re.sub(r"\D", "", candidate)
    if candidate.startswith("+"):
        plausible = 8 <= len(digits) <= 15
    else:
        plausible = len(digits) == 10 or (len(digits) == 11 and digits.startswith("1"))
    return f"phone ending {digits[-2:]}" if plausible else None


# Limit violation code → (finding rule, severity). Over-limit copy cannot be published.
_LIMIT_RULES = {
    "body.long": ("length.max", BLOCK),
    "title.long": ("length.max", BLOCK),
    "body.empty": ("content.empty", BLOCK),
    "body.short": ("length.min", WARN),
    "title.empty": ("content.title", WARN),
    "title.unexpected": ("content.title", WARN),
}


def _limit_findings(fmt: str, title: str, body: str) -> list[ComplianceFinding]:
    if fmt not in CHANNEL_LIMITS:
        return [ComplianceFinding("format.unknown", BLOCK, f"unknown content format {fmt!r}")]
    findings: list[ComplianceFinding] = []
    for code, message in limit_violations(fmt, title, body):
        rule, severity = _LIMIT_RULES[code]
        findings.append(ComplianceFinding(rule, severity, message))
    return findings


def _normalize(text: str) -> str:
    """Lower-case word tokens (keeping decimals, % and #) joined by single spaces."""
    return " ".join(re.findall(r"\d+(?:\.\d+)?%?|[\w#]+%?", text.lower()))


def _content_words(text: str) -> set[str]:
    return {w for w in text.split() if w not in _STOPWORDS}


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", text))
