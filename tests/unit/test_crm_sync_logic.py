"""CRM sync decisions: per-field policies, snapshot change detection, deletions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agency.sync import snapshot as snap
from agency.sync.mapping import CONTACTS, ours_from_row, theirs_from_crm, to_crm
from agency.sync.policy import DeletionPolicy, FieldPolicy, SyncPolicy
from agency.sync.reconcile import on_crm_archived, on_local_deleted, reconcile, resolve_field

T0 = datetime(2026, 11, 1, tzinfo=UTC)
FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "lifecycle_stage", "notes")


def contact(**values):
    return {name: values.get(name) for name in FIELDS}


def agreed_snapshot(values):
    return {name: snap.agreed(v, v) for name, v in values.items()}


BASE = contact(email="ann@acme.test", first_name="Ann", phone="+4915112345678", job_title="CMO",
               lifecycle_stage="lead", notes="met at fair")


def decide(ours, theirs, policy=None, snapshot=None, ours_at=None, theirs_at=None):
    return reconcile(CONTACTS, ours=ours, theirs=theirs, policy=policy or SyncPolicy(),
                     snapshot=agreed_snapshot(BASE) if snapshot is None else snapshot,
                     ours_modified_at=ours_at, theirs_modified_at=theirs_at)


def test_unchanged_record_decides_nothing():
    decision = decide(BASE, BASE)
    assert not decision.changes_anything and not decision.conflicts
    assert snap.encode(decision.snapshot) == snap.encode({k: v for k, v in agreed_snapshot(BASE).items() if k != "notes"})


def test_one_sided_edits_flow_to_the_other_side():
    decision = decide({**BASE, "first_name": "Anna"}, {**BASE, "last_name": "Berg"})
    assert decision.theirs_updates == {"first_name": "Anna"}
    assert decision.ours_updates == {"last_name": ("Berg", None)}


def test_never_field_is_not_synced_either_way():
    decision = decide({**BASE, "notes": "private"}, {**BASE, "notes": "theirs"})
    assert "notes" not in decision.theirs_updates and "notes" not in decision.ours_updates
    assert "notes" not in decision.snapshot


def test_newest_wins_by_edit_time_each_way():
    ours, theirs = {**BASE, "email": "ann@new.test"}, {**BASE, "email": "ann@crm.test"}
    later_ours = decide(ours, theirs, ours_at={"email": T0 + timedelta(minutes=5)}, theirs_at={"email": T0})
    assert later_ours.theirs_updates == {"email": "ann@new.test"}
    later_theirs = decide(ours, theirs, ours_at={"email": T0}, theirs_at={"email": T0 + timedelta(seconds=1)})
    assert later_theirs.ours_updates == {"email": ("ann@crm.test", T0 + timedelta(seconds=1))}


def test_newest_wins_tie_and_missing_times():
    ours, theirs = {**BASE, "email": "a@o.test"}, {**BASE, "email": "a@t.test"}
    tie_ours = SyncPolicy(contacts={"email": FieldPolicy("newest_wins", winner="ours")})
    assert decide(ours, theirs, tie_ours, ours_at={"email": T0}, theirs_at={"email": T0}).theirs_updates == {"email": "a@o.test"}
    assert decide(ours, theirs, ours_at={}, theirs_at={"email": T0}).ours_updates["email"][0] == "a@t.test"


@pytest.mark.parametrize("winner", ["ours", "theirs"])
def test_overwrite_conflict_goes_to_the_configured_side(winner):
    policy = SyncPolicy(contacts={"lifecycle_stage": FieldPolicy("overwrite", winner=winner)})
    ours, theirs = {**BASE, "lifecycle_stage": "customer"}, {**BASE, "lifecycle_stage": "opportunity"}
    # Even a later edit on the losing side does not win.
    decision = decide(ours, theirs, policy, ours_at={"lifecycle_stage": T0 + timedelta(days=1)},
                      theirs_at={"lifecycle_stage": T0})
    if winner == "ours":
        assert decision.theirs_updates == {"lifecycle_stage": "customer"} and not decision.ours_updates
    else:
        assert decision.ours_updates == {"lifecycle_stage": ("opportunity", T0)} and not decision.theirs_updates


def test_only_if_empty_never_writes_over_a_value_and_stays_settled():
    ours, theirs = {**BASE, "phone": "+4915100000001"}, {**BASE, "phone": "+4915100000002"}
    decision = decide(ours, theirs)
    assert not decision.changes_anything and not decision.conflicts
    # Both values are remembered: the next round sees no edit on either side.
    again = decide(ours, theirs, snapshot=decision.snapshot)
    assert not again.changes_anything and again.snapshot["phone"] == decision.snapshot["phone"]
    # An edit into an empty side fills it.
    filled = decide({**BASE, "phone": None}, {**BASE, "phone": "+4915100000002"},
                    snapshot=agreed_snapshot({**BASE, "phone": None}))
    assert filled.ours_updates == {"phone": ("+4915100000002", None)}
    one_sided = decide({**BASE, "phone": "+4915100000009"}, BASE)
    assert not one_sided.theirs_updates  # the CRM holds a number: not replaced


def test_review_conflict_writes_nothing_and_keeps_the_old_snapshot():
    ours, theirs = {**BASE, "job_title": "VP Marketing"}, {**BASE, "job_title": "Head of Growth"}
    decision = decide(ours, theirs)
    assert not decision.changes_anything
    [conflict] = decision.conflicts
    assert (conflict.field, conflict.ours, conflict.theirs) == ("job_title", "VP Marketing", "Head of Growth")
    assert decision.snapshot["job_title"] == snap.agreed("CMO", "CMO")
    # Seen again next round, until a person resolves it.
    assert decide(ours, theirs, snapshot=decision.snapshot).conflicts
    resolved = resolve_field(decision.snapshot, "job_title", "Head of Growth")
    after = decide({**ours, "job_title": "Head of Growth"}, theirs, snapshot=resolved)
    assert not after.conflicts and not after.changes_anything


def test_both_sides_making_the_same_edit_agree():
    decision = decide({**BASE, "job_title": "CEO"}, {**BASE, "job_title": "CEO"})
    assert not decision.conflicts and not decision.changes_anything


def test_first_link_fills_empty_sides_then_reapplying_is_a_no_op():
    ours = contact(email="bo@acme.test", first_name="Bo", notes="x")
    created = reconcile(CONTACTS, ours=ours, theirs=contact(), snapshot=None, policy=SyncPolicy())
    assert created.theirs_updates == {"email": "bo@acme.test", "first_name": "Bo"}
    crm = {**contact(), **created.theirs_updates}
    again = reconcile(CONTACTS, ours=ours, theirs=crm, snapshot=created.snapshot, policy=SyncPolicy())
    assert not again.changes_anything and not again.conflicts


def test_first_link_with_different_values_uses_the_policy():
    ours = contact(email="c@acme.test", job_title="CTO")
    theirs = contact(email="c@acme.test", job_title="Founder")
    decision = reconcile(CONTACTS, ours=ours, theirs=theirs, snapshot=None, policy=SyncPolicy())
    assert [c.field for c in decision.conflicts] == ["job_title"]


def test_snapshot_round_trip_and_unknown_formats():
    shot = {"email": snap.agreed("a", "a"), "phone": snap.agreed("1", "2")}
    assert snap.decode(snap.encode(shot)) == shot
    assert snap.decode(None) is None and snap.decode("legacy-md5") is None


def test_mapping_normalizes_and_maps_names():
    ours = ours_from_row(CONTACTS, {"email": " Ann@Acme.TEST ", "first_name": "", "phone": None}, {"notes": "n"})
    assert ours["email"] == "ann@acme.test" and ours["first_name"] is None and ours["notes"] == "n"
    theirs = theirs_from_crm(CONTACTS, {"firstname": "Ann", "lifecyclestage": "lead"})
    assert theirs["first_name"] == "Ann" and theirs["lifecycle_stage"] == "lead" and theirs["email"] is None
    assert to_crm(CONTACTS, {"job_title": None, "first_name": "Ann"}) == {"jobtitle": "", "firstname": "Ann"}


def test_deletion_policies():
    keep_ours = SyncPolicy(deletion=DeletionPolicy(crm_archived="recreate", local_deleted="keep"))
    assert on_crm_archived(SyncPolicy(), ours_deleted=False).action == "tombstone"
    assert on_crm_archived(keep_ours, ours_deleted=False).action == "recreate"
    assert on_crm_archived(keep_ours, ours_deleted=True).action == "keep"
    assert on_local_deleted(SyncPolicy(), crm_archived=False).action == "archive"
    assert on_local_deleted(keep_ours, crm_archived=False).action == "keep"
    assert on_local_deleted(SyncPolicy(), crm_archived=True).action == "keep"


def test_policies_are_validated():
    with pytest.raises(ValueError):
        FieldPolicy("sometimes")
    with pytest.raises(ValueError):
        SyncPolicy(contacts={"shoe_size": FieldPolicy()})
    with pytest.raises(ValueError):
        DeletionPolicy(crm_archived="shrug")
