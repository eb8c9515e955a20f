"""Payloads of the competitive watch (workflow, activities, API), as plain dataclasses.

Workflows import this module like agency.contracts: no I/O, JSON-friendly fields only
(dates are ISO-8601 strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agency.contracts import TaskQueues

COMPETITIVE_WATCH_WORKFLOW = "CompetitiveWatchWorkflow"
SOURCE_KINDS = ("rss", "atom", "sitemap", "page")


class CompetitiveActivity:
    """Activity names (workflows reference activities by name, never by import)."""

    LOAD_SOURCES = "load_competitor_sources"  # orchestration
    FETCH_SOURCE = "fetch_competitor_source"  # integrations (HTTP)
    STORE_FETCH = "store_competitor_fetch"  # orchestration
    NEXT_UNEMBEDDED = "next_unembedded_competitor_items"  # orchestration
    EMBED_TEXTS = "embed_competitor_texts"  # inference (Triton embedder)
    SAVE_EMBEDDINGS = "save_competitor_embeddings"  # orchestration
    UPDATE_TOPICS = "update_competitor_topics"  # orchestration


class FetchStatus:
    OK = "ok"
    NOT_MODIFIED = "not_modified"  # 304: nothing new, no body parsed
    DISALLOWED = "disallowed"  # robots.txt forbids the path: never requested
    ERROR = "error"  # network error, HTTP error status, unparsable body


@dataclass
class SourceRef:
    source_id: int
    url: str
    kind: str  # SOURCE_KINDS
    etag: str = ""
    last_modified: str = ""


@dataclass
class FetchedItem:
    external_id: str  # guid / Atom id / link / page URL
    url: str
    title: str
    text: str  # plain text, truncated
    published: str = ""  # ISO-8601 UTC, "" when the feed does not say
    fingerprint: str = ""  # hash of the normalized title + text: a new value means the item changed


@dataclass
class FetchResult:
    source_id: int
    status: str  # FetchStatus
    http_status: int = 0
    etag: str = ""
    last_modified: str = ""
    items: list[FetchedItem] = field(default_factory=list)
    error: str = ""


@dataclass
class StoreRequest:
    tenant: str
    polled_at: str  # the poll's time (from the workflow): first_seen / changed_at of what it finds
    result: FetchResult


@dataclass
class StoreResult:
    source_id: int
    status: str
    new: list[str] = field(default_factory=list)  # external ids
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class EmbedBatchRequest:
    tenant: str
    limit: int = 32


@dataclass
class ItemText:
    item_id: int
    text: str


@dataclass
class SaveEmbeddings:
    item_ids: list[int]
    vectors: list[list[float]]


@dataclass
class TopicsRequest:
    tenant: str
    now: str  # ISO-8601; the end of the recent window
    window_days: int = 14
    threshold: float = 0.45  # cosine similarity to join a topic (agency.competitive.topics.DEFAULT_THRESHOLD)


@dataclass
class Proposal:
    kind: str  # "content_idea" | "budget_hint"
    topic: str  # the topic's label
    text: str
    momentum: float
    recent: int
    previous: int
    topic_key: str = ""


@dataclass
class TopicSummary:
    topic_key: str
    label: str
    keywords: list[str]
    items: int
    recent: int
    previous: int
    momentum: float


@dataclass
class TopicsResult:
    topics: list[TopicSummary] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)


@dataclass
class WatchInput:
    tenant: str
    queues: TaskQueues
    max_concurrent_fetches: int = 4
    window_days: int = 14
    embed_batch: int = 32
    fetch_timeout_s: float = 60.0
    activity_timeout_s: float = 30.0
    embed_timeout_s: float = 120.0


@dataclass
class WatchResult:
    tenant: str
    polled_at: str
    sources: list[StoreResult] = field(default_factory=list)
    embedded: int = 0
    topics: int = 0
    proposals: list[Proposal] = field(default_factory=list)
