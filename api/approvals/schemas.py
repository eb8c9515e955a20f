"""Request/response bodies of the approval inbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

MAX_REASON_CHARS = 2000
MAX_TITLE_CHARS = 300
MAX_BODY_CHARS = 20_000
# PostgreSQL cannot store NUL in text; saying so in the schema keeps it a 422, not a 500.
NO_NUL = r"^[^\x00]*$"


def text(max_length: int) -> StringConstraints:
    """A trimmed string of at most ``max_length`` characters (possibly empty)."""
    return StringConstraints(strip_whitespace=True, max_length=max_length, pattern=NO_NUL)


class ApprovalItem(BaseModel):
    """A content item waiting for a person, with the copy to judge and why it looks the way it does."""

    item_id: str
    campaign_id: str
    campaign_name: str
    channel: str
    format: str
    publish_on: date
    version: int
    title: str
    body: str
    parts: dict[str, Any] = Field(description="Named parts beyond title/body: outline, preheader, cta, hashtags")
    compliance_passed: bool | None
    findings: list[dict[str, Any]] = Field(description="Compliance findings on this version (warnings when pending)")
    generation: dict[str, Any] = Field(description="Which candidate won, the ranking of all candidates, the message")
    model: str
    created_at: datetime = Field(description="When this version was drafted (the inbox is oldest first)")


class ApprovalPage(BaseModel):
    items: list[ApprovalItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class ApprovalAction(BaseModel):
    """approve; reject with a reason (fed back into regeneration); or edit: approve your own copy."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "reject", "edit"]
    reason: Annotated[str, text(MAX_REASON_CHARS)] = Field(
        default="", validate_default=True, description="Required to reject; optional otherwise"
    )
    title: Annotated[str, text(MAX_TITLE_CHARS)] | None = Field(
        default=None, validate_default=True, description="Edit only: the new title (blog) or subject (email)"
    )
    body: Annotated[str, text(MAX_BODY_CHARS)] | None = Field(
        default=None, validate_default=True, description="Edit only (and required there): the new copy"
    )

    # Field validators (not one model validator) so each refusal names its field in the 422.
    @field_validator("reason")
    @classmethod
    def _reason_to_reject(cls, reason: str, info: ValidationInfo) -> str:
        if info.data.get("action") == "reject" and not reason:
            raise ValueError("a rejection needs a reason: it is fed back into regeneration")
        return reason

    @field_validator("title")
    @classmethod
    def _title_only_when_editing(cls, title: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action is not None and action != "edit" and title is not None:
            raise ValueError("title is only accepted with action 'edit'")
        return title

    @field_validator("body")
    @classmethod
    def _body_to_edit(cls, body: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action == "edit" and not body:
            raise ValueError("an edit needs the edited body")
        if action is not None and action != "edit" and body is not None:
            raise ValueError("body is only accepted with action 'edit'")
        return body


class ApprovalDecided(BaseModel):
    item_id: str
    campaign_id: str
    action: str
    approval_state: str
    remaining_pending: int = Field(description="Items of this campaign still waiting for a decision")
