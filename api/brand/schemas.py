"""Request/response bodies of the brand profile endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MAX_VOICE_CHARS = 500
MAX_TERMS = 200  # per vocabulary list
MAX_CLAIMS = 100
MAX_PERSONAS = 20
MAX_NEEDS = 20
# PostgreSQL cannot store NUL in text or JSONB; saying so in the schema keeps it a 422, not a 500.
NO_NUL = r"^[^\x00]*$"


def text(max_length: int) -> StringConstraints:
    """A trimmed, non-empty string of at most ``max_length`` characters."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length, pattern=NO_NUL)


Term = Annotated[str, text(80)]
Claim = Annotated[str, text(300)]
Need = Annotated[str, text(200)]


def _no_repeats(values: list[str], what: str) -> list[str]:
    # Case-insensitive: "Eco" and "eco" are one word to the compliance check.
    seen: set[str] = set()
    for value in values:
        key = value.casefold()
        if key in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(key)
    return values


class PersonaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, text(80)]
    description: Annotated[str, text(1000)]
    needs: Annotated[list[Need], Field(max_length=MAX_NEEDS)] = []

    @field_validator("needs")
    @classmethod
    def _unique_needs(cls, needs: list[str]) -> list[str]:
        return _no_repeats(needs, "need")


class BrandProfileIn(BaseModel):
    """A whole profile: each PUT states all of it (a new version), nothing is merged."""

    model_config = ConfigDict(extra="forbid")

    voice: Annotated[str, text(MAX_VOICE_CHARS)] = Field(
        description='How the brand sounds, e.g. "warm, practical, plain-spoken; no hype"'
    )
    vocabulary_use: Annotated[list[Term], Field(max_length=MAX_TERMS)] = Field(
        default=[], description="Words and phrases the copy should prefer"
    )
    vocabulary_avoid: Annotated[list[Term], Field(max_length=MAX_TERMS)] = Field(
        default=[], description="Banned words and phrases: a draft using one is blocked"
    )
    claims_needing_substantiation: Annotated[list[Claim], Field(max_length=MAX_CLAIMS)] = Field(
        default=[], description="Claims allowed only when the campaign brief's key_claims substantiate them"
    )
    personas: Annotated[list[PersonaIn], Field(max_length=MAX_PERSONAS)] = []

    @field_validator("vocabulary_use", "vocabulary_avoid", "claims_needing_substantiation")
    @classmethod
    def _unique_entries(cls, values: list[str]) -> list[str]:
        return _no_repeats(values, "entry")

    @field_validator("personas")
    @classmethod
    def _unique_personas(cls, personas: list[PersonaIn]) -> list[PersonaIn]:
        _no_repeats([p.name for p in personas], "persona")
        return personas

    @model_validator(mode="after")
    def _use_and_avoid_disjoint(self) -> "BrandProfileIn":
        both = {t.casefold() for t in self.vocabulary_use} & {t.casefold() for t in self.vocabulary_avoid}
        if both:
            raise ValueError(f"terms both to use and to avoid: {sorted(both)}")
        return self

    def to_profile(self) -> dict[str, Any]:
        """The stored form (agency.db.brand.PROFILE_FIELDS)."""
        return self.model_dump(mode="json")


class PersonaOut(BaseModel):
    name: str
    description: str
    needs: list[str]


class BrandProfileView(BaseModel):
    version: int
    voice: str
    vocabulary_use: list[str]
    vocabulary_avoid: list[str]
    claims_needing_substantiation: list[str]
    personas: list[PersonaOut]
    created_at: datetime
    created_by: str


class BrandProfileSaved(BrandProfileView):
    created: bool = Field(description="False: the profile equals the current version, nothing was stored")


class BrandVersionSummary(BaseModel):
    version: int
    created_at: datetime
    created_by: str
