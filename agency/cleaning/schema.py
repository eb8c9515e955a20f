"""Row models of a contact import: the raw row as uploaded and the clean contact it becomes.

A CSV header is mapped onto canonical column names once per file (``column_map``); every other
column is kept as a string property. ``Reason`` is one rejection: which field, a stable code and a
message for people.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REQUIRED_COLUMNS = ("email",)
KNOWN_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
LIFECYCLE_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist",
    "other",
)
# Keys the import itself writes into a contact's properties; a CSV column of that name is renamed.
RESERVED_PROPERTIES = ("merged_from", "phone_extension", "company_name")
MAX_CELL_CHARS = 2000
EXTRA_CELLS_KEY = "_extra_cells"  # cells beyond the header's columns (csv.DictReader's restkey)

# Spellings seen in exports from CRMs, spreadsheets and form tools -> canonical column.
_ALIASES = {
    "email": ("email", "e_mail", "email_address", "e_mail_address", "mail", "emailaddress"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "phone": ("phone", "phone_number", "phonenumber", "mobile", "mobile_phone", "telephone", "tel"),
    "job_title": ("job_title", "jobtitle", "title", "position", "role"),
    "company_name": ("company", "company_name", "companyname", "organization", "organisation"),
    "company_domain": ("company_domain", "domain", "website", "company_website", "company_url", "web"),
    "lifecycle_stage": ("lifecycle_stage", "lifecyclestage", "lifecycle", "stage"),
    "updated_at": ("updated_at", "updated", "last_modified", "lastmodified", "modified_at", "last_updated"),
}
_ALIAS_TO_COLUMN = {alias: column for column, aliases in _ALIASES.items() for alias in aliases}
CANONICAL_COLUMNS = tuple(_ALIASES)


@dataclass(frozen=True)
class Reason:
    field: str  # a canonical column, "row" for the row as a whole
    code: str  # required | invalid | too_long | extra_cells | empty_row | ...
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def header_key(name: str) -> str:
    """``" E-Mail Address "`` -> ``"e_mail_address"``: lower case, runs of other characters -> ``_``."""
    folded = unicodedata.normalize("NFKC", name).strip().lower()
    return re.sub(r"[^0-9a-z]+", "_", folded).strip("_")


def canonical_column(name: str) -> str:
    """The canonical column a header names: an alias, a ``utm_*`` key, or its own header key."""
    key = header_key(name)
    return _ALIAS_TO_COLUMN.get(key, key)


def column_map(header: list[str]) -> dict[str, str]:
    """Header cell -> canonical column (first occurrence wins; the API refuses duplicates first)."""
    mapping: dict[str, str] = {}
    for cell in header:
        mapping.setdefault(cell, canonical_column(cell))
    return mapping


def missing_columns(header: list[str]) -> list[str]:
    present = {canonical_column(cell) for cell in header}
    return [column for column in REQUIRED_COLUMNS if column not in present]


def duplicate_columns(header: list[str]) -> list[str]:
    """Canonical columns named by more than one header cell (``Email`` and ``E-mail``): ambiguous."""
    seen: dict[str, int] = {}
    for cell in header:
        column = canonical_column(cell)
        if column:
            seen[column] = seen.get(column, 0) + 1
    return sorted(column for column, count in seen.items() if count > 1)


class RawContactRow(BaseModel):
    """One CSV row under canonical names, before normalisation (strings as uploaded)."""

    model_config = ConfigDict(extra="forbid", str_max_length=MAX_CELL_CHARS)

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    job_title: str | None = None
    company_name: str | None = None
    company_domain: str | None = None
    lifecycle_stage: str | None = None
    updated_at: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)  # every utm_* column, known or not
    extra: dict[str, str] = Field(default_factory=dict)  # other columns -> properties


UtmKey = Literal["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"]
E164 = r"^\+[1-9][0-9]{6,14}$"


class CleanContact(BaseModel):
    """A contact after normalisation: what may be written to ``contacts`` (checked once more here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, pattern=E164)
    phone_extension: str | None = Field(default=None, max_length=20)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    job_title: str | None = Field(default=None, max_length=200)
    company_name: str | None = Field(default=None, max_length=200)
    company_domain: str | None = Field(default=None, max_length=253)
    lifecycle_stage: Literal[LIFECYCLE_STAGES] | None = None  # type: ignore[valid-type]
    utm: dict[UtmKey, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    updated_at: datetime | None = None  # when the source says the record last changed
