"""Persistence of the competitive watch: sources, items (new / changed / unchanged), topics.

Same rules as agency.db.repository: idempotent writes (activities are retried), callers own
the transaction, every read is scoped to a tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agency.competitive.contracts import FetchResult, FetchStatus, Proposal, StoreResult, TopicSummary
from agency.competitive.topics import Topic, trend
from agency.contracts import TopicTrend
from agency.db.models import Tenant
from agency.db.models_competitive import CompetitorItem, CompetitorSource, CompetitorTopic, CompetitorWatch

_NO_SYNC = {"synchronize_session": False}


def _when(iso: str) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


class CompetitiveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tenant_id(self, slug: str) -> uuid.UUID | None:
        return await self.session.scalar(select(Tenant.id).where(Tenant.slug == slug))

    # ---- sources -----------------------------------------------------------------------
    async def replace_sources(
        self, tenant_id: uuid.UUID, sources: Sequence[tuple[str, str]], *, interval_s: int, schedule_id: str
    ) -> list[CompetitorSource]:
        """The tenant watches exactly ``sources`` (url, kind): new ones added, kinds updated,
        the others removed with their items. Validators and status of kept sources stay."""
        urls = [url for url, _ in sources]
        await self.session.execute(
            delete(CompetitorSource).where(CompetitorSource.tenant_id == tenant_id, CompetitorSource.url.not_in(urls))
        )
        if sources:
            stmt = insert(CompetitorSource).values(
                [{"tenant_id": tenant_id, "url": url, "kind": kind} for url, kind in sources]
            )
            await self.session.execute(
                stmt.on_conflict_do_update(index_elements=["tenant_id", "url"], set_={"kind": stmt.excluded.kind})
            )
        watch = insert(CompetitorWatch).values(tenant_id=tenant_id, interval_s=interval_s, schedule_id=schedule_id)
        await self.session.execute(
            watch.on_conflict_do_update(
                index_elements=["tenant_id"],
                set_={"interval_s": watch.excluded.interval_s, "schedule_id": watch.excluded.schedule_id},
            )
        )
        return await self.sources(tenant_id)

    async def sources(self, tenant_id: uuid.UUID) -> list[CompetitorSource]:
        result = await self.session.scalars(
            select(CompetitorSource)
            .where(CompetitorSource.tenant_id == tenant_id)
            .order_by(CompetitorSource.id)
            .execution_options(populate_existing=True)
        )
        return list(result)

    async def watch(self, tenant_id: uuid.UUID) -> CompetitorWatch | None:
        return await self.session.scalar(select(CompetitorWatch).where(CompetitorWatch.tenant_id == tenant_id))

    async def item_counts(self, tenant_id: uuid.UUID) -> dict[int, int]:
        rows = await self.session.execute(
            select(CompetitorItem.source_id, func.count())
            .where(CompetitorItem.tenant_id == tenant_id)
            .group_by(CompetitorItem.source_id)
        )
        return {source_id: count for source_id, count in rows}

    # ---- a poll's results ----------------------------------------------------------------
    async def record_poll(self, tenant_id: uuid.UUID, result: FetchResult, polled_at: datetime) -> bool:
        """The source's status after a poll; validators replaced only by a full (200) response.
        False if the source is not the tenant's (removed meanwhile)."""
        values: dict = {
            "last_status": result.status, "last_http_status": result.http_status or None,
            "last_error": result.error[:1000], "last_polled_at": polled_at,
        }
        if result.status == FetchStatus.OK:
            values.update(etag=result.etag, last_modified=result.last_modified)
        updated = await self.session.execute(
            update(CompetitorSource)
            .where(CompetitorSource.id == result.source_id, CompetitorSource.tenant_id == tenant_id)
            .values(**values)
            .execution_options(**_NO_SYNC)
        )
        return updated.rowcount == 1

    async def store_items(self, tenant_id: uuid.UUID, result: FetchResult, seen_at: datetime) -> StoreResult:
        """Upsert by (source, external id): new items inserted, changed ones (new fingerprint)
        updated with their embedding cleared, unchanged ones left alone.

        A retry with the same ``seen_at`` classifies the same way: what this poll inserted has
        first_seen_at == seen_at, what it changed has changed_at == seen_at.
        """
        out = StoreResult(source_id=result.source_id, status=result.status)
        items = list({i.external_id: i for i in result.items if i.external_id}.values())
        if not items:
            return out
        existing = {
            row.external_id: row
            for row in await self.session.scalars(
                select(CompetitorItem)
                .where(
                    CompetitorItem.source_id == result.source_id,
                    CompetitorItem.external_id.in_([i.external_id for i in items]),
                )
                .execution_options(populate_existing=True)
            )
        }
        fresh = []
        for item in items:
            row = existing.get(item.external_id)
            if row is None:
                fresh.append(item)
            elif row.fingerprint != item.fingerprint:
                await self.session.execute(
                    update(CompetitorItem)
                    .where(CompetitorItem.id == row.id)
                    .values(
                        url=item.url, title=item.title, text=item.text, fingerprint=item.fingerprint,
                        published_at=_when(item.published) or row.published_at, changed_at=seen_at,
                        # null(): a plain None would be stored as the JSON value null, not SQL NULL.
                        version=CompetitorItem.version + 1, embedding=null(), topic_key=None,
                    )
                    .execution_options(**_NO_SYNC)
                )
                out.changed.append(item.external_id)
            elif row.first_seen_at == seen_at:
                out.new.append(item.external_id)
            elif row.changed_at == seen_at:
                out.changed.append(item.external_id)
            else:
                out.unchanged += 1
        if fresh:
            inserted = await self.session.scalars(
                insert(CompetitorItem)
                .values(
                    [
                        {
                            "source_id": result.source_id, "tenant_id": tenant_id, "external_id": i.external_id,
                            "url": i.url, "title": i.title, "text": i.text, "fingerprint": i.fingerprint,
                            "published_at": _when(i.published), "first_seen_at": seen_at,
                        }
                        for i in fresh
                    ]
                )
                .on_conflict_do_nothing(index_elements=["source_id", "external_id"])
                .returning(CompetitorItem.external_id)
            )
            out.new.extend(inserted)
        return out

    # ---- embeddings ----------------------------------------------------------------------
    async def unembedded(self, tenant_id: uuid.UUID, limit: int) -> list[CompetitorItem]:
        result = await self.session.scalars(
            select(CompetitorItem)
            .where(CompetitorItem.tenant_id == tenant_id, CompetitorItem.embedding.is_(None))
            .order_by(CompetitorItem.id)
            .limit(limit)
        )
        return list(result)

    async def save_embeddings(self, item_ids: Sequence[int], vectors: Sequence[list[float]]) -> int:
        for item_id, vector in zip(item_ids, vectors, strict=True):
            await self.session.execute(
                update(CompetitorItem).where(CompetitorItem.id == item_id).values(embedding=vector)
                .execution_options(**_NO_SYNC)
            )
        return len(item_ids)

    async def embedded_items(self, tenant_id: uuid.UUID, since: datetime) -> list[CompetitorItem]:
        """Items with an embedding seen or published since ``since`` (the topics' horizon)."""
        result = await self.session.scalars(
            select(CompetitorItem).where(
                CompetitorItem.tenant_id == tenant_id,
                CompetitorItem.embedding.is_not(None),
                (CompetitorItem.published_at >= since)
                | (CompetitorItem.published_at.is_(None) & (CompetitorItem.first_seen_at >= since)),
            )
        )
        return list(result)

    # ---- topics --------------------------------------------------------------------------
    async def replace_topics(
        self, tenant_id: uuid.UUID, topics: list[Topic], proposals: list[Proposal], *, window_days: int,
        computed_at: datetime, item_ids: dict[str, int],
    ) -> None:
        """The topics as of this poll replace the previous ones (recomputed from all items each poll)."""
        await self.session.execute(delete(CompetitorTopic).where(CompetitorTopic.tenant_id == tenant_id))
        await self.session.execute(
            update(CompetitorItem).where(CompetitorItem.tenant_id == tenant_id).values(topic_key=None)
            .execution_options(**_NO_SYNC)
        )
        by_topic: dict[str, list[dict]] = {}
        for p in proposals:
            by_topic.setdefault(p.topic_key, []).append(asdict(p))
        for topic in topics:
            await self.session.execute(
                insert(CompetitorTopic).values(
                    tenant_id=tenant_id, topic_key=topic.key, label=topic.label, keywords=topic.keywords,
                    centroid=topic.centroid, item_count=len(topic.items), recent_count=topic.recent,
                    previous_count=topic.previous, momentum=topic.momentum, window_days=window_days,
                    proposals=by_topic.get(topic.key, []), computed_at=computed_at,
                )
            )
            ids = [item_ids[i.key] for i in topic.items if i.key in item_ids]
            await self.session.execute(
                update(CompetitorItem).where(CompetitorItem.id.in_(ids)).values(topic_key=topic.key)
                .execution_options(**_NO_SYNC)
            )

    async def topics(self, tenant_id: uuid.UUID) -> list[CompetitorTopic]:
        result = await self.session.scalars(
            select(CompetitorTopic)
            .where(CompetitorTopic.tenant_id == tenant_id)
            .order_by(CompetitorTopic.recent_count.desc(), CompetitorTopic.momentum.desc(), CompetitorTopic.topic_key)
        )
        return list(result)

    async def topic_trends(self, tenant_id: uuid.UUID) -> list[TopicTrend]:
        """The competitor topics as planning reads them (TopicTrend, source="competitor")."""
        return [
            trend(
                TopicSummary(
                    topic_key=t.topic_key, label=t.label, keywords=list(t.keywords), items=t.item_count,
                    recent=t.recent_count, previous=t.previous_count, momentum=t.momentum,
                ),
                t.window_days,
            )
            for t in await self.topics(tenant_id)
        ]
