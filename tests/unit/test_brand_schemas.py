"""Brand profile input: strict, trimmed, capped; what the API stores is what the agents read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.brand.schemas import MAX_TERMS, MAX_VOICE_CHARS, BrandProfileIn
from agency.db.brand import PROFILE_FIELDS, profile_content

GOOD = {
    "voice": "  warm, practical, plain-spoken; no hype ",
    "vocabulary_use": [" trail-tested", "waterproof"],
    "vocabulary_avoid": ["revolutionary", "best ever"],
    "claims_needing_substantiation": ["waterproof for 8 hours"],
    "personas": [{"name": "Weekend hiker", "description": "25-45, hikes on Saturdays", "needs": ["dry feet"]}],
}


def errors(payload: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        BrandProfileIn.model_validate(payload)
    return [(e["loc"], e["type"]) for e in caught.value.errors()]


def test_a_valid_profile_is_trimmed_and_stored_whole():
    profile = BrandProfileIn.model_validate(GOOD).to_profile()
    assert set(profile) == set(PROFILE_FIELDS)
    assert profile["voice"] == "warm, practical, plain-spoken; no hype"
    assert profile["vocabulary_use"] == ["trail-tested", "waterproof"]
    assert profile["personas"] == GOOD["personas"]
    # Only the voice is required; the lists default to empty.
    assert BrandProfileIn.model_validate({"voice": "calm"}).to_profile()["personas"] == []


@pytest.mark.parametrize(
    "change, loc",
    [
        ({"voice": "   "}, ("voice",)),
        ({"voice": "x" * (MAX_VOICE_CHARS + 1)}, ("voice",)),
        ({"vocabulary_use": ["ok", " "]}, ("vocabulary_use", 1)),
        ({"vocabulary_avoid": [7]}, ("vocabulary_avoid", 0)),
        ({"vocabulary_avoid": [f"w{i}" for i in range(MAX_TERMS + 1)]}, ("vocabulary_avoid",)),
        ({"vocabulary_avoid": ["Hype", "hype "]}, ("vocabulary_avoid",)),
        ({"personas": [{"name": "A"}]}, ("personas", 0, "description")),
        ({"personas": [{"name": "A", "description": "d", "age": 3}]}, ("personas", 0, "age")),
        ({"personas": [{"name": "A", "description": "d"}, {"name": "a", "description": "e"}]}, ("personas",)),
        ({"tone": "loud"}, ("tone",)),
        ({"vocabulary_use": None}, ("vocabulary_use",)),
        ({"voice": "calm\x00"}, ("voice",)),  # PostgreSQL cannot store NUL
    ],
)
def test_invalid_fields_are_named(change, loc):
    assert loc in [e_loc for e_loc, _ in errors({**GOOD, **change})]


def test_a_term_cannot_be_both_preferred_and_banned():
    found = errors({**GOOD, "vocabulary_use": ["Waterproof"], "vocabulary_avoid": ["waterproof"]})
    assert found and found[0][1] == "value_error"


def test_profile_content_ignores_what_storage_assigns():
    stored = {"tenant": "acme", "version": 3, **BrandProfileIn.model_validate(GOOD).to_profile()}
    assert profile_content(stored) == BrandProfileIn.model_validate(GOOD).to_profile()
    assert profile_content(stored) != profile_content({**stored, "voice": "different"})
