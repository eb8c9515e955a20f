"""ContactImportWorkflow: one pass over an import (pass 0: the upload; pass n: its quarantine).

stage (or find the chunks with quarantined rows) -> each chunk in row order, one activity each
(later rows merge into contacts earlier chunks created, so chunks run one after another) ->
finish. Rows never enter the history: payloads are ids and counts. ``progress`` answers how far
the pass is.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from agency.cleaning.contracts import (
    CONTACT_IMPORT_WORKFLOW,
    ChunkRequest,
    ChunkResult,
    ContactImportActivity,
    ContactImportInput,
    Counts,
    FinishRequest,
    ImportProgress,
    ImportTotals,
    StageResult,
)
from workflows.activity_options import DEFAULT_RETRY


@workflow.defn(name=CONTACT_IMPORT_WORKFLOW)
class ContactImportWorkflow:
    def __init__(self) -> None:
        self._progress = ImportProgress(pass_number=0, rows_total=0, rows_done=0, chunks_done=0, chunks_total=0,
                                        counts=Counts())

    @workflow.query
    def progress(self) -> ImportProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: ContactImportInput) -> ImportTotals:
        options = {"start_to_close_timeout": timedelta(seconds=inp.activity_timeout_s), "retry_policy": DEFAULT_RETRY}
        self._progress.pass_number = inp.pass_number
        try:
            staged = await workflow.execute_activity(
                ContactImportActivity.STAGE, inp, result_type=StageResult, **options
            )
            self._progress.rows_total = staged.rows_total
            self._progress.chunks_total = len(staged.chunks)
            activity = ContactImportActivity.PROCESS_CHUNK if inp.pass_number == 0 else ContactImportActivity.REPROCESS_CHUNK
            for chunk in staged.chunks:
                done = await workflow.execute_activity(
                    activity, ChunkRequest(import_id=inp.import_id, pass_number=inp.pass_number, chunk=chunk,
                                           chunk_rows=inp.chunk_rows),
                    result_type=ChunkResult, **options,
                )
                self._progress.counts.add(done.counts)
                self._progress.rows_done += done.counts.rows
                self._progress.chunks_done += 1
        except ActivityError as err:
            cause = err.cause or err
            await workflow.execute_activity(
                ContactImportActivity.FINISH, FinishRequest(import_id=inp.import_id, failed=True, error=str(cause)),
                result_type=ImportTotals, **options,
            )
            raise
        totals = await workflow.execute_activity(
            ContactImportActivity.FINISH, FinishRequest(import_id=inp.import_id), result_type=ImportTotals, **options
        )
        self._progress.finished = True
        return totals
