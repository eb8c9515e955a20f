"""Per-field conflict policies and the deletion policy, as plain data a workflow can carry.

How a field is reconciled (see :mod:`agency.sync.reconcile`): an edit made on one side only is
copied to the other side; the policy decides what happens when *both* sides edited the field
since the last agreement, with two exceptions that apply always:

* ``never``: the field is not synced at all; each side keeps its own value;
* ``only_if_empty``: a value is only ever written into an empty field, never over a value.

Conflict policies: ``overwrite`` (``winner`` side wins), ``newest_wins`` (the later edit wins:
our per-field ``field_modified_at`` against the CRM's property time, ``winner`` breaks ties),
``review`` (nothing is written; the conflict waits for a person).
"""

# No postponed annotations here: Temporal's converter resolves these dataclasses' field types
# inside the workflow sandbox, where string annotations cannot be looked up.
from dataclasses import dataclass, field
from typing import Literal

from agency.sync.mapping import COMPANIES, CONTACTS, specs

PolicyKind = Literal["overwrite", "only_if_empty", "never", "newest_wins", "review"]
Side = Literal["ours", "theirs"]
POLICY_KINDS = ("overwrite", "only_if_empty", "never", "newest_wins", "review")


@dataclass(frozen=True)
class FieldPolicy:
    kind: str = "newest_wins"
    # overwrite: the side that wins a conflict; newest_wins: the side that wins a tie.
    winner: str = "theirs"

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"unknown field policy {self.kind!r}; expected one of {POLICY_KINDS}")
        if self.winner not in ("ours", "theirs"):
            raise ValueError(f"winner must be 'ours' or 'theirs', not {self.winner!r}")


@dataclass(frozen=True)
class DeletionPolicy:
    # The CRM archived a linked record: tombstone ours, keep ours and create it again, or ask a person.
    crm_archived: str = "tombstone"
    # We tombstoned a linked record: archive it in the CRM, or leave the CRM's copy alone.
    local_deleted: str = "archive"

    def __post_init__(self) -> None:
        if self.crm_archived not in ("tombstone", "recreate", "review"):
            raise ValueError(f"crm_archived must be tombstone, recreate or review, not {self.crm_archived!r}")
        if self.local_deleted not in ("archive", "keep"):
            raise ValueError(f"local_deleted must be archive or keep, not {self.local_deleted!r}")


def default_contact_policies() -> dict[str, FieldPolicy]:
    return {
        "email": FieldPolicy("newest_wins"),
        "first_name": FieldPolicy("newest_wins"),
        "last_name": FieldPolicy("newest_wins"),
        # A number someone typed in is not replaced by another source's guess.
        "phone": FieldPolicy("only_if_empty"),
        # Titles drive segmentation; two different edits need a person.
        "job_title": FieldPolicy("review"),
        # Sales owns the funnel stage in the CRM.
        "lifecycle_stage": FieldPolicy("overwrite", winner="theirs"),
        "notes": FieldPolicy("never"),
    }


def default_company_policies() -> dict[str, FieldPolicy]:
    return {"name": FieldPolicy("newest_wins"), "domain": FieldPolicy("only_if_empty")}


@dataclass(frozen=True)
class SyncPolicy:
    contacts: dict[str, FieldPolicy] = field(default_factory=default_contact_policies)
    companies: dict[str, FieldPolicy] = field(default_factory=default_company_policies)
    deletion: DeletionPolicy = field(default_factory=DeletionPolicy)

    def __post_init__(self) -> None:
        for object_type, policies in ((CONTACTS, self.contacts), (COMPANIES, self.companies)):
            known = {s.field for s in specs(object_type)}
            unknown = sorted(set(policies) - known)
            if unknown:
                raise ValueError(f"{object_type}: no synced field(s) {', '.join(unknown)}")

    def for_field(self, object_type: str, field_name: str) -> FieldPolicy:
        policies = self.contacts if object_type == CONTACTS else self.companies
        # A mapped field without a policy is synced, the later edit winning.
        return policies.get(field_name, FieldPolicy())
