"""ContentPipelineWorkflow: one calendar entry -> generated, checked, stored draft."""

from __future__ import annotations

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
    GenerationRequest,
    ModelServerState,
    RelevanceRequest,
    RelevanceResult,
    SaveContentRequest,
    SavedContent,
    WorkflowName,
)
from workflows import activity_options

# Patch ids (workflow.patched): histories recorded before a change replay the old branch.
WAIT_FOR_MODEL_SERVER = "wait-for-model-server"
CHECK_RELEVANCE = "check-relevance"
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
        timings = inp.timings
        attempts = max(1, timings.max_generation_attempts)
        draft: ContentDraft | None = None
        check: ComplianceResult | None = None
        for attempt in range(1, attempts + 1):
            generation = GenerationRequest(
                campaign_id=inp.campaign_id,
                entry=inp.entry,
                brief=inp.brief,
                plan=inp.plan,
                max_tokens=timings.generation_max_tokens,
                temperature=timings.generation_temperature,
                attempt=attempt,
            )
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
