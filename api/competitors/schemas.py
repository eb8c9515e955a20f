"""Request and response bodies of /v1/competitors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_SOURCES = 50
MIN_INTERVAL_MINUTES = 15  # politeness: nobody's feed needs polling more often
MAX_INTERVAL_MINUTES = 7 * 24 * 60


def _public_http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return value


HttpUrlText = Annotated[str, Field(min_length=8, max_length=2000), AfterValidator(_public_http_url)]


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrlText
    kind: Literal["rss", "atom", "sitemap", "page"] = Field(
        description="What the URL serves; the parser also recognizes the document by its content"
    )


class CompetitorsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: Annotated[list[SourceIn], Field(min_length=1, max_length=MAX_SOURCES)]
    interval_minutes: Annotated[int, Field(ge=MIN_INTERVAL_MINUTES, le=MAX_INTERVAL_MINUTES, strict=True)] = 360


class SourceOut(BaseModel):
    source_id: int
    url: str
    kind: str
    last_status: Literal["never", "ok", "not_modified", "disallowed", "error"]
    last_http_status: int | None
    last_error: str
    last_polled_at: datetime | None
    items: int


class CompetitorsOut(BaseModel):
    interval_minutes: int | None = Field(None, description="None until sources are registered")
    schedule_id: str | None
    sources: list[SourceOut]


class ProposalOut(BaseModel):
    kind: Literal["content_idea", "budget_hint"]
    topic: str
    topic_key: str
    text: str
    momentum: float
    recent: int
    previous: int


class TopicOut(BaseModel):
    topic_key: str
    label: str
    keywords: list[str]
    items: int
    recent: int = Field(description="Items in the last window_days")
    previous: int = Field(description="Items in the window_days before")
    momentum: float = Field(description="(recent + 1) / (previous + 1) - 1; > 0 rising")
    window_days: int
    computed_at: datetime
    proposals: list[ProposalOut]


class TopicsOut(BaseModel):
    topics: list[TopicOut]
    proposals: list[ProposalOut] = Field(description="Every topic's proposals, content ideas first")


class PollAccepted(BaseModel):
    workflow_id: str
