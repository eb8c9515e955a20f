"""CompetitiveWatchWorkflow: one poll of a tenant's competitor sources (started by its Schedule or the API).

fetch each source (integrations queue, bounded concurrency) -> store new / changed items ->
embed what has no embedding yet (inference queue, in batches) -> cluster into topics, measure
momentum, store proposals. Every step is idempotent, so a retried or re-run poll is harmless.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

from agency.competitive.contracts import (
    COMPETITIVE_WATCH_WORKFLOW,
    CompetitiveActivity,
    EmbedBatchRequest,
    FetchResult,
    ItemText,
    SaveEmbeddings,
    SourceRef,
    StoreRequest,
    StoreResult,
    TopicsRequest,
    TopicsResult,
    WatchInput,
    WatchResult,
)
from workflows.activity_options import DEFAULT_RETRY

# Enough for every item of a poll many times over; stops a loop if embeddings never stick.
MAX_EMBED_BATCHES = 200


@workflow.defn(name=COMPETITIVE_WATCH_WORKFLOW)
class CompetitiveWatchWorkflow:
    @workflow.run
    async def run(self, inp: WatchInput) -> WatchResult:
        polled_at = workflow.now().isoformat()
        short = {"start_to_close_timeout": timedelta(seconds=inp.activity_timeout_s), "retry_policy": DEFAULT_RETRY,
                 "task_queue": inp.queues.orchestration}
        sources = await workflow.execute_activity(
            CompetitiveActivity.LOAD_SOURCES, inp.tenant, result_type=list[SourceRef], **short
        )
        slots = asyncio.Semaphore(max(1, inp.max_concurrent_fetches))

        async def poll(source: SourceRef) -> StoreResult:
            async with slots:
                fetched = await workflow.execute_activity(
                    CompetitiveActivity.FETCH_SOURCE, source, result_type=FetchResult,
                    task_queue=inp.queues.integrations,
                    start_to_close_timeout=timedelta(seconds=inp.fetch_timeout_s), retry_policy=DEFAULT_RETRY,
                )
            return await workflow.execute_activity(
                CompetitiveActivity.STORE_FETCH, StoreRequest(tenant=inp.tenant, polled_at=polled_at, result=fetched),
                result_type=StoreResult, **short,
            )

        stored = list(await asyncio.gather(*(poll(s) for s in sources)))

        embedded = 0
        for _ in range(MAX_EMBED_BATCHES):
            batch = await workflow.execute_activity(
                CompetitiveActivity.NEXT_UNEMBEDDED, EmbedBatchRequest(tenant=inp.tenant, limit=inp.embed_batch),
                result_type=list[ItemText], **short,
            )
            if not batch:
                break
            vectors = await workflow.execute_activity(
                CompetitiveActivity.EMBED_TEXTS, [b.text for b in batch], result_type=list[list[float]],
                task_queue=inp.queues.inference,
                start_to_close_timeout=timedelta(seconds=inp.embed_timeout_s), retry_policy=DEFAULT_RETRY,
            )
            embedded += await workflow.execute_activity(
                CompetitiveActivity.SAVE_EMBEDDINGS, SaveEmbeddings(item_ids=[b.item_id for b in batch], vectors=vectors),
                result_type=int, **short,
            )

        topics = await workflow.execute_activity(
            CompetitiveActivity.UPDATE_TOPICS,
            TopicsRequest(tenant=inp.tenant, now=polled_at, window_days=inp.window_days),
            result_type=TopicsResult, **short,
        )
        return WatchResult(
            tenant=inp.tenant, polled_at=polled_at, sources=stored, embedded=embedded,
            topics=len(topics.topics), proposals=topics.proposals,
        )
