"""The last agreement of a linked record, kept in ``synced_hash`` as per-field digests.

For each synced field we keep the digest of our value and of the CRM's value at the last sync
(equal when the sides agreed; different where a policy let them differ, e.g. ``only_if_empty``).
A side whose current digest for a field differs from the stored one edited that field since:
that is how concurrent edits are told apart from one-sided ones without keeping the values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

_VERSION = "v1:"
_NONE = "\x00none"


def digest(value: str | None) -> str:
    raw = _NONE if value is None else value
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FieldBase:
    ours: str
    theirs: str


Snapshot = dict[str, FieldBase]


def encode(snapshot: Mapping[str, FieldBase]) -> str:
    parts = {
        name: base.ours if base.ours == base.theirs else [base.ours, base.theirs]
        for name, base in sorted(snapshot.items())
    }
    return _VERSION + json.dumps(parts, separators=(",", ":"), sort_keys=True)


def decode(text: str | None) -> Snapshot | None:
    """The stored snapshot; None when the record was never synced (or holds an older format)."""
    if not text or not text.startswith(_VERSION):
        return None
    try:
        parts = json.loads(text[len(_VERSION):])
    except ValueError:
        return None
    snapshot: Snapshot = {}
    for name, value in parts.items():
        if isinstance(value, str):
            snapshot[name] = FieldBase(value, value)
        elif isinstance(value, list) and len(value) == 2:
            snapshot[name] = FieldBase(str(value[0]), str(value[1]))
    return snapshot


def agreed(ours: str | None, theirs: str | None) -> FieldBase:
    return FieldBase(digest(ours), digest(theirs))
