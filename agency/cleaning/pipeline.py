"""Rows in -> outcomes with reasons. Pure: the activities load rows and existing contacts, call
``clean_batch`` and ``plan``, and write what the plan says.

Every row ends in exactly one place: inserted (the first row of a new email), merged (into an
earlier row of the batch or a contact already stored) or quarantined (with at least one reason),
so ``rows = inserted + merged + quarantined`` holds for every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agency.cleaning import normalize as norm
from agency.cleaning.dedupe import ContactUpdate, ExistingContact, MergedContact, collapse, merge_into_existing
from agency.cleaning.schema import (
    CANONICAL_COLUMNS,
    EXTRA_CELLS_KEY,
    RESERVED_PROPERTIES,
    CleanContact,
    RawContactRow,
    Reason,
    canonical_column,
)

RawCells = Mapping[str, Any]  # header -> str | None, plus EXTRA_CELLS_KEY -> list[str]


@dataclass(frozen=True)
class Accepted:
    row_number: int
    contact: CleanContact


@dataclass(frozen=True)
class Quarantined:
    row_number: int
    raw: dict[str, Any]
    reasons: tuple[Reason, ...]


def _validation_reasons(err: ValidationError) -> list[Reason]:
    reasons = []
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"]]
        name = loc[-1] if loc and loc[0] in ("utm", "extra") else (loc[0] if loc else "row")
        code = "too_long" if problem["type"] == "string_too_long" else problem["type"]
        reasons.append(Reason(name, code, problem["msg"]))
    return reasons


def raw_row(cells: RawCells, columns: Mapping[str, str] | None = None) -> tuple[RawContactRow | None, list[Reason]]:
    """A row's cells under canonical names, schema-checked (cell length, known fields)."""
    values: dict[str, str] = {}
    utm: dict[str, str] = {}
    extra: dict[str, str] = {}
    reasons: list[Reason] = []
    for header, value in cells.items():
        if header == EXTRA_CELLS_KEY:
            cells_beyond = [v for v in value or [] if not norm.blank(v)]
            if cells_beyond:
                reasons.append(Reason("row", "extra_cells", f"{len(cells_beyond)} non-empty cells beyond the header's columns"))
            continue
        if value is None:  # a short row: the cell is absent
            continue
        column = (columns or {}).get(header) or canonical_column(header)
        if column.startswith("utm_"):
            utm[column] = value
        elif column in CANONICAL_COLUMNS:
            values[column] = value
        else:
            key = column or "column"
            extra[f"csv_{key}" if key in RESERVED_PROPERTIES else key] = value
    try:
        row = RawContactRow(**values, utm=utm, extra=extra)
    except ValidationError as err:
        return None, reasons + _validation_reasons(err)
    return row, reasons


def clean_row(row_number: int, cells: RawCells, *, region: str | None,
              columns: Mapping[str, str] | None = None) -> Accepted | Quarantined:
    raw, reasons = raw_row(cells, columns)
    if raw is None:
        return Quarantined(row_number, dict(cells), tuple(reasons))
    if all(norm.blank(v) for v in (*raw.model_dump(exclude={"utm", "extra"}).values(), *raw.utm.values(), *raw.extra.values())):
        return Quarantined(row_number, dict(cells), (Reason("row", "empty_row", "every cell is empty"),))

    def attempt(name: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except norm.FieldError as err:
            reasons.append(Reason(name, err.code, err.message))
            return None

    email = attempt("email", norm.normalize_email, raw.email)
    if email is None and norm.blank(raw.email):
        reasons.append(Reason("email", "required", "no email address: a contact is keyed by its email"))
    phone = attempt("phone", norm.normalize_phone, raw.phone, region) or (None, None)
    first_name = attempt("first_name", norm.normalize_name, raw.first_name)
    last_name = attempt("last_name", norm.normalize_name, raw.last_name, surname=True)
    job_title = attempt("job_title", _bounded_text, raw.job_title, 200)
    company_name = attempt("company_name", _bounded_text, raw.company_name, 200)
    company_domain = attempt("company_domain", norm.normalize_domain, raw.company_domain)
    lifecycle_stage = attempt("lifecycle_stage", norm.normalize_lifecycle_stage, raw.lifecycle_stage)
    updated_at = attempt("updated_at", norm.normalize_timestamp, raw.updated_at)
    utm = attempt("utm", norm.normalize_utm, raw.utm) or {}
    properties = {key: text for key, value in raw.extra.items() if (text := norm.clean_text(value)) is not None}
    if reasons:
        return Quarantined(row_number, dict(cells), tuple(reasons))
    try:
        contact = CleanContact(
            email=email, phone=phone[0], phone_extension=phone[1], first_name=first_name, last_name=last_name,
            job_title=job_title, company_name=company_name, company_domain=company_domain,
            lifecycle_stage=lifecycle_stage, utm=utm, properties=properties, updated_at=updated_at,
        )
    except ValidationError as err:
        return Quarantined(row_number, dict(cells), tuple(_validation_reasons(err)))
    return Accepted(row_number, contact)


def _bounded_text(value: str | None, limit: int) -> str | None:
    text = norm.clean_text(value)
    if text is not None and len(text) > limit:
        raise norm.FieldError("too_long", f"longer than {limit} characters")
    return text


@dataclass
class CleanBatch:
    contacts: list[MergedContact]  # one per email, rows of the batch already merged
    quarantined: list[Quarantined]

    @property
    def emails(self) -> list[str]:
        return [c.email for c in self.contacts]


def clean_batch(rows: Iterable[tuple[int, RawCells]], *, region: str | None, received_at: datetime,
                columns: Mapping[str, str] | None = None) -> CleanBatch:
    accepted: list[tuple[int, CleanContact]] = []
    quarantined: list[Quarantined] = []
    for row_number, cells in rows:
        outcome = clean_row(row_number, cells, region=region, columns=columns)
        if isinstance(outcome, Accepted):
            accepted.append((outcome.row_number, outcome.contact))
        else:
            quarantined.append(outcome)
    return CleanBatch(contacts=collapse(accepted, received_at), quarantined=quarantined)


@dataclass
class Plan:
    inserts: list[MergedContact] = field(default_factory=list)
    updates: list[tuple[ExistingContact, MergedContact, ContactUpdate]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)

    @property
    def inserted(self) -> int:
        return len(self.inserts)

    @property
    def merged(self) -> int:
        return (sum(len(c.row_numbers) - 1 for c in self.inserts)
                + sum(len(c.row_numbers) for _, c, _ in self.updates))

    @property
    def rows(self) -> int:
        return self.inserted + self.merged + len(self.quarantined)


def merged_from_refs(contact: MergedContact, row_ref: Callable[[int], str], *, into_existing: bool) -> list[str]:
    """Refs of the rows merged into a contact: all of them for a stored contact, all but the first
    (the row that creates it) for a new one."""
    rows = contact.row_numbers if into_existing else contact.row_numbers[1:]
    return [row_ref(n) for n in rows]


def plan(batch: CleanBatch, existing: Mapping[str, ExistingContact], row_ref: Callable[[int], str]) -> Plan:
    """What to write: new contacts, merges into stored ones (by normalized email), quarantined rows."""
    out = Plan(quarantined=list(batch.quarantined))
    for contact in batch.contacts:
        stored = existing.get(contact.email)
        if stored is None:
            out.inserts.append(contact)
        else:
            refs = merged_from_refs(contact, row_ref, into_existing=True)
            out.updates.append((stored, contact, merge_into_existing(stored, contact, refs)))
    return out
