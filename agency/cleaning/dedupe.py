"""De-duplication by normalized email: rows of one file, then a contact already in the store.

Merge rule (both cases): an empty value never overwrites; a field that is empty is filled; when
both sides have a value the newer one is kept. A row's time is its ``updated_at`` column when the
file has one, else the time the import was received; among equal times the later row wins. UTM
parameters are the first touch, so they are only ever filled, never replaced. Every row merged into
a contact is recorded on it (``properties.merged_from``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agency.cleaning.schema import CleanContact

# Merged as units: an extension belongs to the number it came with.
FIELDS = ("phone", "first_name", "last_name", "job_title", "company_name", "company_domain", "lifecycle_stage")
PHONE_EXTENSION = "phone_extension"
MERGED_FROM_LIMIT = 200  # the newest refs are kept; a contact re-imported daily must not grow forever


@dataclass
class MergedContact:
    """One contact made from every accepted row with its email (``row_numbers`` in file order)."""

    email: str
    values: dict[str, str | None]
    phone_extension: str | None
    utm: dict[str, str]
    properties: dict[str, str]
    field_times: dict[str, datetime]  # field (or "properties.<key>", "utm") -> time of the kept value
    row_numbers: list[int]


@dataclass
class ExistingContact:
    """A live contact of the tenant, as the merge needs it."""

    id: str
    email: str
    values: dict[str, str | None]
    phone_extension: str | None
    utm: dict[str, str]
    properties: dict[str, object]
    field_modified_at: dict[str, str]  # ISO-8601 per field
    updated_at: datetime
    company_id: object = None  # the stored link, kept unless the merge changes the domain


@dataclass
class ContactUpdate:
    values: dict[str, str | None]
    phone_extension: str | None
    utm: dict[str, str]
    properties: dict[str, object]
    field_modified_at: dict[str, str]
    changed: list[str] = field(default_factory=list)


def record_time(contact: CleanContact, received_at: datetime) -> datetime:
    return contact.updated_at or received_at


def collapse(accepted: Iterable[tuple[int, CleanContact]], received_at: datetime) -> list[MergedContact]:
    """Accepted rows -> one MergedContact per email, in order of each email's first row."""
    groups: dict[str, list[tuple[int, CleanContact]]] = {}
    for row_number, contact in accepted:
        groups.setdefault(contact.email, []).append((row_number, contact))
    merged = []
    for email, rows in groups.items():
        out = MergedContact(email=email, values=dict.fromkeys(FIELDS), phone_extension=None, utm={}, properties={},
                            field_times={}, row_numbers=sorted(n for n, _ in rows))
        # Oldest first, so each newer non-empty value overwrites; ties go to the later row.
        for row_number, contact in sorted(rows, key=lambda r: (record_time(r[1], received_at), r[0])):
            at = record_time(contact, received_at)
            for name in FIELDS:
                value = getattr(contact, name)
                if value is not None:
                    out.values[name] = value
                    out.field_times[name] = at
                    if name == "phone":
                        out.phone_extension = contact.phone_extension
            if contact.utm and not out.utm:
                out.utm = dict(contact.utm)
                out.field_times["utm"] = at
            for key, value in contact.properties.items():
                out.properties[key] = value
                out.field_times[f"properties.{key}"] = at
        merged.append(out)
    return merged


def _time(iso: str | None, fallback: datetime) -> datetime:
    if not iso:
        return fallback
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return fallback


def merge_into_existing(existing: ExistingContact, incoming: MergedContact, merged_from: list[str]) -> ContactUpdate:
    """``incoming`` merged into ``existing``; a field's time there is ``field_modified_at`` or the row's ``updated_at``."""
    update = ContactUpdate(values=dict(existing.values), phone_extension=existing.phone_extension,
                           utm=dict(existing.utm), properties=dict(existing.properties),
                           field_modified_at=dict(existing.field_modified_at))

    def newer(key: str, old: object, new: object) -> bool:
        if new is None or new == old:
            return False
        if old is None or old == "":
            return True
        return incoming.field_times[key] >= _time(existing.field_modified_at.get(key), existing.updated_at)

    for name in FIELDS:
        new = incoming.values.get(name)
        if newer(name, existing.values.get(name), new):
            update.values[name] = new
            update.field_modified_at[name] = incoming.field_times[name].isoformat()
            update.changed.append(name)
            if name == "phone":
                update.phone_extension = incoming.phone_extension
    if incoming.utm and not existing.utm:
        update.utm = dict(incoming.utm)
        update.field_modified_at["utm"] = incoming.field_times["utm"].isoformat()
        update.changed.append("utm")
    for key, new in incoming.properties.items():
        time_key = f"properties.{key}"
        if newer(time_key, existing.properties.get(key), new):
            update.properties[key] = new
            update.field_modified_at[time_key] = incoming.field_times[time_key].isoformat()
            update.changed.append(time_key)
    if merged_from:
        update.properties["merged_from"] = merged_refs(existing.properties.get("merged_from"), merged_from)
        update.changed.append("merged_from")
    return update


def merged_refs(previous: object, new: list[str]) -> list[str]:
    refs = [r for r in previous if isinstance(r, str)] if isinstance(previous, list) else []
    for ref in new:
        if ref not in refs:
            refs.append(ref)
    return refs[-MERGED_FROM_LIMIT:]
