"""Password hashing: argon2id, rehash on stale parameters, never an exception on a bad hash."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher

from agency.security.passwords import hash_password, verify_password


def test_hash_is_argon2id_and_salted() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert first != second  # random salt per hash
    assert "correct horse" not in first


def test_right_password_verifies_and_wrong_one_does_not() -> None:
    stored = hash_password("correct horse")
    assert verify_password(stored, "correct horse").ok
    assert not verify_password(stored, "correct horse ").ok
    assert not verify_password(stored, "").ok


def test_hash_with_weaker_parameters_asks_for_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("pw")
    check = verify_password(weak, "pw")
    assert check.ok and check.needs_rehash
    assert not verify_password(hash_password("pw"), "pw").needs_rehash


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$m=65536,t=3,p=4$broken"])
def test_missing_or_corrupt_hash_never_authenticates(stored: str | None) -> None:
    assert verify_password(stored, "anything").ok is False


def test_empty_password_cannot_be_set() -> None:
    with pytest.raises(ValueError):
        hash_password("")


def test_unknown_account_costs_a_real_argon2_verification() -> None:
    """No hash (unknown user) must not short-circuit: timing would reveal which accounts exist."""
    verify_password(None, "warm-up")  # the first call builds the dummy hash
    started = time.perf_counter()
    assert not verify_password(None, "wrong").ok
    # argon2id with default parameters takes tens of ms; a short-circuit takes microseconds.
    assert time.perf_counter() - started > 0.005
