"""Identity tables: service identities, signing keys, refresh-token families, API keys."""

from __future__ import annotations

from agency.db.models import Base  # noqa: F401
