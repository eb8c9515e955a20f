"""Contact import activities (orchestration queue: PostgreSQL work).

stage: the upload -> one staged row per CSV record; process a chunk: clean its rows into
``contacts`` / ``companies`` and the quarantine; reprocess a chunk: run its quarantined rows
through the current rules; finish: the import's final status and counts.

Each chunk is one transaction keyed by (import, pass, chunk) in ``contact_import_chunks``: an
attempt retried after a crash either finds nothing written (and does the work) or finds the chunk
recorded (and returns its counts), never inserting or counting twice.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_error
from agency.cleaning.contracts import (
    ChunkRequest,
    ChunkResult,
    ContactImportActivity,
    ContactImportInput,
    FinishRequest,
    ImportTotals,
    StageResult,
)
from agency.cleaning.csvfile import CsvError
from agency.db.contact_imports import ContactImportRepository, ImportNotFound


class ContactImportActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=ContactImportActivity.STAGE)
    async def stage_contact_import(self, inp: ContactImportInput) -> StageResult:
        """Pass 0: stage the upload's rows (all chunks). Pass n: the chunks with quarantined rows."""
        async with self._sessions() as session, session.begin():
            repo = ContactImportRepository(session)
            try:
                if inp.pass_number == 0:
                    return await repo.stage(uuid.UUID(inp.import_id), inp.chunk_rows)
                return await repo.quarantined_chunks(uuid.UUID(inp.import_id), inp.chunk_rows)
            except (ImportNotFound, CsvError) as err:
                raise business_error(err) from err

    @activity.defn(name=ContactImportActivity.PROCESS_CHUNK)
    async def process_contact_import_chunk(self, req: ChunkRequest) -> ChunkResult:
        async with self._sessions() as session, session.begin():
            try:
                return await ContactImportRepository(session).process_chunk(req)
            except ImportNotFound as err:
                raise business_error(err) from err

    @activity.defn(name=ContactImportActivity.REPROCESS_CHUNK)
    async def reprocess_contact_import_chunk(self, req: ChunkRequest) -> ChunkResult:
        async with self._sessions() as session, session.begin():
            try:
                return await ContactImportRepository(session).reprocess_chunk(req)
            except ImportNotFound as err:
                raise business_error(err) from err

    @activity.defn(name=ContactImportActivity.FINISH)
    async def finish_contact_import(self, req: FinishRequest) -> ImportTotals:
        async with self._sessions() as session, session.begin():
            try:
                return await ContactImportRepository(session).finish(
                    uuid.UUID(req.import_id), failed=req.failed, error=req.error
                )
            except ImportNotFound as err:
                raise business_error(err) from err

    def all(self) -> list:
        return [
            self.stage_contact_import,
            self.process_contact_import_chunk,
            self.reprocess_contact_import_chunk,
            self.finish_contact_import,
        ]
