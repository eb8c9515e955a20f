"""One record's sync decision: what to write on each side, what waits for review, the new snapshot.

Per field (see :mod:`agency.sync.policy` for the policies):

1. ``never`` fields are skipped.
2. Equal values: agreed.
3. Each side is *changed* when its digest differs from the snapshot (both are, for a record
   never synced). Neither changed: the sides differ on purpose (``only_if_empty``); keep both.
4. Never synced and one side empty: the other side's value fills it, whatever the policy.
5. ``only_if_empty``: a changed side's value fills the other side only if that one is empty.
6. One side changed: its value is copied to the other side.
7. Both changed: ``overwrite`` -> the winner's value; ``newest_wins`` -> the later edit (a side
   without a time is older; ``winner`` breaks ties); ``review`` -> a conflict, nothing written,
   and the field's snapshot stays as it was so the conflict is seen again until resolved.

Re-deciding a record whose writes already landed gives no writes (both sides then match the
snapshot or each other), which is what makes a retried page harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from agency.sync.mapping import specs
from agency.sync.policy import SyncPolicy
from agency.sync.snapshot import FieldBase, Snapshot, agreed, digest


@dataclass(frozen=True)
class FieldConflict:
    field: str
    ours: str | None
    theirs: str | None
    ours_modified_at: datetime | None
    theirs_modified_at: datetime | None


@dataclass
class RecordDecision:
    # field -> (value, edit time to record in our field_modified_at: the CRM's edit time)
    ours_updates: dict[str, tuple[str | None, datetime | None]] = field(default_factory=dict)
    theirs_updates: dict[str, str | None] = field(default_factory=dict)
    conflicts: list[FieldConflict] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=dict)

    @property
    def changes_anything(self) -> bool:
        return bool(self.ours_updates or self.theirs_updates)


def _newer(ours_at: datetime | None, theirs_at: datetime | None, tie_winner: str) -> str:
    if ours_at is None and theirs_at is None:
        return tie_winner
    if ours_at is None:
        return "theirs"
    if theirs_at is None:
        return "ours"
    if ours_at == theirs_at:
        return tie_winner
    return "ours" if ours_at > theirs_at else "theirs"


def reconcile(
    object_type: str,
    *,
    ours: Mapping[str, str | None],
    theirs: Mapping[str, str | None],
    snapshot: Snapshot | None,
    policy: SyncPolicy,
    ours_modified_at: Mapping[str, datetime | None] | None = None,
    theirs_modified_at: Mapping[str, datetime | None] | None = None,
) -> RecordDecision:
    """The decision for one record; ``snapshot`` None means the sides were never linked before."""
    ours_at = ours_modified_at or {}
    theirs_at = theirs_modified_at or {}
    decision = RecordDecision()
    first_link = snapshot is None
    base_of = snapshot or {}

    def pull(name: str, value: str | None) -> None:
        decision.ours_updates[name] = (value, theirs_at.get(name))
        decision.snapshot[name] = agreed(value, value)

    def push(name: str, value: str | None) -> None:
        decision.theirs_updates[name] = value
        decision.snapshot[name] = agreed(value, value)

    for spec in specs(object_type):
        name = spec.field
        rule = policy.for_field(object_type, name)
        if rule.kind == "never":
            continue
        o, t = ours.get(name), theirs.get(name)
        if o == t:
            decision.snapshot[name] = agreed(o, t)
            continue
        base = base_of.get(name)
        o_changed = first_link or base is None or digest(o) != base.ours
        t_changed = first_link or base is None or digest(t) != base.theirs
        if not o_changed and not t_changed:
            decision.snapshot[name] = base  # type: ignore[assignment]  (base is set here)
            continue
        if first_link and (o is None or t is None):
            if o is None:
                pull(name, t)
            else:
                push(name, o)
            continue
        if rule.kind == "only_if_empty":
            if t_changed and t is not None and o is None:
                pull(name, t)
            elif o_changed and o is not None and t is None:
                push(name, o)
            else:
                decision.snapshot[name] = FieldBase(digest(o), digest(t))
            continue
        if o_changed and not t_changed:
            push(name, o)
            continue
        if t_changed and not o_changed:
            pull(name, t)
            continue
        if rule.kind == "review":
            decision.conflicts.append(FieldConflict(name, o, t, ours_at.get(name), theirs_at.get(name)))
            if base is not None:
                decision.snapshot[name] = base
            continue
        winner = rule.winner if rule.kind == "overwrite" else _newer(ours_at.get(name), theirs_at.get(name), rule.winner)
        if winner == "ours":
            push(name, o)
        else:
            pull(name, t)
    return decision


def resolve_field(snapshot: Snapshot | None, name: str, value: str | None) -> Snapshot:
    """The snapshot after a person's resolution wrote ``value`` to both sides of ``name``."""
    updated = dict(snapshot or {})
    updated[name] = agreed(value, value)
    return updated


# ---- deletions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class DeletionDecision:
    """What to do about a record deleted on one side.

    ``action``: ``tombstone`` (mark ours deleted), ``recreate`` (create the CRM record again from
    ours), ``review`` (a person decides), ``archive`` (archive the CRM record), ``keep`` (leave it).
    """

    action: str


def on_crm_archived(policy: SyncPolicy, *, ours_deleted: bool) -> DeletionDecision:
    if ours_deleted:
        return DeletionDecision("keep")  # both sides agree already
    return DeletionDecision(policy.deletion.crm_archived)


def on_local_deleted(policy: SyncPolicy, *, crm_archived: bool) -> DeletionDecision:
    if crm_archived:
        return DeletionDecision("keep")
    return DeletionDecision(policy.deletion.local_deleted)
