"""Dataclass <-> JSON-compatible dict, with the same rules as Temporal's data converter."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from temporalio.converter import value_to_type

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """A contract dataclass as a plain dict (for JSONB columns and API bodies)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def from_json(cls: type[T], data: Any) -> T:
    return value_to_type(cls, data)
