"""One field at a time: a raw cell -> its normalized value, or ``FieldError`` saying why not.

Empty-looking cells (``""``, ``"N/A"``, ``"null"``...) are absent values, never errors; whether a
field is required is the pipeline's decision.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from datetime import datetime, timezone
from urllib.parse import unquote_plus, urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from agency.cleaning.schema import KNOWN_UTM_KEYS, LIFECYCLE_STAGES

# What spreadsheets and CRM exports write for "no value". Not "na": it is a surname.
EMPTY_MARKERS = frozenset({"", "-", "--", "n/a", "#n/a", "null", "none", "nil", "nan", "undefined", "(not set)", "(none)"})
# Lower-case inside a surname ("van der Berg", "de la Cruz") unless they are its last word.
SURNAME_PARTICLES = frozenset({
    "van", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "la", "le", "von", "zu", "ten", "ter",
    "bin", "ibn", "al", "el", "y",
})
_APOSTROPHES = "\u2019\u2018\u02bc`\u00b4"
_LIFECYCLE_ALIASES = {"mql": "marketingqualifiedlead", "sql": "salesqualifiedlead", "evangelists": "evangelist",
                      "customers": "customer", "leads": "lead", "subscribers": "subscriber"}
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EXTENSION = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d+\s*$", re.IGNORECASE)
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


class FieldError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def blank(value: str | None) -> bool:
    return value is None or " ".join(value.split()).lower() in EMPTY_MARKERS


def clean_text(value: str | None) -> str | None:
    """NFC, whitespace trimmed and collapsed (tabs and non-breaking spaces too); None when empty."""
    if blank(value):
        return None
    return " ".join(unicodedata.normalize("NFC", value).split())


def normalize_email(value: str | None) -> str | None:
    """Syntax-checked address, all lower case (no DNS lookups).

    The whole address is lower-cased, not only the domain: providers treat local parts
    case-insensitively in practice, and "John@x.com" / "john@x.com" in one list are one person.
    """
    text = clean_text(value)
    if text is None:
        return None
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:"):]
    if "<" in text and text.endswith(">"):  # "Jane Doe <jane@x.com>"
        text = text[text.rindex("<") + 1 : -1]
    text = text.strip().strip("\"'").strip()
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as err:
        raise FieldError("invalid", str(err)) from None
    return checked.normalized.lower()


def normalize_phone(value: str | None, region: str | None) -> tuple[str | None, str | None]:
    """(E.164 number, extension). National numbers are read in ``region`` (ISO 3166 alpha-2)."""
    text = clean_text(value)
    if text is None:
        return None, None
    if any(ch.isalpha() for ch in _EXTENSION.sub("", text)):
        # phonenumbers would read letters as a keypad ("555-CALL-NOW"), making up a number anywhere.
        raise FieldError("invalid", "contains letters; write the number in digits")
    if text.startswith("00"):
        # The international prefix most of the world dials; no national number starts with it.
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException as err:
        if err.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and not region:
            raise FieldError("region_required", "a national number needs the import's default region") from None
        raise FieldError("invalid", f"not a phone number: {err._msg}") from None
    if not phonenumbers.is_valid_number(number):
        where = f"in region {region.upper()}" if region and not text.startswith("+") else "for its country code"
        raise FieldError("invalid", f"not a valid number {where}")
    extension = number.extension or None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), extension


def _capitalize_word(word: str) -> str:
    """"o'neil" -> "O'Neil", "mcdonald" -> "McDonald", "anne-marie" -> "Anne-Marie"."""
    if "-" in word:
        return "-".join(_capitalize_word(part) for part in word.split("-"))
    if "'" in word:
        head, _, tail = word.partition("'")
        if len(head) == 1 and tail:  # O', D', L' prefixes
            return head.upper() + "'" + _capitalize_word(tail)
        return _capitalize_word(head) + "'" + tail.lower()
    if not word:
        return word
    lower = word.lower()
    if lower.startswith("mc") and len(lower) > 3:
        return "Mc" + lower[2].upper() + lower[3:]
    return lower[0].upper() + lower[1:]


def normalize_name(value: str | None, *, surname: bool = False) -> str | None:
    """Trimmed, spaces collapsed, sensibly capitalised.

    A name already in mixed case is how the person writes it ("McDonald", "van der Berg", "DeVito")
    and is kept; only all-lower or all-upper names are re-capitalised.
    """
    text = clean_text(value)
    if text is None:
        return None
    for mark in _APOSTROPHES:
        text = text.replace(mark, "'")
    text = text.strip("\"';,").strip()
    if not text:
        return None
    if "@" in text or "://" in text:
        raise FieldError("invalid", "looks like an email address or URL, not a name")
    if not any(ch.isalpha() for ch in text):
        raise FieldError("invalid", "has no letters")
    if any(ch.isdigit() for ch in text):
        raise FieldError("invalid", "contains digits")
    if len(text) > 100:
        raise FieldError("too_long", "longer than 100 characters")
    if not (text.islower() or text.isupper()):
        return text
    words = text.split(" ")
    out = []
    for i, word in enumerate(words):
        if surname and i < len(words) - 1 and word.lower() in SURNAME_PARTICLES:
            out.append(word.lower())
        else:
            out.append(_capitalize_word(word))
    return " ".join(out)


def normalize_domain(value: str | None) -> str | None:
    """A company's web domain: lower-case ASCII host, no scheme, port, path or leading "www."."""
    text = clean_text(value)
    if text is None:
        return None
    candidate = text.lower()
    if "@" in candidate and "://" not in candidate:
        candidate = candidate.rsplit("@", 1)[1]  # an email address in the website column: its domain
    try:
        host = urlsplit(candidate if "://" in candidate else f"//{candidate}").hostname
    except ValueError:
        host = None
    if not host:
        raise FieldError("invalid", "no host name in it")
    host = host.rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise FieldError("invalid", "an IP address is not a company domain")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise FieldError("invalid", "not a valid internationalised domain name") from None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise FieldError("invalid", "not a valid domain name")
    if not _TLD.match(labels[-1]):
        raise FieldError("invalid", "the top-level domain is not valid")
    return host


def normalize_utm(values: dict[str, str]) -> dict[str, str]:
    """Known ``utm_*`` keys only (lower case); values trimmed, source and medium lower-cased.

    Unknown keys ("utm_id", "UTM_foo") are dropped: the contact's utm holds the five standard ones.
    """
    out: dict[str, str] = {}
    for key, raw in values.items():
        key = key.strip().lower()
        if key not in KNOWN_UTM_KEYS:
            continue
        if raw and "%" in raw:
            raw = unquote_plus(raw)  # copied out of a URL
        text = clean_text(raw)
        if text is None:
            continue
        if len(text) > 200:
            raise FieldError("too_long", f"{key} is longer than 200 characters")
        out[key] = text.lower() if key in ("utm_source", "utm_medium") else text
    return out


def normalize_lifecycle_stage(value: str | None) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    key = re.sub(r"[^a-z]", "", text.lower())
    key = _LIFECYCLE_ALIASES.get(key, key)
    if key not in LIFECYCLE_STAGES:
        raise FieldError("invalid", f"not a lifecycle stage (one of {', '.join(LIFECYCLE_STAGES)})")
    return key


def normalize_timestamp(value: str | None) -> datetime | None:
    """ISO-8601 date or date-time; a value without an offset is UTC."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise FieldError("invalid", "not an ISO-8601 date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def normalize_region(value: str | None) -> str | None:
    """An import's default phone region (ISO 3166 alpha-2, as phonenumbers knows them) or None."""
    if value is None or not value.strip():
        return None
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise FieldError("invalid", f"{value!r} is not a supported region code (ISO 3166 alpha-2, e.g. US, GB)")
    return region
