"""ContentPipelineWorkflow: one calendar entry -> generated, checked, stored draft."""

from __future__ import annotations

from temporalio import workflow

from agency.contracts import (
    ActivityName,
    ApprovalState,
    ComplianceRequest,
    ComplianceResult,
    ContentDraft,
    ContentPipelineInput,
    ContentPipelineResult,
    GenerationRequest,
    SaveContentRequest,
    SavedContent,
    WorkflowName,
)
from workflows import activity_options


@workflow.defn(name=WorkflowName.CONTENT_PIPELINE)
class ContentPipelineWorkflow:
    """Generate with the model in Triton, check compliance, regenerate on a blocking finding.

    Every attempt is stored as a version, so reviewers can see what the model produced and why
    a draft was rejected by the checks. A draft that never passes is stored as blocked and is
    never offered for approval.
    """

    @workflow.run
    async def run(self, inp: ContentPipelineInput) -> ContentPipelineResult:
        timings = inp.timings
        attempts = max(1, timings.max_generation_attempts)
        draft: ContentDraft | None = None
        check: ComplianceResult | None = None
        for attempt in range(1, attempts + 1):
            draft = await workflow.execute_activity(
                ActivityName.GENERATE_CONTENT,
                GenerationRequest(
                    campaign_id=inp.campaign_id,
                    entry=inp.entry,
                    brief=inp.brief,
                    plan=inp.plan,
                    max_tokens=timings.generation_max_tokens,
                    temperature=timings.generation_temperature,
                    attempt=attempt,
                ),
                task_queue=inp.queues.inference,
                result_type=ContentDraft,
                **activity_options.generation(timings),
            )
            check = await workflow.execute_activity(
                ActivityName.CHECK_COMPLIANCE,
                ComplianceRequest(draft=draft, key_claims=inp.brief.key_claims),
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
