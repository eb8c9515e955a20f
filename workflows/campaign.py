"""CampaignWorkflow: the main job, from brief to report.

plan -> budget -> calendar -> content (child workflow per item) -> human approval (with
reminder, escalation and expiry) -> publish approved items -> measure -> report.
State is queryable at every step; pause/resume are signals; cancel is Temporal cancellation.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import date, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, is_cancelled_exception

from agency.contracts import (
    ActivityName,
    AllocationChangeDecision,
    ChannelBudget,
    ExperimentOutcome,
    ExperimentRound,
    ExperimentSetup,
    ExperimentStatus,
    ItemBudgetsRequest,
    ItemBudgetsResult,
    MarketAssessment,
    MarketRequest,
    ReallocationDecision,
    ReallocationOutcome,
    ReallocationProposal,
    ReallocationRequest,
    StartExperimentsRequest,
    ApprovalState,
    BrandProfile,
    BudgetAllocation,
    CalendarEntry,
    ComplianceRequest,
    ComplianceResult,
    ContentDraft,
    MessageBrief,
    SaveContentRequest,
    SavedContent,
    StrategyInputs,
    BudgetRequest,
    CalendarRequest,
    CampaignHandler,
    CampaignHistory,
    CampaignInput,
    CampaignPhase,
    CampaignPlan,
    CampaignResult,
    CampaignStatus,
    ContentCalendar,
    ContentPipelineInput,
    ContentPipelineResult,
    FinishCampaignRequest,
    ItemStatus,
    MetricsRequest,
    MetricsSnapshot,
    ModelServerState,
    PlanRequest,
    PublishedRecord,
    PublishedRef,
    PublishRequest,
    PublishResult,
    RegisterCampaignRequest,
    ReportRequest,
    ReportResult,
    ReviewDecision,
    ReviewErrorType,
    ReviewerNotice,
    ReviewOutcome,
    ReviewRecord,
    StepRecord,
    WorkflowName,
)
from workflows import activity_options
from workflows.content_pipeline import ContentPipelineWorkflow

# Patch ids (workflow.patched): histories recorded before a change replay the old branch.
RECORD_OUTCOME_OF_WRAPPED_ERRORS = "record-outcome-of-wrapped-errors"
# Plan and budget from the tenant's fitted market model (recovery-gated) instead of priors only.
MARKET_MODEL = "market-model"
# While measuring: evaluate A/B tests / bandits and propose budget reallocations each round.
STEER_WHILE_MEASURING = "steer-while-measuring"
# Brand profile, strategy calendar (topics, per-network formats, message briefs), ranked candidates
# generated with bounded concurrency, edit-then-approve, regeneration from a rejection reason, and
# the performance analysis that feeds the next campaign's strategy.
CONTENT_AGENTS = "content-agents"

REALLOCATION_PENDING = "pending"
REALLOCATION_APPLIED = "applied"
DRAFTING = "drafting"  # an item whose draft is being written (first or after a rejection)


def root_cause_message(err: BaseException) -> str:
    """The innermost failure's message ("Activity task failed" says nothing to a person)."""
    while isinstance(err, FailureError) and err.cause is not None:
        err = err.cause
    return err.message if isinstance(err, FailureError) else str(err)


@workflow.defn(name=WorkflowName.CAMPAIGN)
class CampaignWorkflow:
    def __init__(self) -> None:
        self._campaign_id = ""
        self._phase = CampaignPhase.PLANNING.value
        self._completed: list[str] = []
        self._paused = False
        self._items: dict[str, ItemStatus] = {}
        self._drafts: dict[str, ContentPipelineResult] = {}
        self._reminders = 0
        self._escalated = False
        self._metrics_rounds = 0
        self._error = ""
        # Content items waiting for the model server, with the reason their pipeline reported.
        self._waiting_for_model: dict[str, str] = {}
        # Experiments started while measuring, and the latest judgement of each (status derives from both).
        self._experiments: list[ExperimentSetup] = []
        self._experiment_outcomes: dict[str, ExperimentOutcome] = {}
        self._pending_reallocation: ReallocationProposal | None = None
        self._reallocation_decision: ReallocationDecision | None = None
        self._content_agents = False
        self._brand: BrandProfile | None = None
        self._entries: dict[str, CalendarEntry] = {}
        self._messages: dict[str, MessageBrief] = {}
        # Items a reviewer rejected with a reason, waiting to be regenerated (item id, reason).
        self._regeneration_queue: list[tuple[str, str]] = []
        self._regenerations: dict[str, int] = {}

    # ---- queries, signals, updates ---------------------------------------------------
    @workflow.query(name=CampaignHandler.STATUS)
    def status(self) -> CampaignStatus:
        return CampaignStatus(
            campaign_id=self._campaign_id,
            phase=self._phase,
            paused=self._paused,
            completed_phases=list(self._completed),
            items=list(self._items.values()),
            reminders_sent=self._reminders,
            escalated=self._escalated,
            metrics_rounds_done=self._metrics_rounds,
            error=self._error,
            degraded=bool(self._waiting_for_model),
            degraded_reason=(
                f"model server unavailable; {len(self._waiting_for_model)} content item(s) waiting: "
                + next(iter(self._waiting_for_model.values()))
                if self._waiting_for_model
                else ""
            ),
            experiments=[self._experiment_status(e) for e in self._experiments],
            pending_reallocation=self._pending_reallocation,
        )

    @workflow.signal(name=CampaignHandler.PAUSE)
    def pause(self) -> None:
        self._paused = True

    @workflow.signal(name=CampaignHandler.RESUME)
    def resume(self) -> None:
        self._paused = False

    @workflow.signal(name=CampaignHandler.MODEL_SERVER_STATE)
    def model_server_state(self, state: ModelServerState) -> None:
        if state.available:
            self._waiting_for_model.pop(state.item_id, None)
        else:
            self._waiting_for_model[state.item_id] = state.reason or "model server unavailable"

    @workflow.update(name=CampaignHandler.DECIDE_REALLOCATION)
    async def decide_reallocation(self, decision: ReallocationDecision) -> ReallocationOutcome:
        # The measuring loop records the decision and applies it; this only hands it over.
        self._reallocation_decision = decision
        return ReallocationOutcome(round=decision.round, status="approved" if decision.approve else "rejected")

    @decide_reallocation.validator
    def _validate_reallocation(self, decision: ReallocationDecision) -> None:
        pending = self._pending_reallocation
        if pending is None or pending.round != decision.round or self._reallocation_decision is not None:
            raise ApplicationError(
                f"no reallocation for round {decision.round} is waiting for a decision",
                type=ReviewErrorType.NO_PENDING_REALLOCATION,
            )
        if not decision.reviewer.strip():
            raise ApplicationError("reviewer is required", type=ReviewErrorType.INVALID)

    @workflow.update(name=CampaignHandler.REVIEW)
    async def review(self, decision: ReviewDecision) -> ReviewOutcome:
        item = self._items[decision.item_id]
        if decision.edited_body is not None:
            await self._approve_edit(item, decision)
            return ReviewOutcome(
                item_id=item.item_id, approval_state=item.approval_state, remaining_pending=self._pending_count()
            )
        state = ApprovalState.APPROVED if decision.approve else ApprovalState.REJECTED
        # Record first: the decision is durable in PostgreSQL before the workflow acts on it.
        await workflow.execute_activity(
            ActivityName.RECORD_REVIEW,
            ReviewRecord(
                campaign_id=self._campaign_id,
                item_id=item.item_id,
                version=item.version,
                approval_state=state.value,
                reviewer=decision.reviewer,
                note=decision.note,
            ),
            task_queue=self._input.queues.orchestration,
            **activity_options.short(self._input.timings),
        )
        item.approval_state = state.value
        if (
            self._content_agents
            and not decision.approve
            and decision.note.strip()
            and self._regenerations.get(item.item_id, 0) < self._input.timings.review_regenerations
        ):
            # The reason becomes the next draft's brief; the item waits for it instead of closing.
            self._regenerations[item.item_id] = self._regenerations.get(item.item_id, 0) + 1
            self._regeneration_queue.append((item.item_id, decision.note.strip()))
            item.approval_state = DRAFTING
        return ReviewOutcome(
            item_id=item.item_id, approval_state=item.approval_state, remaining_pending=self._pending_count()
        )

    async def _approve_edit(self, item: ItemStatus, decision: ReviewDecision) -> None:
        """A reviewer's own copy: checked like any draft, stored as a new version, approved."""
        previous = self._drafts[item.item_id]
        entry = self._entries.get(item.item_id)
        message = self._messages.get(entry.message_id) if entry is not None else None
        draft = ContentDraft(
            item_id=item.item_id,
            campaign_id=self._campaign_id,
            channel=item.channel,
            format=item.format,
            title=previous.title if decision.edited_title is None else decision.edited_title,
            body=decision.edited_body or "",
            model=f"reviewer:{decision.reviewer}",
            prompt_tokens=0,
            completion_tokens=0,
            attempt=item.version + 1,
            parts=previous.parts,
        )
        check = await self._activity(
            ActivityName.CHECK_COMPLIANCE,
            ComplianceRequest(
                draft=draft, key_claims=self._input.brief.key_claims, brand=self._brand, message=message,
                product=self._input.brief.product,
            ),
            result_type=ComplianceResult,
        )
        if not check.passed:
            blocking = [f for f in check.findings if f.severity == "block"]
            raise ApplicationError(
                "the edited copy fails the checks: " + "; ".join(f"{f.rule}: {f.message}" for f in blocking),
                [{"rule": f.rule, "message": f.message, "excerpt": f.excerpt} for f in blocking],
                type=ReviewErrorType.EDITED_COPY_BLOCKED,
                non_retryable=True,
            )
        saved = await self._activity(
            ActivityName.SAVE_CONTENT,
            SaveContentRequest(
                draft=draft,
                compliance=check,
                approval_state=ApprovalState.PENDING.value,
                publish_on=entry.publish_on if entry is not None else self._input.brief.start_date,
                generation={
                    "edited_by": decision.reviewer,
                    "edited_from_version": item.version,
                    "entry": asdict(entry) if entry is not None else None,
                    "message": asdict(message) if message is not None else None,
                    "message_id": message.message_id if message is not None else "",
                },
            ),
            result_type=SavedContent,
        )
        await self._activity(
            ActivityName.RECORD_REVIEW,
            ReviewRecord(
                campaign_id=self._campaign_id,
                item_id=item.item_id,
                version=saved.version,
                approval_state=ApprovalState.APPROVED.value,
                reviewer=decision.reviewer,
                note=decision.note or "edited by the reviewer",
            ),
        )
        self._drafts[item.item_id] = ContentPipelineResult(
            item_id=item.item_id, channel=item.channel, format=item.format, version=saved.version,
            approval_state=ApprovalState.APPROVED.value, title=check.sanitized_title, body=check.sanitized_body,
            attempts=previous.attempts, findings=check.findings, parts=previous.parts,
        )
        item.version = saved.version
        item.approval_state = ApprovalState.APPROVED.value

    @review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        item = self._items.get(decision.item_id)
        if item is None:
            raise ApplicationError(f"no content item {decision.item_id!r}", type=ReviewErrorType.UNKNOWN_ITEM)
        if item.approval_state != ApprovalState.PENDING.value or self._phase != CampaignPhase.AWAITING_APPROVAL.value:
            raise ApplicationError(
                f"content item {decision.item_id!r} is {item.approval_state}, not pending approval",
                type=ReviewErrorType.NOT_PENDING,
            )
        if not decision.reviewer.strip():
            raise ApplicationError("reviewer is required", type=ReviewErrorType.INVALID)
        if decision.edited_body is not None and not decision.edited_body.strip():
            raise ApplicationError("edited copy must not be empty", type=ReviewErrorType.INVALID)
        if decision.edited_body is not None and not decision.approve:
            raise ApplicationError("an edit approves the edited copy; approve must be true", type=ReviewErrorType.INVALID)

    # ---- the job ---------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignResult:
        self._input = inp
        self._campaign_id = inp.campaign_id
        try:
            return await self._run(inp)
        except asyncio.CancelledError:
            # Cancellation is a request: record it durably, then let Temporal mark it cancelled.
            await self._finish_despite_cancellation(CampaignPhase.CANCELLED, "cancelled by request")
            raise
        except FailureError as err:
            # A cancel that lands while an activity or child runs arrives wrapped in its error;
            # a business failure arrives as an activity/child error with an ApplicationError cause.
            if not workflow.patched(RECORD_OUTCOME_OF_WRAPPED_ERRORS) and not isinstance(err, ApplicationError):
                raise
            if is_cancelled_exception(err):
                await self._finish_despite_cancellation(CampaignPhase.CANCELLED, "cancelled by request")
                raise
            self._error = root_cause_message(err)
            await self._finish(CampaignPhase.FAILED, self._error)
            raise

    async def _run(self, inp: CampaignInput) -> CampaignResult:
        await self._activity(
            ActivityName.REGISTER_CAMPAIGN,
            RegisterCampaignRequest(
                campaign_id=inp.campaign_id, brief=inp.brief, workflow_id=workflow.info().workflow_id
            ),
        )
        if workflow.patched(CONTENT_AGENTS):
            self._content_agents = True
            self._brand = await self._activity(
                ActivityName.LOAD_BRAND_PROFILE, inp.campaign_id, result_type=BrandProfile | None
            )

        await self._enter(CampaignPhase.PLANNING)
        history = await self._activity(
            ActivityName.LOAD_CAMPAIGN_HISTORY, inp.campaign_id, result_type=CampaignHistory
        )
        market: MarketAssessment | None = None
        if workflow.patched(MARKET_MODEL):
            market = await workflow.execute_activity(
                ActivityName.FIT_MARKET_MODEL,
                self._market_request(inp),
                task_queue=inp.queues.orchestration,
                result_type=MarketAssessment,
                **activity_options.compute(inp.timings),
            )
        plan = await self._activity(
            ActivityName.PLAN_CAMPAIGN,
            PlanRequest(campaign_id=inp.campaign_id, brief=inp.brief, history=history, market=market),
            result_type=CampaignPlan,
        )
        self._plan = plan

        await self._enter(CampaignPhase.BUDGETING)
        budget = await self._activity(
            ActivityName.ALLOCATE_BUDGET,
            BudgetRequest(
                campaign_id=inp.campaign_id,
                total_budget_cents=inp.brief.total_budget_cents,
                plan=plan,
                fit_id=market.fit_id if market is not None else "",
            ),
            result_type=BudgetAllocation,
        )

        await self._enter(CampaignPhase.SCHEDULING)
        if self._content_agents:
            inputs = await self._activity(
                ActivityName.LOAD_CONTENT_STRATEGY_INPUTS, inp.campaign_id, result_type=StrategyInputs
            )
            calendar = await self._activity(
                ActivityName.BUILD_CONTENT_CALENDAR,
                CalendarRequest(
                    campaign_id=inp.campaign_id, brief=inp.brief, plan=plan,
                    trends=inputs.trends, recommendations=inputs.recommendations,
                ),
                result_type=ContentCalendar,
            )
        else:
            calendar = await self._activity(
                ActivityName.BUILD_CALENDAR,
                CalendarRequest(campaign_id=inp.campaign_id, brief=inp.brief, plan=plan),
                result_type=ContentCalendar,
            )
        self._messages = {m.message_id: m for m in calendar.messages}
        for entry in calendar.entries:
            self._entries[entry.item_id] = entry
            self._items[entry.item_id] = ItemStatus(
                item_id=entry.item_id, channel=entry.channel, format=entry.format, approval_state=DRAFTING
            )

        await self._enter(CampaignPhase.GENERATING)
        if self._content_agents:
            results = await self._generate_bounded(inp, plan, calendar.entries)
        else:
            results = await self._generate_all(inp, plan, calendar.entries)
        for result in results:
            self._record_draft(result)

        await self._enter(CampaignPhase.AWAITING_APPROVAL)
        await self._await_approvals(inp)
        return await self._publish_measure_report(inp, budget)

    async def _generate_all(
        self, inp: CampaignInput, plan: CampaignPlan, entries: list[CalendarEntry]
    ) -> list[ContentPipelineResult]:
        """Before content agents: every item's pipeline at once."""
        return list(await asyncio.gather(
            *(self._run_pipeline(inp, plan, entry, feedback="", first_attempt=1) for entry in entries)
        ))

    async def _generate_bounded(
        self, inp: CampaignInput, plan: CampaignPlan, entries: list[CalendarEntry]
    ) -> list[ContentPipelineResult]:
        """One child pipeline per calendar entry, at most `content_concurrency` at a time (the
        model server is the bottleneck; a flood of children only queues on it)."""
        slots = asyncio.Semaphore(max(1, inp.timings.content_concurrency))

        async def one(entry: CalendarEntry) -> ContentPipelineResult:
            async with slots:
                return await self._run_pipeline(inp, plan, entry, feedback="", first_attempt=1)

        return list(await asyncio.gather(*(one(entry) for entry in entries)))

    async def _run_pipeline(
        self, inp: CampaignInput, plan: CampaignPlan, entry: CalendarEntry, *, feedback: str, first_attempt: int
    ) -> ContentPipelineResult:
        suffix = "" if first_attempt == 1 else f"/v{first_attempt}"
        return await workflow.execute_child_workflow(
            ContentPipelineWorkflow.run,
            ContentPipelineInput(
                campaign_id=inp.campaign_id,
                entry=entry,
                brief=inp.brief,
                plan=plan,
                timings=inp.timings,
                queues=inp.queues,
                message=self._messages.get(entry.message_id),
                brand=self._brand,
                variants=inp.timings.generation_variants,
                feedback=feedback,
                first_attempt=first_attempt,
            ),
            id=f"{workflow.info().workflow_id}/content/{entry.item_id}{suffix}",
            task_queue=inp.queues.orchestration,
        )

    def _record_draft(self, result: ContentPipelineResult) -> None:
        self._drafts[result.item_id] = result
        item = self._items[result.item_id]
        item.version = result.version
        item.approval_state = result.approval_state

    async def _publish_measure_report(self, inp: CampaignInput, budget: BudgetAllocation) -> CampaignResult:
        await self._enter(CampaignPhase.PUBLISHING)
        published = await self._publish_approved(inp, budget)

        await self._enter(CampaignPhase.MEASURING)
        steering = bool(published) and workflow.patched(STEER_WHILE_MEASURING)
        if steering:
            self._experiments = await self._activity(
                ActivityName.START_EXPERIMENTS,
                StartExperimentsRequest(campaign_id=inp.campaign_id, published=published, policy=inp.decisions),
                result_type=list[ExperimentSetup],
            )
        allocation = list(budget.channels)
        for round_no in range(1, inp.timings.metrics_rounds + 1):
            if not published:
                break
            await workflow.sleep(timedelta(seconds=inp.timings.metrics_interval_s))
            await self._wait_while_paused()
            snapshot = await self._activity(
                ActivityName.COLLECT_METRICS,
                MetricsRequest(
                    campaign_id=inp.campaign_id, round=round_no, published=published, tenant=inp.brief.tenant
                ),
                result_type=MetricsSnapshot,
                task_queue=inp.queues.integrations,
            )
            await self._activity(ActivityName.SAVE_METRICS, snapshot)
            self._metrics_rounds = round_no
            if steering:
                allocation = await self._steer(inp, round_no, snapshot, allocation, budget.fit_id)

        await self._enter(CampaignPhase.REPORTING)
        if self._content_agents and published:
            # What worked in this campaign (and the tenant's earlier ones) steers the next calendar.
            await workflow.execute_activity(
                ActivityName.ANALYZE_CONTENT_PERFORMANCE,
                inp.campaign_id,
                task_queue=inp.queues.orchestration,
                **activity_options.compute(inp.timings),
            )
        # Charts and a PDF take seconds: the compute limit, not the database one (timeouts are
        # not part of replay, so histories recorded with the shorter one still replay).
        report = await workflow.execute_activity(
            ActivityName.BUILD_REPORT,
            ReportRequest(
                campaign_id=inp.campaign_id,
                outcome=CampaignPhase.COMPLETED.value,
                items=list(self._items.values()),
            ),
            task_queue=inp.queues.orchestration,
            result_type=ReportResult,
            **activity_options.compute(inp.timings),
        )
        await self._finish(CampaignPhase.COMPLETED, "")
        states = [item.approval_state for item in self._items.values()]
        return CampaignResult(
            campaign_id=inp.campaign_id,
            outcome=CampaignPhase.COMPLETED.value,
            published=len(published),
            rejected=states.count(ApprovalState.REJECTED.value),
            expired=states.count(ApprovalState.EXPIRED.value),
            blocked=states.count(ApprovalState.BLOCKED.value),
            report_path=report.html_path,
        )

    # ---- steps -----------------------------------------------------------------------
    async def _await_approvals(self, inp: CampaignInput) -> None:
        """Wait for every pending item to be decided; remind once, then escalate and expire."""
        if not self._pending_count():
            return
        await self._notify("approval_requested")
        timings = inp.timings
        reminder_after = min(timings.approval_reminder_s, timings.approval_timeout_s)
        if not await self._wait_for_decisions(reminder_after):
            self._reminders += 1
            await self._notify("reminder")
            remaining = timings.approval_timeout_s - reminder_after
            if not await self._wait_for_decisions(remaining):
                # Nothing is published unapproved: what is still pending expires.
                self._escalated = True
                await self._notify("escalation")
                for item in self._items.values():
                    if item.approval_state == ApprovalState.PENDING.value:
                        await self._activity(
                            ActivityName.RECORD_REVIEW,
                            ReviewRecord(
                                campaign_id=inp.campaign_id,
                                item_id=item.item_id,
                                version=item.version,
                                approval_state=ApprovalState.EXPIRED.value,
                                reviewer="system",
                                note=f"no decision within {timings.approval_timeout_s:g}s",
                            ),
                        )
                        item.approval_state = ApprovalState.EXPIRED.value
                # A rejection whose redraft never started stays what the reviewer decided.
                for item_id, _ in self._regeneration_queue:
                    self._items[item_id].approval_state = ApprovalState.REJECTED.value
                self._regeneration_queue = []
        # Let in-flight review updates finish recording before moving on.
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _wait_for_decisions(self, seconds: float) -> bool:
        if seconds <= 0:
            return self._pending_count() == 0 and not self._regeneration_queue
        deadline = workflow.now() + timedelta(seconds=seconds)
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                await workflow.wait_condition(
                    lambda: self._pending_count() == 0 or bool(self._regeneration_queue), timeout=remaining
                )
            except asyncio.TimeoutError:
                return False
            if not self._regeneration_queue:
                return True
            await self._regenerate_rejected()

    async def _regenerate_rejected(self) -> None:
        """Redraft items rejected with a reason, the reason in the prompt; they come back pending."""
        inp = self._input
        queued, self._regeneration_queue = self._regeneration_queue, []
        results = await asyncio.gather(*(
            self._run_pipeline(
                inp, self._plan, self._entries[item_id],
                feedback=f"A reviewer rejected the previous draft: {reason}",
                first_attempt=self._items[item_id].version + 1,
            )
            for item_id, reason in queued
        ))
        for result in results:
            self._record_draft(result)
        await self._notify("approval_requested")

    async def _publish_approved(self, inp: CampaignInput, budget: BudgetAllocation) -> list[PublishedRef]:
        approved = [i for i in self._items.values() if i.approval_state == ApprovalState.APPROVED.value]
        per_channel = {c.channel: c.amount_cents for c in budget.channels}
        counts = {ch: sum(1 for i in approved if i.channel == ch) for ch in per_channel}
        published: list[PublishedRef] = []
        for item in approved:
            await self._wait_while_paused()
            draft = self._drafts[item.item_id]
            result = await self._activity(
                ActivityName.PUBLISH_CONTENT,
                PublishRequest(
                    campaign_id=inp.campaign_id,
                    item_id=item.item_id,
                    version=item.version,
                    channel=item.channel,
                    format=item.format,
                    title=draft.title,
                    body=draft.body,
                    budget_cents=per_channel.get(item.channel, 0) // max(1, counts.get(item.channel, 1)),
                    idempotency_key=f"{inp.campaign_id}:{item.item_id}:v{item.version}",
                    tenant=inp.brief.tenant,
                ),
                result_type=PublishResult,
                task_queue=inp.queues.integrations,
            )
            await self._activity(
                ActivityName.MARK_PUBLISHED,
                PublishedRecord(
                    campaign_id=inp.campaign_id, item_id=item.item_id, external_id=result.external_id
                ),
            )
            item.external_id = result.external_id
            published.append(
                PublishedRef(item_id=item.item_id, channel=item.channel, external_id=result.external_id)
            )
        return published

    def _market_request(self, inp: CampaignInput) -> MarketRequest:
        weeks = max(1, -(-self._duration_days(inp) // 7))
        return MarketRequest(
            campaign_id=inp.campaign_id,
            tenant=inp.brief.tenant,
            channels=list(inp.brief.channels),
            total_budget_cents=inp.brief.total_budget_cents,
            horizon_weeks=weeks,
            channel_limits=list(inp.brief.channel_limits),
            ramp_limit=inp.decisions.ramp_limit,
        )

    @staticmethod
    def _duration_days(inp: CampaignInput) -> int:
        start, end = date.fromisoformat(inp.brief.start_date), date.fromisoformat(inp.brief.end_date)
        return max(1, (end - start).days + 1)

    async def _steer(
        self,
        inp: CampaignInput,
        round_no: int,
        snapshot: MetricsSnapshot,
        allocation: list[ChannelBudget],
        fit_id: str,
    ) -> list[ChannelBudget]:
        """One steering round: judge the experiments, propose a new split, apply what holds."""
        outcomes = self._experiment_outcomes
        weights_changed = False
        for exp in self._experiments:
            previous = outcomes.get(exp.experiment_id)
            if previous is not None and previous.status != "running":
                continue  # decided: its winner keeps the channel's budget
            outcome = await self._activity(
                ActivityName.EVALUATE_EXPERIMENT,
                ExperimentRound(
                    campaign_id=inp.campaign_id,
                    experiment=exp,
                    snapshot=snapshot,
                    policy=inp.decisions,
                    state=dict(previous.state) if previous else {},
                    peeks=previous.peeks if previous else 0,
                ),
                result_type=ExperimentOutcome,
            )
            weights_changed = weights_changed or previous is None or outcome.weights != previous.weights
            outcomes[exp.experiment_id] = outcome

        new_allocation = allocation
        rounds_left = inp.timings.metrics_rounds - round_no
        if rounds_left > 0:
            proposal = await workflow.execute_activity(
                ActivityName.PROPOSE_REALLOCATION,
                ReallocationRequest(
                    campaign_id=inp.campaign_id, round=round_no, fit_id=fit_id, current=allocation,
                    snapshot=snapshot, policy=inp.decisions, rounds_left=rounds_left,
                ),
                task_queue=inp.queues.orchestration,
                result_type=ReallocationProposal,
                **activity_options.compute(inp.timings),
            )
            accepted = proposal.status == REALLOCATION_APPLIED
            if proposal.status == REALLOCATION_PENDING:
                accepted = await self._await_reallocation_decision(inp, proposal)
            if accepted:
                total = sum(proposal.after_cents.values())
                new_allocation = [
                    ChannelBudget(channel=c.channel, amount_cents=proposal.after_cents.get(c.channel, c.amount_cents),
                                  share=proposal.after_cents.get(c.channel, c.amount_cents) / total if total else 0.0)
                    for c in allocation
                ]

        if new_allocation != allocation or weights_changed:
            await self._activity(
                ActivityName.APPLY_ITEM_BUDGETS,
                ItemBudgetsRequest(
                    campaign_id=inp.campaign_id,
                    round=round_no,
                    channel_cents={c.channel: c.amount_cents for c in new_allocation},
                    arm_weights={
                        o.channel: dict(o.weights) for o in outcomes.values() if o.weights
                    },
                    snapshot=snapshot,
                    tenant=inp.brief.tenant,
                ),
                result_type=ItemBudgetsResult,
                task_queue=inp.queues.integrations,
            )
        return new_allocation

    async def _await_reallocation_decision(self, inp: CampaignInput, proposal: ReallocationProposal) -> bool:
        """A large move waits for a person; no answer in time keeps the current split."""
        self._pending_reallocation = proposal
        self._reallocation_decision = None
        try:
            await workflow.wait_condition(
                lambda: self._reallocation_decision is not None,
                timeout=inp.decisions.reallocation_decision_timeout_s,
            )
        except asyncio.TimeoutError:
            pass
        decision = self._reallocation_decision
        if decision is None:
            status, by, note = "expired", "system", (
                f"no decision within {inp.decisions.reallocation_decision_timeout_s:g}s; the split is unchanged"
            )
        else:
            status, by, note = ("approved" if decision.approve else "rejected"), decision.reviewer, decision.note
        await self._activity(
            ActivityName.DECIDE_ALLOCATION_CHANGE,
            AllocationChangeDecision(
                campaign_id=inp.campaign_id, round=proposal.round, status=status, decided_by=by, note=note
            ),
        )
        self._pending_reallocation = None
        self._reallocation_decision = None
        return status == "approved"

    # ---- helpers ---------------------------------------------------------------------
    def _experiment_status(self, exp: ExperimentSetup) -> ExperimentStatus:
        outcome = self._experiment_outcomes.get(exp.experiment_id)
        if outcome is None:
            return ExperimentStatus(
                experiment_id=exp.experiment_id, channel=exp.channel, status="running", winner=None,
                reason="waiting for the first metrics round",
            )
        return ExperimentStatus(
            experiment_id=exp.experiment_id, channel=exp.channel, status=outcome.status,
            winner=outcome.winner, reason=outcome.reason,
        )

    def _pending_count(self) -> int:
        return sum(1 for i in self._items.values() if i.approval_state == ApprovalState.PENDING.value)

    async def _wait_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._paused)

    async def _enter(self, phase: CampaignPhase) -> None:
        await self._wait_while_paused()
        if self._phase != phase.value and self._phase not in self._completed:
            self._completed.append(self._phase)
        self._phase = phase.value
        await self._activity(
            ActivityName.RECORD_STEP, StepRecord(campaign_id=self._campaign_id, phase=phase.value)
        )

    async def _notify(self, kind: str) -> None:
        pending = [i.item_id for i in self._items.values() if i.approval_state == ApprovalState.PENDING.value]
        await self._activity(
            ActivityName.NOTIFY_REVIEWERS,
            ReviewerNotice(campaign_id=self._campaign_id, kind=kind, pending_item_ids=pending),
        )

    async def _finish(self, outcome: CampaignPhase, detail: str) -> None:
        if self._phase not in self._completed:
            self._completed.append(self._phase)
        self._phase = outcome.value
        await self._activity(
            ActivityName.FINISH_CAMPAIGN,
            FinishCampaignRequest(campaign_id=self._campaign_id, outcome=outcome.value, detail=detail),
        )

    async def _finish_despite_cancellation(self, outcome: CampaignPhase, detail: str) -> None:
        """Record the outcome even if cancellation is requested again meanwhile (a second
        Cancel from the API or the Temporal UI would otherwise abort the record itself)."""
        recording = asyncio.ensure_future(self._finish(outcome, detail))
        while True:
            try:
                return await asyncio.shield(recording)
            except asyncio.CancelledError:
                if recording.done():
                    return recording.result()

    async def _activity(self, name: str, arg, *, result_type=None, task_queue: str | None = None):
        return await workflow.execute_activity(
            name,
            arg,
            task_queue=task_queue or self._input.queues.orchestration,
            result_type=result_type,
            **activity_options.short(self._input.timings),
        )
