"""Request and response bodies of /v1/sync and the HubSpot webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class FieldPolicyIn(BaseModel):
    kind: Literal["overwrite", "only_if_empty", "never", "newest_wins", "review"]
    winner: Literal["ours", "theirs"] = "theirs"


class DeletionPolicyIn(BaseModel):
    crm_archived: Literal["tombstone", "recreate", "review"] = "tombstone"
    local_deleted: Literal["archive", "keep"] = "archive"


class SyncStartIn(BaseModel):
    interval_s: float | None = Field(default=None, ge=0.1, le=86_400)
    # Per-field policies replacing the defaults for the fields named (see agency.sync.policy).
    contacts: dict[str, FieldPolicyIn] = Field(default_factory=dict)
    companies: dict[str, FieldPolicyIn] = Field(default_factory=dict)
    deletion: DeletionPolicyIn | None = None


class SyncStarted(BaseModel):
    workflow_id: str
    started: bool  # false: it was running already (its settings are unchanged)


class SyncStatusOut(BaseModel):
    workflow_id: str
    running: bool
    phase: str = ""
    rounds: int = 0
    last_round_at: str = ""
    cursors: dict[str, str] = Field(default_factory=dict)
    totals: dict[str, int] = Field(default_factory=dict)
    last_round: dict[str, int] = Field(default_factory=dict)
    pending_conflicts: int = 0
    resolutions_waiting: int = 0


class ConflictOut(BaseModel):
    conflict_id: str
    object_type: str
    local_id: str
    crm_id: str | None
    field: str
    ours: str | None
    theirs: str | None
    ours_modified_at: datetime | None
    theirs_modified_at: datetime | None
    status: str
    created_at: datetime


class ConflictsOut(BaseModel):
    conflicts: list[ConflictOut]


class ResolutionIn(BaseModel):
    resolution: Literal["ours", "theirs", "value"]
    value: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def value_only_with_value(self) -> ResolutionIn:
        if self.resolution != "value" and self.value is not None:
            raise ValueError("value is only taken with resolution 'value'")
        return self


class ResolutionAccepted(BaseModel):
    conflict_id: str
    status: Literal["accepted"] = "accepted"
