"""Typed data passed between the API, workflows and activities.

Workflows import only this module (plus temporalio): every workflow input/output, activity
input/output, signal, update and query payload is a dataclass defined here, so the Temporal
JSON converter round-trips them and histories stay readable in the UI.

Money is integer cents; dates are ISO-8601 strings (``YYYY-MM-DD``) so histories are stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

class WorkflowName:
    CAMPAIGN = "CampaignWorkflow"
    CONTENT_PIPELINE = "ContentPipelineWorkflow"
    MODEL_ROLLOUT = "ModelRolloutWorkflow"
    ROI_REPORT = "RoiReportWorkflow"
    SCHEDULED_REPORTS = "ScheduledReportsWorkflow"


class CampaignHandler:
    """Query/signal/update names on CampaignWorkflow, for callers that don't import workflows."""

    STATUS = "status"
    PAUSE = "pause"
    RESUME = "resume"
    REVIEW = "review"
    # Sent by content pipelines: the model server is down (waiting) or back.
    MODEL_SERVER_STATE = "model_server_state"
    # A person approves or rejects a budget reallocation that exceeded the approval threshold.
    DECIDE_REALLOCATION = "decide_reallocation"


class ReviewErrorType:
    """ApplicationError types the review update's validator rejects with (mapped to HTTP)."""

    UNKNOWN_ITEM = "UnknownContentItem"
    NOT_PENDING = "ContentItemNotPending"
    INVALID = "InvalidReview"
    NO_PENDING_REALLOCATION = "NoPendingReallocation"
    EDITED_COPY_BLOCKED = "EditedCopyBlocked"  # a reviewer's edit failed the same checks as drafts


# ---- activity names (workflows reference activities by name, never by import) ----------
class ActivityName:
    REGISTER_CAMPAIGN = "register_campaign"
    LOAD_CAMPAIGN_HISTORY = "load_campaign_history"
    PLAN_CAMPAIGN = "plan_campaign"
    ALLOCATE_BUDGET = "allocate_budget"
    BUILD_CALENDAR = "build_calendar"
    GENERATE_CONTENT = "generate_content"  # inference queue (Triton)
    CHECK_COMPLIANCE = "check_compliance"
    SAVE_CONTENT = "save_content"
    RECORD_STEP = "record_step"
    RECORD_REVIEW = "record_review"
    NOTIFY_REVIEWERS = "notify_reviewers"
    PUBLISH_CONTENT = "publish_content"  # integrations queue (channel adapter)
    MARK_PUBLISHED = "mark_published"
    FINISH_CAMPAIGN = "finish_campaign"
    COLLECT_METRICS = "collect_metrics"  # integrations queue
    SAVE_METRICS = "save_metrics"
    BUILD_REPORT = "build_report"
    SCORE_RELEVANCE = "score_relevance"  # inference queue: embedding similarity draft <-> brief
    CHECK_MODEL_SERVER = "check_model_server"  # inference queue: is Triton serving?
    # Model rollout (inference queue: they steer Triton and its repository).
    STAGE_CANDIDATE = "stage_model_candidate"
    EVALUATE_CANDIDATE = "evaluate_model_candidate"
    PROMOTE_CANDIDATE = "promote_model_candidate"
    ROLL_BACK_CANDIDATE = "roll_back_model_candidate"
    RECORD_ROLLOUT_STEP = "record_model_rollout_step"  # orchestration queue: audit
    # Decision agents (orchestration queue unless noted).
    FIT_MARKET_MODEL = "fit_market_model"  # fit response curves to the tenant's history + recovery gate
    START_EXPERIMENTS = "start_experiments"
    EVALUATE_EXPERIMENT = "evaluate_experiment"
    PROPOSE_REALLOCATION = "propose_reallocation"
    DECIDE_ALLOCATION_CHANGE = "decide_allocation_change"
    APPLY_ITEM_BUDGETS = "apply_item_budgets"  # integrations queue: PATCH budgets on the channel
    BUILD_ROI_REPORT = "build_roi_report"
    LIST_REPORT_TENANTS = "list_report_tenants"
    # content agents
    LOAD_BRAND_PROFILE = "load_brand_profile"  # and record its version on the campaign
    LOAD_CONTENT_STRATEGY_INPUTS = "load_content_strategy_inputs"  # trends + recommendations in force
    BUILD_CONTENT_CALENDAR = "build_content_calendar"  # strategy agent: date x channel x topic x format
    FIND_SIMILAR_CONTENT = "find_similar_content"  # nearest earlier content of the tenant (embeddings)
    RANK_DRAFTS = "rank_drafts"
    ANALYZE_CONTENT_PERFORMANCE = "analyze_content_performance"


class Channel(str, Enum):
    BLOG = "blog"
    SOCIAL = "social"
    EMAIL = "email"


class ContentFormat(str, Enum):
    BLOG_POST = "blog_post"  # title + outline + body + CTA
    SOCIAL_POST = "social_post"  # one generic post (campaigns started before per-network formats)
    EMAIL = "email"  # subject + preheader + body + CTA
    X_POST = "x_post"  # <= 280 characters, CTA and hashtags included
    LINKEDIN_POST = "linkedin_post"
    INSTAGRAM_CAPTION = "instagram_caption"  # caption + hashtags


# The social channel publishes one post per network for each message it carries.
SOCIAL_NETWORK_FORMATS: tuple[str, ...] = (
    ContentFormat.X_POST.value,
    ContentFormat.LINKEDIN_POST.value,
    ContentFormat.INSTAGRAM_CAPTION.value,
)


CHANNEL_FORMAT: dict[str, str] = {
    Channel.BLOG.value: ContentFormat.BLOG_POST.value,
    Channel.SOCIAL.value: ContentFormat.SOCIAL_POST.value,
    Channel.EMAIL.value: ContentFormat.EMAIL.value,
}


class ApprovalState(str, Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    BLOCKED = "blocked"  # failed compliance; never offered for approval


class CampaignPhase(str, Enum):
    PLANNING = "planning"
    BUDGETING = "budgeting"
    SCHEDULING = "scheduling"
    GENERATING = "generating"
    COMPLIANCE = "compliance"
    AWAITING_APPROVAL = "awaiting_approval"
    PUBLISHING = "publishing"
    MEASURING = "measuring"
    REPORTING = "reporting"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


# ---- the brief ------------------------------------------------------------------------
@dataclass
class ChannelLimit:
    """Campaign-total spend bounds for one channel; ``locked_cents`` fixes it exactly."""

    channel: str
    min_cents: int = 0
    max_cents: int | None = None
    locked_cents: int | None = None


@dataclass
class CampaignBrief:
    tenant: str
    product: str
    audience: str
    goals: list[str]
    channels: list[str]  # Channel values
    total_budget_cents: int
    start_date: str  # YYYY-MM-DD
    end_date: str  # YYYY-MM-DD
    name: str = ""
    key_claims: list[str] = field(default_factory=list)  # claims the copy may make, verbatim-checked
    # Budget constraints per channel over the whole campaign (the allocation agent honours them).
    channel_limits: list[ChannelLimit] = field(default_factory=list)
    # What one conversion is worth; ROI = conversions x this / spend. 0: the tenant default.
    conversion_value_cents: int = 0


@dataclass
class CampaignTimings:
    """Durations the workflow waits; configurable so tests and the demo run in seconds."""

    approval_timeout_s: float
    approval_reminder_s: float
    metrics_interval_s: float
    metrics_rounds: int
    generation_max_tokens: int = 160
    generation_temperature: float = 0.7
    # start-to-close limits; a killed worker's activity is retried after this long
    activity_timeout_s: float = 30.0
    generation_timeout_s: float = 120.0
    max_generation_attempts: int = 3
    # Model server down: attempts before the campaign reports itself degraded, and the longest
    # pause between readiness probes while it waits for the server to come back.
    model_server_attempts: int = 3
    model_server_probe_max_interval_s: float = 30.0
    # Candidates generated per item and round (the ranking keeps the best), content pipelines
    # running at once, and regenerations a reviewer's rejection reason may trigger per item.
    generation_variants: int = 2
    content_concurrency: int = 4
    review_regenerations: int = 1


@dataclass
class DecisionPolicy:
    """How the decision agents steer a running campaign; visible in its status and report."""

    # Reallocations moving any channel's share by more than this need a person's approval.
    reallocation_approval_threshold: float = 0.10
    # Smaller moves than this are not worth a change (noise).
    reallocation_min_change: float = 0.02
    # Longest a channel's weekly spend may move vs the previous split (0.5 = ±50%).
    ramp_limit: float = 0.5
    # How long a reallocation waits for a decision before it expires (kept split applies).
    reallocation_decision_timeout_s: float = 3600.0
    experiment_mode: str = "ab"  # "ab" (two arms: sequential test) or "bandit" (Thompson sampling)
    experiment_alpha: float = 0.05
    # What a variant is judged on: "ctr" (clicks per impression) or "cvr" (conversions per click).
    experiment_metric: str = "ctr"
    experiment_prob_threshold: float = 0.95
    # Default value of a conversion (cents) when the brief names none.
    conversion_value_cents: int = 5_000


@dataclass
class TaskQueues:
    """One task queue per kind of work so each scales on its own."""

    orchestration: str
    inference: str
    integrations: str


@dataclass
class CampaignInput:
    campaign_id: str
    brief: CampaignBrief
    timings: CampaignTimings
    queues: TaskQueues
    decisions: DecisionPolicy = field(default_factory=DecisionPolicy)


# ---- planning -------------------------------------------------------------------------
@dataclass
class ChannelHistory:
    """Aggregated past performance of one channel for a tenant."""

    channel: str
    campaigns: int
    spend_cents: int
    impressions: int
    clicks: int
    conversions: int


@dataclass
class PastCampaign:
    """One earlier campaign of the tenant with metrics: whom it addressed and what it returned."""

    campaign_id: str
    audience: str
    start_date: str
    spend_cents: int
    conversions: int


@dataclass
class CampaignHistory:
    tenant: str
    channels: list[ChannelHistory] = field(default_factory=list)
    campaigns: list[PastCampaign] = field(default_factory=list)


@dataclass
class MarketRequest:
    campaign_id: str
    tenant: str
    channels: list[str]
    total_budget_cents: int
    horizon_weeks: int
    channel_limits: list[ChannelLimit] = field(default_factory=list)
    ramp_limit: float | None = None


@dataclass
class ChannelInsight:
    """What the tenant's fitted history says about one channel (numbers the plan cites)."""

    channel: str
    weeks_active: int
    avg_weekly_spend_cents: int
    conversions_per_dollar: float  # attributed conversions / spend over the history
    marginal_conversions_per_dollar: float  # at the recent weekly spend
    share_of_media_outcome: float
    recommended_share: float | None = None  # from the allocation agent, when evidence suffices


@dataclass
class MarketAssessment:
    """Result of fitting the tenant's market model and running the recovery gate."""

    fit_id: str
    evidence: str  # "sufficient" | "insufficient" | "none" (no history)
    reason: str
    weeks: int
    channels: list[ChannelInsight] = field(default_factory=list)
    r2: float | None = None
    mape: float | None = None
    peak_month: str = ""  # month with the highest fitted seasonal baseline, e.g. "November"
    expected_conversions: float | None = None
    interval: list[float] = field(default_factory=list)  # [low, high] 90%
    notes: list[str] = field(default_factory=list)


@dataclass
class PlanRequest:
    campaign_id: str
    brief: CampaignBrief
    history: CampaignHistory
    market: MarketAssessment | None = None


@dataclass
class ChannelPlan:
    channel: str
    role: str  # e.g. "awareness", "consideration", "conversion"
    weight: float  # relative priority 0..1, sums to 1 across channels
    expected_cvr: float  # conversions per click, prior from history or defaults
    expected_ctr: float
    posts: int  # how many pieces of content for this channel


@dataclass
class CampaignPlan:
    campaign_id: str
    objective: str
    key_messages: list[str]
    tone: str
    channels: list[ChannelPlan]
    duration_days: int
    rationale: list[str]
    used_history: bool


@dataclass
class ChannelBudget:
    channel: str
    amount_cents: int
    share: float
    expected_conversions: float | None = None
    marginal_conversions_per_dollar: float | None = None


@dataclass
class BudgetRequest:
    campaign_id: str
    total_budget_cents: int
    plan: CampaignPlan
    market: MarketRequest | None = None  # fit the tenant's history; None: the prior split
    fit_id: str = ""


@dataclass
class BudgetAllocation:
    campaign_id: str
    total_budget_cents: int
    channels: list[ChannelBudget]
    method: str
    notes: list[str] = field(default_factory=list)
    evidence: str = "prior"  # "fitted": from the tenant's market model; "prior": benchmarks only
    expected_conversions: float | None = None
    interval: list[float] = field(default_factory=list)
    fit_id: str = ""


# ---- brand and content strategy --------------------------------------------------------
@dataclass
class Persona:
    name: str
    description: str
    needs: list[str] = field(default_factory=list)


@dataclass
class BrandProfile:
    """A tenant's voice and rules for copy; versioned, and each campaign records the version it used."""

    tenant: str
    version: int
    voice: str  # e.g. "warm, practical, plain-spoken; no hype"
    vocabulary_use: list[str] = field(default_factory=list)  # words and phrases the brand prefers
    vocabulary_avoid: list[str] = field(default_factory=list)  # banned: a draft using one is blocked
    # Claims the copy may make only when the brief's key_claims substantiate them (else blocked).
    claims_needing_substantiation: list[str] = field(default_factory=list)
    personas: list[Persona] = field(default_factory=list)


@dataclass
class MessageBrief:
    """One message of the campaign, shared by every item that carries it (blog, social, email)."""

    message_id: str  # f"{campaign_id}:m{n}"
    topic: str
    message: str  # the single point every item of the set makes
    cta: str  # the same call to action everywhere, e.g. "Shop the Trailblaze boot"
    cta_url: str = ""
    hashtags: list[str] = field(default_factory=list)  # without '#'
    keywords: list[str] = field(default_factory=list)


@dataclass
class TopicTrend:
    """A topic gaining (or losing) attention: in the tenant's own results or in competitors' feeds."""

    topic: str
    source: str  # "own" | "competitor"
    momentum: float  # relative growth per period; > 0 rising
    keywords: list[str] = field(default_factory=list)
    evidence: str = ""  # what the number rests on, in words


@dataclass
class ContentRecommendation:
    """A numbered, concrete finding of the performance analyzer that the strategy agent applies."""

    number: int
    factor: str  # "topic" | "format" | "weekday" | "hour" | "length"
    level: str  # e.g. "Tuesday", "x_post", "long"
    metric: str  # "ctr" | "cvr"
    effect: float  # relative lift vs the rest, e.g. 0.30 = +30%
    interval: list[float]  # [low, high] 90% interval of the effect
    confident: bool  # the interval excludes zero after multiplicity control
    text: str  # "1. Post x_post items on Tuesday: CTR +30% (90% CI +18%..+43%, 412 items)"


@dataclass
class CalendarRequest:
    campaign_id: str
    brief: CampaignBrief
    plan: CampaignPlan
    trends: list[TopicTrend] = field(default_factory=list)
    recommendations: list[ContentRecommendation] = field(default_factory=list)


@dataclass
class CalendarEntry:
    item_id: str  # stable: f"{campaign_id}:{channel}:{n}"
    channel: str
    format: str  # ContentFormat value
    publish_on: str  # YYYY-MM-DD
    angle: str  # which key message / theme this piece carries
    topic: str = ""
    message_id: str = ""  # MessageBrief shared by the coordinated set; "" for legacy calendars
    publish_hour: int | None = None  # local hour, when the strategy chose one


@dataclass
class ContentCalendar:
    campaign_id: str
    entries: list[CalendarEntry]
    messages: list[MessageBrief] = field(default_factory=list)
    rationale: list[str] = field(default_factory=list)  # why these topics, formats, days (cites numbers)


# ---- content --------------------------------------------------------------------------
@dataclass
class ContentPipelineInput:
    """Child workflow input: produce one checked, stored draft for one calendar entry."""

    campaign_id: str
    entry: CalendarEntry
    brief: CampaignBrief
    plan: CampaignPlan
    timings: CampaignTimings
    queues: TaskQueues
    message: MessageBrief | None = None
    brand: BrandProfile | None = None
    variants: int = 1  # candidates generated per round; the ranking keeps the best
    feedback: str = ""  # a reviewer's rejection reason, fed into regeneration
    first_attempt: int = 1  # version number of this run's first draft (regenerations continue)


@dataclass
class GenerationRequest:
    campaign_id: str
    entry: CalendarEntry
    brief: CampaignBrief
    plan: CampaignPlan
    max_tokens: int
    temperature: float
    attempt: int = 1  # regeneration count (1 = first draft)
    message: MessageBrief | None = None
    brand: BrandProfile | None = None
    variant: int = 1  # which candidate of the round (seeds differ per variant)
    feedback: str = ""  # why the previous candidate failed or was rejected


@dataclass
class ContentDraft:
    item_id: str
    campaign_id: str
    channel: str
    format: str
    title: str  # blog title / email subject / "" for social
    body: str
    model: str  # model name@version that produced it
    prompt_tokens: int
    completion_tokens: int
    attempt: int = 1
    # Named parts beyond title/body: "outline", "preheader", "cta", "hashtags" (space-separated).
    parts: dict[str, str] = field(default_factory=dict)
    variant: int = 1


@dataclass
class ComplianceFinding:
    rule: str  # "pii.email", "pii.phone", "pii.credit_card", "claims.unapproved", "length.max"...
    severity: str  # "block" or "warn"
    message: str
    excerpt: str = ""


@dataclass
class ComplianceRequest:
    draft: ContentDraft
    key_claims: list[str]
    relevance: float | None = None  # cosine of draft vs brief (SCORE_RELEVANCE); None: not measured
    brand: BrandProfile | None = None  # banned vocabulary, claims needing substantiation
    message: MessageBrief | None = None  # the CTA every item of the set must carry
    # Highest cosine similarity to the tenant's earlier content, and which item that was.
    duplicate_similarity: float | None = None
    duplicate_of: str = ""
    product: str = ""  # the product's name is not a claim even when it contains a claim word


@dataclass
class ComplianceResult:
    item_id: str
    passed: bool
    findings: list[ComplianceFinding]
    claims_found: list[str]  # claim-like sentences found in the copy
    sanitized_title: str
    sanitized_body: str


@dataclass
class SaveContentRequest:
    draft: ContentDraft
    compliance: ComplianceResult
    approval_state: str  # ApprovalState value
    publish_on: str
    embedding: list[float] = field(default_factory=list)
    # How it was chosen: message/topic, the candidates' ranking, reviewer feedback it answered.
    generation: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimilarContentRequest:
    campaign_id: str
    item_id: str  # excluded from the search (its own earlier versions are not "earlier content")
    embedding: list[float]
    # Items carrying the same message are meant to say the same thing in other formats: not duplicates.
    message_id: str = ""


@dataclass
class SimilarContentResult:
    similarity: float | None  # highest cosine to the tenant's earlier content; None: nothing to compare
    item_id: str = ""


@dataclass
class DraftCandidate:
    draft: ContentDraft
    compliance: ComplianceResult
    relevance: float | None = None
    duplicate_similarity: float | None = None


@dataclass
class RankRequest:
    candidates: list[DraftCandidate]
    brand: BrandProfile | None = None


@dataclass
class RankResult:
    order: list[int]  # candidate indexes, best first
    scores: list[dict[str, Any]]  # per candidate (input order): total and its components


@dataclass
class StrategyInputs:
    trends: list[TopicTrend] = field(default_factory=list)
    recommendations: list[ContentRecommendation] = field(default_factory=list)


@dataclass
class SavedContent:
    item_id: str
    version: int


@dataclass
class ContentPipelineResult:
    item_id: str
    channel: str
    format: str
    version: int
    approval_state: str  # pending, or blocked when compliance never passed
    title: str
    body: str
    attempts: int
    findings: list[ComplianceFinding] = field(default_factory=list)
    parts: dict[str, str] = field(default_factory=dict)


# ---- approvals ------------------------------------------------------------------------
@dataclass
class ReviewDecision:
    """Workflow update payload: a person approves or rejects a pending content item."""

    item_id: str
    approve: bool
    reviewer: str
    note: str = ""  # on a rejection: the reason, fed back into regeneration
    # Edit then approve: the reviewer's own copy replaces the draft (checked like any draft).
    edited_title: str | None = None
    edited_body: str | None = None


@dataclass
class ReviewOutcome:
    item_id: str
    approval_state: str
    remaining_pending: int


@dataclass
class ReviewRecord:
    campaign_id: str
    item_id: str
    version: int
    approval_state: str
    reviewer: str
    note: str


@dataclass
class RegisterCampaignRequest:
    campaign_id: str
    brief: CampaignBrief
    workflow_id: str


@dataclass
class FinishCampaignRequest:
    campaign_id: str
    outcome: str  # completed | cancelled | failed
    detail: str = ""


@dataclass
class PublishedRecord:
    campaign_id: str
    item_id: str
    external_id: str


@dataclass
class ReviewerNotice:
    campaign_id: str
    kind: str  # "approval_requested", "reminder", "escalation"
    pending_item_ids: list[str]


# ---- publishing and metrics -----------------------------------------------------------
@dataclass
class PublishRequest:
    campaign_id: str
    item_id: str
    version: int
    channel: str
    format: str
    title: str
    body: str
    budget_cents: int  # paid promotion budget for this piece
    idempotency_key: str  # f"{campaign_id}:{item_id}:v{version}"
    # The tenant's slug picks its provider credentials; "" (campaigns started before it was
    # passed) keeps the channel-protocol path.
    tenant: str = ""


@dataclass
class PublishResult:
    item_id: str
    external_id: str
    url: str
    duplicate: bool  # the channel had already received this idempotency key


@dataclass
class PublishedRef:
    item_id: str
    channel: str
    external_id: str


@dataclass
class MetricsRequest:
    campaign_id: str
    round: int
    published: list[PublishedRef]
    tenant: str = ""


@dataclass
class ItemMetrics:
    item_id: str
    channel: str
    external_id: str
    impressions: int
    clicks: int
    conversions: int
    spend_cents: int


@dataclass
class MetricsSnapshot:
    campaign_id: str
    round: int
    items: list[ItemMetrics]


# ---- status and report ----------------------------------------------------------------
@dataclass
class StepRecord:
    campaign_id: str
    phase: str
    detail: str = ""


@dataclass
class ItemStatus:
    item_id: str
    channel: str
    format: str
    approval_state: str
    version: int = 0
    external_id: str = ""


# ---- steering a running campaign: reallocation and experiments --------------------------
@dataclass
class ReallocationRequest:
    campaign_id: str
    round: int
    fit_id: str
    current: list[ChannelBudget]
    snapshot: MetricsSnapshot
    policy: DecisionPolicy
    rounds_left: int


@dataclass
class ReallocationProposal:
    campaign_id: str
    round: int
    before_cents: dict[str, int]
    after_cents: dict[str, int]
    change: float  # largest absolute share change
    status: str  # "applied" (small), "pending" (needs approval), "unchanged"
    reason: str


@dataclass
class ReallocationDecision:
    """Workflow update payload: a person approves or rejects a pending reallocation."""

    round: int
    approve: bool
    reviewer: str
    note: str = ""


@dataclass
class ReallocationOutcome:
    round: int
    status: str  # approved | rejected


@dataclass
class AllocationChangeDecision:
    campaign_id: str
    round: int
    status: str  # approved | rejected | expired
    decided_by: str
    note: str = ""


@dataclass
class ExperimentArmRef:
    arm_id: str  # content item id
    external_id: str


@dataclass
class ExperimentSetup:
    experiment_id: str
    channel: str
    mode: str
    control: str
    arms: list[ExperimentArmRef]


@dataclass
class StartExperimentsRequest:
    campaign_id: str
    published: list[PublishedRef]
    policy: DecisionPolicy


@dataclass
class ExperimentRound:
    campaign_id: str
    experiment: ExperimentSetup
    snapshot: MetricsSnapshot
    policy: DecisionPolicy
    state: dict[str, Any] = field(default_factory=dict)  # ExperimentState.to_dict() of the last peek
    peeks: int = 0


@dataclass
class ExperimentOutcome:
    experiment_id: str
    channel: str
    status: str  # running | winner | no_difference
    winner: str | None
    weights: dict[str, float]  # share of the channel's budget per arm for the next interval
    reason: str
    state: dict[str, Any] = field(default_factory=dict)
    peeks: int = 0


@dataclass
class ItemBudgetsRequest:
    campaign_id: str
    round: int
    channel_cents: dict[str, int]  # campaign-total budget per channel
    arm_weights: dict[str, dict[str, float]]  # channel -> item -> weight (experiments)
    snapshot: MetricsSnapshot
    tenant: str = ""


@dataclass
class AdPlatformChange:
    """An edit a person made on the ad platform since the campaign's last round there."""

    item_id: str
    field: str  # "status" | "total_budget_cents"
    before: str  # what we had last set or seen ("" when never)
    after: str  # what the platform shows now
    resolution: str  # "respected" (status followed) | "kept" (the platform's total stays this round)
    wanted_cents: int  # the total the campaign wanted for the item this round
    conflict: bool  # the campaign wanted a different total too (both sides moved)


@dataclass
class ItemBudgetsResult:
    updated: int
    budgets: dict[str, int]  # item id -> total budget now set on the channel
    # Two-way sync with the ad platform (empty for results recorded before it existed).
    platform_changes: list[AdPlatformChange] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # item id -> "paused" | "platform_budget"
    # channel -> planned total minus the campaign's, where held items could not be absorbed.
    channel_gap_cents: dict[str, int] = field(default_factory=dict)


@dataclass
class ExperimentStatus:
    experiment_id: str
    channel: str
    status: str
    winner: str | None
    reason: str


@dataclass
class CampaignStatus:
    """Returned by the workflow's ``status`` query: live state at every step."""

    campaign_id: str
    phase: str
    paused: bool
    completed_phases: list[str]
    items: list[ItemStatus]
    reminders_sent: int
    escalated: bool
    metrics_rounds_done: int
    error: str = ""
    # True while content generation waits for the model server; never silent.
    degraded: bool = False
    degraded_reason: str = ""
    experiments: list[ExperimentStatus] = field(default_factory=list)
    pending_reallocation: ReallocationProposal | None = None


@dataclass
class ReportRequest:
    campaign_id: str
    outcome: str  # CampaignPhase value the campaign ended in
    items: list[ItemStatus] = field(default_factory=list)


@dataclass
class ReportResult:
    campaign_id: str
    html_path: str
    summary_path: str
    report_id: str = ""  # the ROI report (HTML + PDF) recorded in the reports table
    pdf_path: str = ""


@dataclass
class RoiReportRequest:
    report_id: str
    tenant: str
    scope: str  # "campaign" | "tenant"
    campaign_id: str = ""
    trigger: str = "api"  # api | schedule | campaign


@dataclass
class RoiReportResult:
    report_id: str
    status: str
    html_path: str
    pdf_path: str


@dataclass
class ScheduledReportsInput:
    trigger: str = "schedule"
    tenants: list[str] = field(default_factory=list)  # empty: every tenant with campaigns


@dataclass
class ScheduledReportsResult:
    reports: list[str] = field(default_factory=list)


@dataclass
class CampaignResult:
    campaign_id: str
    outcome: str
    published: int
    rejected: int
    expired: int
    blocked: int
    report_path: str


# ---- model server: degraded mode, relevance ----------------------------------------------
@dataclass
class ModelServerState:
    """Signal from a content pipeline to its campaign: the model server is down or back."""

    item_id: str
    available: bool
    reason: str = ""


@dataclass
class RelevanceRequest:
    """How close a draft is to what its brief and calendar entry asked for (embeddings)."""

    brief: CampaignBrief
    entry: CalendarEntry
    title: str
    body: str
    message: MessageBrief | None = None  # the set's shared message: the draft must carry it


@dataclass
class RelevanceResult:
    similarity: float  # cosine, -1..1
    model: str
    embedding: list[float] = field(default_factory=list)  # the draft's unit vector (duplicate checks)


# ---- model rollout ----------------------------------------------------------------------
@dataclass
class CanaryPolicy:
    """What a candidate model version must show on the fixed prompt set to be promoted."""

    # Share of outputs longer than the channel allows, beyond the serving version's share (a
    # small model overruns now and then; a candidate must not overrun more often).
    max_length_violation_increase: float = 0.0
    max_bad_output_rate: float = 0.2  # refusals, empty or garbage output
    min_agreement: float = 0.5  # mean cosine of candidate vs serving output embeddings
    max_latency_ratio: float = 3.0  # candidate p95 latency / serving p95 latency
    max_tokens: int = 96


@dataclass
class ModelRolloutInput:
    rollout_id: str
    model: str  # e.g. "content_generator"
    parameters: dict[str, str]  # the candidate version's overrides, e.g. {"compute_type": "float32"}
    policy: CanaryPolicy
    model_control_queue: str  # served next to Triton: its activities write Triton's repository
    orchestration_queue: str
    requested_by: str = "system"
    activity_timeout_s: float = 300.0


@dataclass
class StagedCandidate:
    rollout_id: str
    model: str
    canary_model: str
    version: int
    serving_version: int


@dataclass
class CanarySample:
    prompt_id: str
    max_chars: int
    candidate_text: str
    serving_text: str
    candidate_latency_s: float
    serving_latency_s: float
    agreement: float  # cosine of the two outputs' embeddings


@dataclass
class CanaryEvaluationRequest:
    candidate: StagedCandidate
    policy: CanaryPolicy


@dataclass
class CanaryReport:
    passed: bool
    reasons: list[str]
    length_violation_rate: float
    serving_length_violation_rate: float
    bad_output_rate: float
    mean_agreement: float
    latency_ratio: float
    candidate_p95_s: float
    serving_p95_s: float
    samples: list[CanarySample] = field(default_factory=list)


@dataclass
class RolloutStepRecord:
    rollout_id: str
    model: str
    step: str  # staged, evaluated, promoted, rolled_back
    actor: str
    detail: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelRolloutStatus:
    rollout_id: str
    model: str
    phase: str  # staging, evaluating, promoting, rolling_back, promoted, rolled_back
    version: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class ModelRolloutResult:
    rollout_id: str
    model: str
    version: int
    outcome: str  # promoted | rolled_back
    serving_version: int
    reasons: list[str] = field(default_factory=list)
    report: CanaryReport | None = None
