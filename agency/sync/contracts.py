"""Payloads of the CRM sync workflow, its activities, signals and query (plain dataclasses).

The workflow imports only this module (plus temporalio and the policy dataclasses), so the
Temporal JSON converter round-trips everything and histories stay readable.
"""

# No postponed annotations here: Temporal's converter resolves these dataclasses' field types
# inside the workflow sandbox, where string annotations cannot be looked up.
from dataclasses import dataclass, field

from agency.sync.mapping import OBJECT_TYPES
from agency.sync.policy import SyncPolicy

CRM_SYNC_WORKFLOW = "CrmSyncWorkflow"


def crm_sync_workflow_id(tenant: str) -> str:
    return f"crm-sync-{tenant}"


class CrmSyncSignal:
    CRM_CHANGED = "crm_changed"  # a webhook saw a change: run a round now
    RESOLVE_CONFLICT = "resolve_conflict"  # a person decided a conflict


class CrmSyncQuery:
    STATUS = "status"


class CrmSyncActivity:
    PULL_PAGE = "crm_sync_pull_page"
    PULL_ARCHIVED_PAGE = "crm_sync_pull_archived_page"
    PUSH_PAGE = "crm_sync_push_page"
    FINISH_ROUND = "crm_sync_finish_round"
    APPLY_RESOLUTION = "crm_sync_apply_resolution"


# Counter names a page reports (summed per round and in totals).
COUNTERS = (
    "seen", "pulled", "pushed", "created_in_crm", "created_ours", "conflicts", "tombstoned",
    "archived_in_crm", "recreated", "rejected",
)


@dataclass
class SyncPageRequest:
    tenant: str
    object_type: str
    policy: SyncPolicy = field(default_factory=SyncPolicy)
    page_size: int = 100
    # Push re-reads rows edited this long before its cursor: a transaction that started
    # earlier but committed after the cursor moved past its time is still pushed.
    push_overlap_s: float = 5.0


@dataclass
class SyncPageResult:
    object_type: str
    more: bool
    counts: dict[str, int] = field(default_factory=dict)
    cursor: str = ""


@dataclass
class FinishRoundRequest:
    tenant: str
    object_type: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class FinishRoundResult:
    object_type: str
    pending_conflicts: int
    cursor: str


@dataclass
class ConflictResolution:
    conflict_id: str
    resolution: str  # ours | theirs | value
    value: str | None = None
    resolved_by: str = ""


@dataclass
class ResolutionRequest:
    tenant: str
    resolution: ConflictResolution


@dataclass
class ResolutionResult:
    conflict_id: str
    applied: bool
    detail: str = ""


@dataclass
class CrmSyncInput:
    tenant: str  # tenant slug
    task_queue: str  # where the sync activities run (integrations: they call the CRM)
    interval_s: float = 60.0
    rounds_per_run: int = 100  # then continue-as-new, which bounds the history
    page_size: int = 100
    activity_timeout_s: float = 120.0
    heartbeat_timeout_s: float = 30.0
    object_types: list[str] = field(default_factory=lambda: list(OBJECT_TYPES))
    policy: SyncPolicy = field(default_factory=SyncPolicy)
    # Carried over by continue-as-new.
    rounds: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    waiting_resolutions: list[ConflictResolution] = field(default_factory=list)


@dataclass
class CrmSyncStatus:
    tenant: str
    phase: str  # starting | syncing | waiting | resolving
    rounds: int
    last_round_at: str
    cursors: dict[str, str]
    totals: dict[str, int]
    last_round: dict[str, int]
    pending_conflicts: int
    resolutions_waiting: int
    applied_resolutions: list[str] = field(default_factory=list)
