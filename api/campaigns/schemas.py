"""Request/response bodies of the campaign endpoints."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator, model_validator

from agency.contracts import CampaignBrief, Channel

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
MAX_CAMPAIGN_DAYS = 366
# 0.01 .. 10000000.00 as a decimal string (no zero, no exponent).
BUDGET_PATTERN = r"^(?!0*(\.0*)?$)(\d{1,7}(\.\d{1,2})?|10000000(\.0{1,2})?)$"


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No tenant field: a campaign always belongs to the caller's tenant.
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] = ""
    product: ShortText
    audience: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]
    goals: Annotated[list[ShortText], Field(min_length=1, max_length=10)]
    channels: Annotated[list[Channel], Field(min_length=1, max_length=len(Channel), json_schema_extra={"uniqueItems": True})]
    total_budget: Annotated[
        Decimal,
        Field(gt=0, le=Decimal("10000000"), decimal_places=2),
        # The schema says what the validator accepts: up to 10,000,000 with at most 2 decimals.
        WithJsonSchema({
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 10000000, "multipleOf": 0.01},
                {"type": "string", "pattern": BUDGET_PATTERN},
            ],
            "description": "Total budget in the tenant's currency, > 0, at most 2 decimals",
        }),
    ]
    start_date: date
    end_date: date
    key_claims: Annotated[list[ShortText], Field(max_length=20)] = []

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: list[Channel]) -> list[Channel]:
        if len(set(channels)) != len(channels):
            raise ValueError("channels must not repeat")
        return channels

    @model_validator(mode="after")
    def _dates(self) -> "CampaignCreate":
        if self.end_date < self.start_date:
            raise ValueError("end_date must be on or after start_date")
        if (self.end_date - self.start_date).days > MAX_CAMPAIGN_DAYS:
            raise ValueError(f"a campaign may run at most {MAX_CAMPAIGN_DAYS} days")
        return self

    def to_brief(self, tenant_slug: str) -> CampaignBrief:
        return CampaignBrief(
            tenant=tenant_slug,
            product=self.product,
            audience=self.audience,
            goals=list(self.goals),
            channels=[c.value for c in self.channels],
            total_budget_cents=int(self.total_budget * 100),
            start_date=self.start_date.isoformat(),
            end_date=self.end_date.isoformat(),
            name=self.name or self.product,
            key_claims=list(self.key_claims),
        )


class CampaignAccepted(BaseModel):
    campaign_id: str
    status_url: str
    workflow_id: str


class ItemView(BaseModel):
    item_id: str
    channel: str
    format: str
    approval_state: str
    version: int
    external_id: str = ""


class CampaignView(BaseModel):
    campaign_id: str
    workflow_id: str
    tenant: str
    name: str
    status: str
    phase: str
    paused: bool
    live: bool  # True when the state came from the running workflow, False when from storage
    completed_phases: list[str]
    items: list[ItemView]
    reminders_sent: int = 0
    escalated: bool = False
    metrics_rounds_done: int = 0
    # True while content generation waits for the model server (it resumes by itself).
    degraded: bool = False
    degraded_reason: str = ""
    budget: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    # The content calendar: entries (date x channel x topic x format), message briefs, and why.
    calendar: dict[str, Any] | None = None
    brand_version: int | None = None  # the brand profile version its copy was checked against
    report_path: str | None = None
    # Live only: A/B tests / bandits and a budget reallocation waiting for a person.
    experiments: list[dict[str, Any]] = []
    pending_reallocation: dict[str, Any] | None = None


class ContentView(BaseModel):
    item_id: str
    channel: str
    format: str
    publish_on: date
    approval_state: str
    version: int
    title: str
    body: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    compliance: dict[str, Any]
    external_id: str | None = None
    parts: dict[str, Any] = {}  # outline, preheader, cta, hashtags (formats that have them)
    generation: dict[str, Any] = {}  # message, topic, the candidates' ranking, alternatives


class ApprovalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class ApprovalResult(BaseModel):
    item_id: str
    approval_state: str
    remaining_pending: int


class ActionAccepted(BaseModel):
    campaign_id: str
    action: str


class ReportView(BaseModel):
    campaign_id: str
    html_path: str
    summary: dict[str, Any]
    markdown: str


class ReallocationDecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    round: Annotated[int, Field(ge=1, le=10_000)]
    decision: Literal["approve", "reject"]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class ReallocationDecisionResult(BaseModel):
    campaign_id: str
    round: int
    status: Literal["approved", "rejected"]


class AllocationChangeView(BaseModel):
    round: int
    status: str
    change: float
    before_cents: dict[str, int]
    after_cents: dict[str, int]
    reason: str
    decided_by: str
    note: str


class AllocationView(BaseModel):
    campaign_id: str
    budget: dict[str, Any] | None
    market: dict[str, Any] | None  # the fitted market model's assessment (evidence, reason, channel numbers)
    changes: list[AllocationChangeView]


class ExperimentArmView(BaseModel):
    arm_id: str
    exposures: int
    conversions: int
    rate: float
    prob_beats_control: float | None = None
    prob_best: float | None = None
    expected_loss: float | None = None
    p_value: float | None = None


class ExperimentView(BaseModel):
    experiment_id: str
    channel: str
    mode: str
    control: str
    status: str
    winner: str | None
    peeks: int
    metric: str
    threshold: str  # the decision rule with its numbers, as the agent applies it
    reason: str
    weights: dict[str, float]
    arms: list[ExperimentArmView]
