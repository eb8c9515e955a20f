"""SQLAlchemy 2 typed models: the agency's durable record of tenants, campaigns and content.

Temporal holds workflow state; these tables hold what people and reports read afterwards.
Constraint names follow the naming convention so Alembic migrations are deterministic.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CAMPAIGN_STATUSES = ("running", "completed", "cancelled", "failed")
APPROVAL_STATES = ("pending", "approved", "rejected", "expired", "blocked")
REVIEW_DECISIONS = ("approved", "rejected", "expired")


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _updated_at() -> Mapped[datetime]:
    # onupdate covers ORM flushes; the repository's bulk UPDATEs set it explicitly.
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONB, str: Text}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    slug: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    created_at: Mapped[datetime] = _created_at()


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str]
    role: Mapped[str]
    # argon2id hash (agency.security.passwords); None: the user cannot log in with a password.
    password_hash: Mapped[str | None]
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="status_valid"),
        # Budgets are integer cents inside the JSON documents; a negative total is a bug upstream.
        CheckConstraint(
            "COALESCE((brief->>'total_budget_cents')::numeric, 0) >= 0", name="brief_budget_non_negative"
        ),
        CheckConstraint(
            "budget IS NULL OR COALESCE((budget->>'total_budget_cents')::numeric, 0) >= 0",
            name="budget_non_negative",
        ),
    )

    id: Mapped[str] = mapped_column(primary_key=True)  # "cmp_<hex>"
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str]
    brief: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(server_default="running")
    phase: Mapped[str]
    workflow_id: Mapped[str] = mapped_column(unique=True)
    plan: Mapped[dict[str, Any] | None]
    budget: Mapped[dict[str, Any] | None]
    report_path: Mapped[str | None]
    brand_version: Mapped[int | None] = mapped_column(Integer)  # the tenant's brand profile it used
    calendar: Mapped[dict[str, Any] | None]  # the strategy agent's ContentCalendar, rationale included
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CampaignStep(Base):
    """One row per phase a campaign reached; re-recording a phase is a no-op."""

    __tablename__ = "campaign_steps"
    __table_args__ = (UniqueConstraint("campaign_id", "phase"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phase: Mapped[str]
    detail: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime] = _created_at()


class ContentItem(Base):
    """A calendar slot (``item_id`` like "cmp_x:social:1") and its current state."""

    __tablename__ = "content_items"
    __table_args__ = (
        CheckConstraint(_in("approval_state", APPROVAL_STATES), name="approval_state_valid"),
        CheckConstraint("current_version >= 1", name="current_version_positive"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str]
    format: Mapped[str]
    publish_on: Mapped[date] = mapped_column(Date)
    approval_state: Mapped[str]
    current_version: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None]
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class ContentVersion(Base):
    """Immutable generated copy; each regeneration adds a version."""

    __tablename__ = "content_versions"
    __table_args__ = (
        UniqueConstraint("item_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("prompt_tokens >= 0 AND completion_tokens >= 0", name="tokens_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str]
    body: Mapped[str]
    model: Mapped[str]
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    compliance: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Named parts beyond title/body (outline, preheader, cta, hashtags) and the generation details:
    # which candidate won, the ranking of all candidates, the message it carries.
    parts: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    generation: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Sentence embedding of the copy (unit vector), for duplicate detection across the tenant's content.
    embedding: Mapped[list[float] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = _created_at()


class ContentReview(Base):
    __tablename__ = "content_reviews"
    __table_args__ = (
        CheckConstraint(_in("decision", REVIEW_DECISIONS), name="decision_valid"),
        # Makes a retried review activity insert once.
        UniqueConstraint("item_id", "version", "decision"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str]
    reviewer: Mapped[str]
    note: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime] = _created_at()


class ChannelMetric(Base):
    """Cumulative metrics of one published item as of one collection round."""

    __tablename__ = "channel_metrics"
    __table_args__ = (
        UniqueConstraint("item_id", "round"),
        CheckConstraint("round >= 0", name="round_non_negative"),
        CheckConstraint(
            "impressions >= 0 AND clicks >= 0 AND conversions >= 0 AND spend_cents >= 0",
            name="metrics_non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"))
    channel: Mapped[str]
    round: Mapped[int] = mapped_column(Integer)
    impressions: Mapped[int] = mapped_column(BigInteger)
    clicks: Mapped[int] = mapped_column(BigInteger)
    conversions: Mapped[int] = mapped_column(BigInteger)
    spend_cents: Mapped[int] = mapped_column(BigInteger)
    collected_at: Mapped[datetime] = _created_at()


class AuditEvent(Base):
    """Append-only audit trail. No foreign keys: the trail must outlive what it describes."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor: Mapped[str]
    action: Mapped[str]
    subject_type: Mapped[str]
    subject_id: Mapped[str]
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Set by the application (agency.security.audit), not the server: it is part of the hash.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False, index=True
    )
    outcome: Mapped[str] = mapped_column(server_default=text("'ok'"))
    request_id: Mapped[str | None]
    # Hash chain (agency.security.audit): sha256 hex of the previous record and of this one.
    # prev_hash is unique too: two records claiming the same predecessor would be a fork.
    prev_hash: Mapped[str] = mapped_column(unique=True)
    hash: Mapped[str] = mapped_column(unique=True)


class AuditChainHead(Base):
    """The single row naming the chain's last record, so deleting the newest records is detected."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_hash: Mapped[str]
    count: Mapped[int] = mapped_column(BigInteger)


# ---- decision agents: market history, fitted models, allocation changes, experiments, reports
ALLOCATION_CHANGE_STATES = ("applied", "pending", "approved", "rejected", "expired")
EXPERIMENT_STATES = ("running", "winner", "no_difference", "stopped")
REPORT_STATES = ("running", "ready", "failed")
REPORT_SCOPES = ("campaign", "tenant")


class MarketWeek(Base):
    """One week of a tenant's marketing history: spend per channel and the outcome it drove.

    The outcome is the tenant's total (conversions), not per channel: attributing it to
    channels is what the fitted market model is for.
    """

    __tablename__ = "market_weeks"
    __table_args__ = (
        UniqueConstraint("tenant_id", "week_start"),
        CheckConstraint("outcome >= 0", name="outcome_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    week_start: Mapped[date] = mapped_column(Date)
    spend_cents: Mapped[dict[str, Any]]  # {channel: cents}
    outcome: Mapped[float]
    source: Mapped[str] = mapped_column(server_default="import")
    created_at: Mapped[datetime] = _created_at()


class MarketFitRecord(Base):
    """A fitted response model for a tenant, with its recovery-gate verdict."""

    __tablename__ = "market_fits"

    id: Mapped[str] = mapped_column(primary_key=True)  # "fit_<hex>"
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    channels: Mapped[list[str]] = mapped_column(JSONB)
    weeks: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[str]  # "sufficient" | "insufficient" | "none"
    reason: Mapped[str] = mapped_column(server_default="")
    model: Mapped[dict[str, Any] | None]  # MarketFit.to_dict()
    goodness: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    gate: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()


class AllocationChange(Base):
    """A proposed change to a running campaign's budget split, and what became of it."""

    __tablename__ = "allocation_changes"
    __table_args__ = (
        UniqueConstraint("campaign_id", "round"),
        CheckConstraint(_in("status", ALLOCATION_CHANGE_STATES), name="status_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    before_cents: Mapped[dict[str, Any]]
    after_cents: Mapped[dict[str, Any]]
    change: Mapped[float]  # largest absolute share change
    status: Mapped[str]
    reason: Mapped[str] = mapped_column(server_default="")
    decided_by: Mapped[str] = mapped_column(server_default="")
    note: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime] = _created_at()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Experiment(Base):
    """An A/B test or bandit over a campaign's content variants; result holds the latest evaluation."""

    __tablename__ = "experiments"
    __table_args__ = (CheckConstraint(_in("status", EXPERIMENT_STATES), name="status_valid"),)

    id: Mapped[str] = mapped_column(primary_key=True)  # f"{campaign_id}:{channel}"
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str]
    mode: Mapped[str]
    control: Mapped[str]
    arms: Mapped[list[str]] = mapped_column(JSONB)
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(server_default="running")
    winner: Mapped[str | None]
    peeks: Mapped[int] = mapped_column(Integer, server_default="0")
    result: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


class Report(Base):
    """An ROI report (campaign or tenant scope) rendered to HTML and PDF."""

    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(_in("status", REPORT_STATES), name="status_valid"),
        CheckConstraint(_in("scope", REPORT_SCOPES), name="scope_valid"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)  # "rpt_<hex>"
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    scope: Mapped[str]
    trigger: Mapped[str]  # "campaign" | "api" | "schedule"
    status: Mapped[str] = mapped_column(server_default="running")
    html_path: Mapped[str | None]
    pdf_path: Mapped[str | None]
    summary: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    error: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime] = _created_at()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ---- content agents: brand profiles, performance recommendations --------------------------
class BrandProfileRecord(Base):
    """One version of a tenant's brand profile (voice, vocabulary, claims, personas); never updated."""

    __tablename__ = "brand_profiles"
    __table_args__ = (
        UniqueConstraint("tenant_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]]  # BrandProfile as JSON
    created_by: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime] = _created_at()


class ContentRecommendationSet(Base):
    """The performance analyzer's numbered recommendations at one point in time, for the strategy
    agent's next cycle (the newest set per tenant is the one in force)."""

    __tablename__ = "content_recommendations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    recommendations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # ContentRecommendation list
    summary: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))  # data the analysis used
    created_at: Mapped[datetime] = _created_at()
