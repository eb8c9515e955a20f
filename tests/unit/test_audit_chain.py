"""The audit hash chain as pure functions: hashing and verification without a database."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from agency.security.audit import (
    GENESIS_HASH,
    AuditFields,
    ChainHead,
    ChainRecord,
    canonical_encoding,
    record_hash,
    verify_chain,
)

T0 = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=timezone.utc)
TENANT = uuid.UUID("6f1c1f1e-2a8e-4c43-9b59-0f5c1d2e3a4b")


def _fields(**overrides: object) -> AuditFields:
    base = AuditFields(
        tenant_id=TENANT,
        actor="ana@example.com",
        action="campaign.requested",
        subject_type="campaign",
        subject_id="cmp-1",
        outcome="ok",
        request_id="req-1",
        detail={"channels": ["email", "social"], "budget_cents": 1000},
        created_at=T0,
    )
    return dataclasses.replace(base, **overrides)


def _chain(n: int, first_id: int = 1) -> tuple[list[ChainRecord], ChainHead]:
    records: list[ChainRecord] = []
    prev = GENESIS_HASH
    for i in range(n):
        fields = _fields(subject_id=f"cmp-{i}", created_at=T0 + timedelta(microseconds=i))
        digest = record_hash(prev, fields)
        records.append(ChainRecord(id=first_id + i, prev_hash=prev, hash=digest, fields=fields))
        prev = digest
    head = ChainHead(last_id=records[-1].id if records else None, last_hash=prev, count=n)
    return records, head


# ---- hashing ----------------------------------------------------------------------------
def test_record_hash_is_deterministic_hex_sha256() -> None:
    first = record_hash(GENESIS_HASH, _fields())
    assert first == record_hash(GENESIS_HASH, _fields())
    assert len(first) == 64 and int(first, 16) >= 0


def test_hash_ignores_dict_key_order_and_timezone_of_the_same_instant() -> None:
    reordered = _fields(detail={"budget_cents": 1000, "channels": ["email", "social"]})
    elsewhere = _fields(created_at=T0.astimezone(timezone(timedelta(hours=-5))))
    expected = record_hash(GENESIS_HASH, _fields())
    assert record_hash(GENESIS_HASH, reordered) == expected
    assert record_hash(GENESIS_HASH, elsewhere) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": None},
        {"tenant_id": uuid.UUID(int=1)},
        {"actor": "mallory@example.com"},
        {"action": "campaign.cancel"},
        {"subject_type": "content_item"},
        {"subject_id": "cmp-2"},
        {"outcome": "denied"},
        {"request_id": None},
        {"request_id": "req-2"},
        {"detail": {"channels": ["email"], "budget_cents": 1000}},
        {"detail": {"channels": ["email", "social"], "budget_cents": 1001}},
        {"detail": {}},
        {"created_at": T0 + timedelta(microseconds=1)},
    ],
    ids=lambda change: ",".join(change),
)
def test_any_field_change_changes_the_hash(change: dict[str, object]) -> None:
    assert record_hash(GENESIS_HASH, _fields(**change)) != record_hash(GENESIS_HASH, _fields())


def test_hash_depends_on_the_previous_hash() -> None:
    assert record_hash("a" * 64, _fields()) != record_hash(GENESIS_HASH, _fields())


def test_field_boundaries_cannot_be_shifted() -> None:
    """'ab'+'c' and 'a'+'bc' must not collide: the encoding is structured, not concatenated."""
    left = _fields(actor="ab", action="c")
    right = _fields(actor="a", action="bc")
    assert record_hash(GENESIS_HASH, left) != record_hash(GENESIS_HASH, right)


def test_encoding_is_ascii_and_keeps_microseconds() -> None:
    encoded = canonical_encoding(GENESIS_HASH, _fields(actor="zoë", created_at=T0.replace(microsecond=0)))
    assert b"\\u00eb" in encoded
    assert b'"created_at":"2026-11-28T12:00:00.000000Z"' in encoded


@pytest.mark.parametrize("bad", ["", "0" * 63, "g" * 64, "A" * 64])
def test_malformed_prev_hash_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        record_hash(bad, _fields())


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValueError):
        record_hash(GENESIS_HASH, _fields(created_at=T0.replace(tzinfo=None)))


def test_non_finite_numbers_in_detail_are_rejected() -> None:
    with pytest.raises(ValueError):
        record_hash(GENESIS_HASH, _fields(detail={"score": float("nan")}))


# ---- verification -----------------------------------------------------------------------
def test_intact_chain_verifies() -> None:
    records, head = _chain(5)
    result = verify_chain(records, head)
    assert (result.ok, result.records_checked, result.bad_record_id, result.reason) == (True, 5, None, None)


def test_empty_chain_at_genesis_verifies() -> None:
    assert verify_chain([], ChainHead(last_id=None, last_hash=GENESIS_HASH, count=0)).ok


def test_id_gaps_from_rolled_back_appends_are_fine() -> None:
    records, _ = _chain(3)
    gappy = [dataclasses.replace(r, id=r.id * 10) for r in records]
    assert verify_chain(gappy, ChainHead(last_id=30, last_hash=records[-1].hash, count=3)).ok


def test_altered_field_is_named() -> None:
    records, head = _chain(5)
    records[2] = dataclasses.replace(records[2], fields=_fields(actor="mallory", subject_id="cmp-2"))
    result = verify_chain(records, head)
    assert not result.ok
    assert result.bad_record_id == 3
    assert "altered" in result.reason


def test_altered_record_with_recomputed_hash_breaks_the_next_link() -> None:
    records, head = _chain(5)
    forged_fields = dataclasses.replace(records[1].fields, actor="mallory")
    forged_hash = record_hash(records[1].prev_hash, forged_fields)
    records[1] = dataclasses.replace(records[1], fields=forged_fields, hash=forged_hash)
    result = verify_chain(records, head)
    assert (result.ok, result.bad_record_id) == (False, 3)
    assert "prev_hash" in result.reason


def test_deleted_middle_record_is_reported_at_the_record_after_the_gap() -> None:
    records, head = _chain(5)
    del records[2]  # id 3
    result = verify_chain(records, head)
    assert (result.ok, result.bad_record_id) == (False, 4)
    assert "record 2" in result.reason


def test_deleted_first_record_is_detected() -> None:
    records, head = _chain(3)
    result = verify_chain(records[1:], head)
    assert (result.ok, result.bad_record_id) == (False, 2)
    assert "genesis" in result.reason


def test_deleted_last_record_is_detected_through_the_head() -> None:
    records, head = _chain(5)
    result = verify_chain(records[:-1], head)
    assert (result.ok, result.bad_record_id) == (False, 5)
    assert "missing" in result.reason


def test_emptied_log_is_detected_through_the_head() -> None:
    _, head = _chain(4)
    result = verify_chain([], head)
    assert (result.ok, result.records_checked, result.bad_record_id) == (False, 0, 4)


def test_missing_head_fails_even_for_a_valid_chain() -> None:
    records, _ = _chain(2)
    result = verify_chain(records, None)
    assert not result.ok and result.bad_record_id is None
    assert "head" in result.reason


def test_head_behind_a_consistent_chain_is_accepted_as_concurrent_appends() -> None:
    """The verifier reads the head first; records appended afterwards must still chain."""
    records, _ = _chain(5)
    head_at_3 = ChainHead(last_id=3, last_hash=records[2].hash, count=3)
    assert verify_chain(records, head_at_3).ok


def test_head_record_missing_while_later_records_exist_is_named() -> None:
    records, _ = _chain(5)
    head_at_3 = ChainHead(last_id=3, last_hash=records[2].hash, count=3)
    result = verify_chain(records[:2] + records[3:], head_at_3)
    assert (result.ok, result.bad_record_id) == (False, 3)
    assert "record 3 (the chain head) is missing" in result.reason


def test_head_hash_or_count_mismatch_is_detected() -> None:
    records, head = _chain(3)
    assert not verify_chain(records, dataclasses.replace(head, last_hash="f" * 64)).ok
    assert not verify_chain(records, dataclasses.replace(head, count=4)).ok
    inconsistent_empty = ChainHead(last_id=7, last_hash=GENESIS_HASH, count=0)
    assert not verify_chain([], inconsistent_empty).ok


def test_reordered_records_are_detected() -> None:
    records, head = _chain(4)
    swapped = [records[0], dataclasses.replace(records[2], id=2), dataclasses.replace(records[1], id=3), records[3]]
    result = verify_chain(swapped, head)
    assert (result.ok, result.bad_record_id) == (False, 2)


def test_verification_stops_at_the_first_bad_record() -> None:
    records, head = _chain(6)
    records[1] = dataclasses.replace(records[1], hash="e" * 64)
    records[4] = dataclasses.replace(records[4], hash="e" * 64)
    result = verify_chain(records, head)
    assert (result.bad_record_id, result.records_checked) == (2, 2)
