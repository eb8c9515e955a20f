"""ContentPipelineWorkflow: one calendar entry -> generated, checked, stored draft."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from agency.contracts import (
    ActivityName,
    ApprovalState,
    CampaignHandler,
    ComplianceRequest,
    ComplianceResult,
    ContentDraft,
    ContentPipelineInput,
    ContentPipelineResult,
    DraftCandidate,
    GenerationRequest,
    ModelServerState,
    RankRequest,
    RankResult,
    RelevanceRequest,
    RelevanceResult,
    SaveContentRequest,
    SavedContent,
    SimilarContentRequest,
    SimilarContentResult,
    WorkflowName,
)
from workflows import activity_options

# Patch ids (workflow.patched): histories recorded before a change replay the old branch.
WAIT_FOR_MODEL_SERVER = "wait-for-model-server"
CHECK_RELEVANCE = "check-relevance"
# Items that carry a message brief: N candidates per round, duplicate lookup, brand rules, ranking.
RANKED_CANDIDATES = "ranked-candidates"
INFERENCE_UNAVAILABLE = "InferenceUnavailable"


def _is_model_server_outage(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == INFERENCE_UNAVAILABLE


@workflow.defn(name=WorkflowName.CONTENT_PIPELINE)
class ContentPipelineWorkflow:
    """Generate with the model in Triton, check compliance, regenerate on a blocking finding.

    Every attempt is stored as a version, so reviewers can see what the model produced and why
    a draft was rejected by the checks. A draft that never passes is stored as blocked and is
    never offered for approval. Drafts far from the brief (embedding similarity) are blocked
    too. When the model server is down the pipeline tells its campaign (degraded), waits for
    the server, and carries on; it never fails for an outage.
    """

    def __init__(self) -> None:
        self._degraded = False

    @workflow.run
    async def run(self, inp: ContentPipelineInput) -> ContentPipelineResult:
        if inp.message is not None and workflow.patched(RANKED_CANDIDATES):
            return await self._run_ranked(inp)
        timings = inp.timings
        attempts = max(1, timings.max_generation_attempts)
        draft: ContentDraft | None = None
        check: ComplianceResult | None = None
        for attempt in range(1, attempts + 1):
            generation = _generation_request(inp, attempt)
            draft = await self._inference(inp, ActivityName.GENERATE_CONTENT, generation, ContentDraft)
            relevance: float | None = None
            if workflow.patched(CHECK_RELEVANCE):
                scored = await self._inference(
                    inp,
                    ActivityName.SCORE_RELEVANCE,
                    RelevanceRequest(brief=inp.brief, entry=inp.entry, title=draft.title, body=draft.body),
                    RelevanceResult,
                )
                relevance = scored.similarity
            check = await workflow.execute_activity(
                ActivityName.CHECK_COMPLIANCE,
                ComplianceRequest(draft=draft, key_claims=inp.brief.key_claims, relevance=relevance),
                task_queue=inp.queues.orchestration,
                result_type=ComplianceResult,
                **activity_options.short(timings),
            )
            final = check.passed or attempt == attempts
            state = ApprovalState.PENDING if check.passed else ApprovalState.BLOCKED
            await workflow.execute_activity(
                ActivityName.SAVE_CONTENT,
                SaveContentRequest(
                    draft=draft,
                    compliance=check,
                    approval_state=state.value,
                    publish_on=inp.entry.publish_on,
                ),
                task_queue=inp.queues.orchestration,
                result_type=SavedContent,
                **activity_options.short(timings),
            )
            if final:
                break

        assert draft is not None and check is not None
        return ContentPipelineResult(
            item_id=draft.item_id,
            channel=draft.channel,
            format=draft.format,
            version=draft.attempt,
            approval_state=(ApprovalState.PENDING if check.passed else ApprovalState.BLOCKED).value,
            title=check.sanitized_title,
            body=check.sanitized_body,
            attempts=draft.attempt,
            findings=check.findings,
        )

    async def _run_ranked(self, inp: ContentPipelineInput) -> ContentPipelineResult:
        """Each round: N candidates, each generated, embedded, checked for duplicates and rules;
        the ranking keeps the best. A round whose best is blocked is stored as blocked and the
        next round is told what failed; the last round's best stands either way."""
        assert inp.message is not None
        rounds = max(1, inp.timings.max_generation_attempts)
        variants = max(1, inp.variants)
        feedback = inp.feedback
        history: list[dict[str, Any]] = []
        best: DraftCandidate | None = None
        for round_no in range(rounds):
            attempt = inp.first_attempt + round_no
            scored = await asyncio.gather(
                *(self._candidate(inp, attempt, variant, feedback) for variant in range(1, variants + 1))
            )
            candidates = [candidate for candidate, _ in scored]
            ranking = await workflow.execute_activity(
                ActivityName.RANK_DRAFTS,
                RankRequest(candidates=candidates, brand=inp.brand),
                task_queue=inp.queues.orchestration,
                result_type=RankResult,
                **activity_options.short(inp.timings),
            )
            winner = ranking.order[0]
            best = candidates[winner]
            history.append({
                "attempt": attempt,
                "feedback": feedback,
                "winner": best.draft.variant,
                "candidates": [
                    {
                        "variant": c.draft.variant,
                        "passed": c.compliance.passed,
                        "relevance": c.relevance,
                        "duplicate_similarity": c.duplicate_similarity,
                        "score": ranking.scores[i],
                        "blocking": [f.rule for f in c.compliance.findings if f.severity == "block"],
                    }
                    for i, c in enumerate(candidates)
                ],
            })
            passed = best.compliance.passed
            final = passed or round_no == rounds - 1
            # Passing runners-up are kept whole: they are ready-made B arms for an A/B test.
            alternatives = [
                {"variant": c.draft.variant, "title": c.compliance.sanitized_title,
                 "body": c.compliance.sanitized_body, "parts": c.draft.parts}
                for i, c in enumerate(candidates)
                if i != winner and c.compliance.passed
            ]
            await workflow.execute_activity(
                ActivityName.SAVE_CONTENT,
                SaveContentRequest(
                    draft=best.draft,
                    compliance=best.compliance,
                    approval_state=(ApprovalState.PENDING if passed else ApprovalState.BLOCKED).value,
                    publish_on=inp.entry.publish_on,
                    embedding=scored[winner][1],
                    generation={
                        # What the draft was written from, so a preview or redraft can rebuild its prompt.
                        "entry": asdict(inp.entry),
                        "message": asdict(inp.message),
                        "message_id": inp.message.message_id,
                        "topic": inp.entry.topic or inp.message.topic,
                        "publish_hour": inp.entry.publish_hour,
                        "brand_version": inp.brand.version if inp.brand is not None else None,
                        "rounds": history,
                        "alternatives": alternatives,
                    },
                ),
                task_queue=inp.queues.orchestration,
                result_type=SavedContent,
                **activity_options.short(inp.timings),
            )
            if final:
                break
            feedback = _failure_feedback(best)

        assert best is not None
        state = ApprovalState.PENDING if best.compliance.passed else ApprovalState.BLOCKED
        return ContentPipelineResult(
            item_id=best.draft.item_id,
            channel=best.draft.channel,
            format=best.draft.format,
            version=best.draft.attempt,
            approval_state=state.value,
            title=best.compliance.sanitized_title,
            body=best.compliance.sanitized_body,
            attempts=len(history),
            findings=best.compliance.findings,
            parts=best.draft.parts,
        )

    async def _candidate(
        self, inp: ContentPipelineInput, attempt: int, variant: int, feedback: str
    ) -> tuple[DraftCandidate, list[float]]:
        timings = inp.timings
        draft = await self._inference(
            inp, ActivityName.GENERATE_CONTENT, _generation_request(inp, attempt, variant, feedback), ContentDraft
        )
        scored = await self._inference(
            inp,
            ActivityName.SCORE_RELEVANCE,
            RelevanceRequest(
                brief=inp.brief, entry=inp.entry, title=draft.title, body=draft.body, message=inp.message
            ),
            RelevanceResult,
        )
        similar = await workflow.execute_activity(
            ActivityName.FIND_SIMILAR_CONTENT,
            SimilarContentRequest(
                campaign_id=inp.campaign_id,
                item_id=inp.entry.item_id,
                embedding=scored.embedding,
                message_id=inp.message.message_id if inp.message is not None else "",
            ),
            task_queue=inp.queues.orchestration,
            result_type=SimilarContentResult,
            **activity_options.short(timings),
        )
        check = await workflow.execute_activity(
            ActivityName.CHECK_COMPLIANCE,
            ComplianceRequest(
                draft=draft,
                key_claims=inp.brief.key_claims,
                relevance=scored.similarity,
                brand=inp.brand,
                message=inp.message,
                duplicate_similarity=similar.similarity,
                duplicate_of=similar.item_id,
                product=inp.brief.product,
            ),
            task_queue=inp.queues.orchestration,
            result_type=ComplianceResult,
            **activity_options.short(timings),
        )
        candidate = DraftCandidate(
            draft=draft, compliance=check, relevance=scored.similarity, duplicate_similarity=similar.similarity
        )
        return candidate, scored.embedding

    async def _inference(self, inp: ContentPipelineInput, name: str, arg: Any, result_type: type) -> Any:
        """Run an inference-queue activity; through a model-server outage, wait instead of failing."""
        timings = inp.timings
        if not workflow.patched(WAIT_FOR_MODEL_SERVER):
            return await workflow.execute_activity(
                name, arg, task_queue=inp.queues.inference, result_type=result_type,
                **activity_options.generation(timings),
            )
        while True:
            try:
                result = await workflow.execute_activity(
                    name, arg, task_queue=inp.queues.inference, result_type=result_type,
                    **activity_options.model_server_attempts(timings),
                )
            except ActivityError as err:
                if not _is_model_server_outage(err):
                    raise
                await self._report_model_server(inp, available=False, reason=str(err.cause.message))
                # Probe with backoff until the server answers, however long the outage lasts.
                await workflow.execute_activity(
                    ActivityName.CHECK_MODEL_SERVER, task_queue=inp.queues.inference,
                    **activity_options.model_server_probe(timings),
                )
                continue
            if self._degraded:
                await self._report_model_server(inp, available=True, reason="")
            return result

    async def _report_model_server(self, inp: ContentPipelineInput, *, available: bool, reason: str) -> None:
        """Tell the campaign (the parent) so its status shows the degraded state."""
        self._degraded = not available
        parent = workflow.info().parent
        if parent is None:
            return
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(
            CampaignHandler.MODEL_SERVER_STATE,
            ModelServerState(item_id=inp.entry.item_id, available=available, reason=reason),
        )


def _generation_request(inp: ContentPipelineInput, attempt: int, variant: int = 1, feedback: str = "") -> GenerationRequest:
    """One draft's request; without a message (pipelines before ranked candidates) the legacy prompt."""
    return GenerationRequest(
        campaign_id=inp.campaign_id,
        entry=inp.entry,
        brief=inp.brief,
        plan=inp.plan,
        max_tokens=inp.timings.generation_max_tokens,
        temperature=inp.timings.generation_temperature,
        attempt=attempt,
        message=inp.message,
        brand=inp.brand,
        variant=variant,
        feedback=feedback,
    )


def _failure_feedback(candidate: DraftCandidate) -> str:
    """What the next round must avoid, in the checks' own words."""
    blocking = [f for f in candidate.compliance.findings if f.severity == "block"]
    reasons = "; ".join(f"{f.rule}: {f.message}" for f in blocking[:3])
    return f"The previous draft failed these checks: {reasons}." if reasons else ""
