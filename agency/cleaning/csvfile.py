"""Uploaded CSV bytes -> header and rows (UTF-8, with or without BOM; comma, semicolon or tab)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from agency.cleaning.schema import EXTRA_CELLS_KEY

DELIMITERS = ",;\t"


class CsvError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # Guessing another encoding would store mojibake names; the uploader can re-export as UTF-8.
        raise CsvError("encoding_invalid", f"the file is not UTF-8 (byte {err.start}); export it as UTF-8") from None
    if "\x00" in text:
        # PostgreSQL cannot store NUL in text or JSONB; a file with NULs is not a text export anyway.
        raise CsvError("csv_invalid", "the file contains NUL characters; is it a spreadsheet, not CSV?")
    return text


def _delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    return max(DELIMITERS, key=first_line.count)


def _reader(text: str) -> csv.reader:
    return csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=False)


def header(text: str) -> list[str]:
    """The first record's cells (names made unique by the caller's checks)."""
    try:
        first = next(_reader(text), None)
    except csv.Error as err:
        raise CsvError("csv_invalid", f"the header row is not valid CSV: {err}") from None
    if not first or not any(cell.strip() for cell in first):
        raise CsvError("empty_file", "the file has no header row")
    return [cell.strip() or f"column_{i + 1}" for i, cell in enumerate(first)]


def rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, header -> cell) for every data record; blank lines are not records.

    Row numbers count data records from 1. A short row's missing cells are None; cells beyond the
    header go under EXTRA_CELLS_KEY (a quarantine reason, not a silent drop).
    """
    reader = _reader(text)
    names = header(text)
    next(reader)
    number = 0
    while True:
        try:
            record = next(reader, None)
        except csv.Error as err:
            raise CsvError("csv_invalid", f"data row {number + 1} is not valid CSV: {err}") from None
        if record is None:
            return
        if not record:
            continue
        number += 1
        cells: dict[str, Any] = {name: (record[i] if i < len(record) else None) for i, name in enumerate(names)}
        if len(record) > len(names):
            cells[EXTRA_CELLS_KEY] = record[len(names):]
        yield number, cells
