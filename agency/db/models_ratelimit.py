"""Rate-limit token buckets shared by every API replica."""

from __future__ import annotations

from agency.db.models import Base  # noqa: F401
