"""Rate-limit token buckets shared by every API replica.

One row per bucket key (``tenant:<id>``, ``identity:<id>``, ``login:ip:<addr>``...). The
arithmetic lives in agency.security.rate_limit, which updates a row in one atomic statement
using the database clock, so replicas never trust their own clocks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Double, Text
from sqlalchemy.orm import Mapped, mapped_column

from agency.db.models import Base


class RateLimitBucket(Base):
    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    # Tokens left at ``updated_at``; the refill since then is computed on the next take.
    tokens: Mapped[float] = mapped_column(Double, nullable=False)
    # Indexed for purge_idle, which deletes buckets untouched for a while.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
