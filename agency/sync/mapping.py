"""Which of our fields mirror which CRM property, and how values are compared.

Our side of a record is a ``dict[field, str | None]`` built from a ``Contact``/``Company`` row
(a column, or a key of its ``properties`` JSON); the CRM side is the record's property dict.
Values are compared after :func:`normalize` so whitespace or an empty string never reads as an edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

CONTACTS = "contacts"
COMPANIES = "companies"
OBJECT_TYPES = (COMPANIES, CONTACTS)


@dataclass(frozen=True)
class FieldSpec:
    field: str  # our name: a column of the row, or a key of its ``properties`` when ``in_properties``
    crm_property: str
    in_properties: bool = False


FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    CONTACTS: (
        FieldSpec("email", "email"),
        FieldSpec("first_name", "firstname"),
        FieldSpec("last_name", "lastname"),
        FieldSpec("phone", "phone"),
        FieldSpec("job_title", "jobtitle"),
        FieldSpec("lifecycle_stage", "lifecyclestage"),
        # Free-text notes our people keep; mapped so a policy can decide, private by default.
        FieldSpec("notes", "agency_notes", in_properties=True),
    ),
    COMPANIES: (
        FieldSpec("name", "name"),
        FieldSpec("domain", "domain"),
    ),
}

# The field that matches an unlinked record on one side to one on the other (no duplicates when
# both sides already hold the same person or company).
MATCH_FIELD = {CONTACTS: "email", COMPANIES: "domain"}


def specs(object_type: str) -> tuple[FieldSpec, ...]:
    try:
        return FIELDS[object_type]
    except KeyError:
        raise ValueError(f"unknown object type {object_type!r}; expected one of {OBJECT_TYPES}") from None


def spec(object_type: str, field: str) -> FieldSpec:
    for candidate in specs(object_type):
        if candidate.field == field:
            return candidate
    raise ValueError(f"{object_type} has no synced field {field!r}")


def crm_properties(object_type: str) -> list[str]:
    """Every CRM property the sync reads."""
    return [s.crm_property for s in specs(object_type)]


def normalize(field: str, value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if field in ("email", "domain"):
        return text.lower()
    return text


def ours_from_row(object_type: str, columns: Mapping[str, object], properties: Mapping[str, object]) -> dict[str, str | None]:
    """Our side's synced values from a row's columns and its ``properties`` JSON."""
    return {
        s.field: normalize(s.field, properties.get(s.field) if s.in_properties else columns.get(s.field))
        for s in specs(object_type)
    }


def theirs_from_crm(object_type: str, properties: Mapping[str, str | None]) -> dict[str, str | None]:
    """The CRM side's synced values, under our field names."""
    return {s.field: normalize(s.field, properties.get(s.crm_property)) for s in specs(object_type)}


def to_crm(object_type: str, values: Mapping[str, str | None]) -> dict[str, str]:
    """Our field values as CRM properties; ``None`` clears a property (HubSpot takes "")."""
    by_field = {s.field: s for s in specs(object_type)}
    return {by_field[f].crm_property: ("" if v is None else v) for f, v in values.items()}
