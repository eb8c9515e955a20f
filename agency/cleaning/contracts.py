"""Payloads of the contact import workflow and its activities: ids and counts, never rows.

Workflows import this module: no I/O, JSON-friendly fields only.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTACT_IMPORT_WORKFLOW = "ContactImportWorkflow"
DEFAULT_CHUNK_ROWS = 1000


class ContactImportActivity:
    """Activity names (orchestration queue: all of them are PostgreSQL work)."""

    STAGE = "stage_contact_import"
    PROCESS_CHUNK = "process_contact_import_chunk"
    REPROCESS_CHUNK = "reprocess_contact_import_chunk"
    FINISH = "finish_contact_import"


@dataclass
class ContactImportInput:
    import_id: str
    pass_number: int = 0  # 0 = the import itself; n > 0 = the n-th re-processing of its quarantine
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    activity_timeout_s: float = 120.0


@dataclass
class Counts:
    rows: int = 0
    clean: int = 0
    merged: int = 0
    quarantined: int = 0  # for a re-processing pass: rows that stay quarantined

    def add(self, other: Counts) -> None:
        self.rows += other.rows
        self.clean += other.clean
        self.merged += other.merged
        self.quarantined += other.quarantined


@dataclass
class StageResult:
    rows_total: int
    chunks: list[int]  # chunk indexes this pass has work in (row r is in chunk (r - 1) // chunk_rows)


@dataclass
class ChunkRequest:
    import_id: str
    pass_number: int
    chunk: int
    chunk_rows: int


@dataclass
class ChunkResult:
    chunk: int
    counts: Counts
    already_done: bool = False  # a retry found the chunk finished: nothing written, counts as recorded


@dataclass
class FinishRequest:
    import_id: str
    failed: bool = False
    error: str = ""


@dataclass
class ImportTotals:
    """The import's counts after a pass (clean + merged + quarantined = rows_total)."""

    import_id: str
    status: str
    rows_total: int
    clean: int
    merged: int
    quarantined: int


@dataclass
class ImportProgress:
    """The workflow's ``progress`` query."""

    pass_number: int
    rows_total: int
    rows_done: int  # rows this pass has been through
    chunks_done: int
    chunks_total: int
    counts: Counts  # of this pass
    finished: bool = False
