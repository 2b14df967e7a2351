"""Timestamps as the API returns them: always in UTC with the offset written out.

The database stores UTC; SQLite hands ``DateTime(timezone=True)`` columns back without their
zone, PostgreSQL with it. Responses declare their times ``UtcDatetime`` so both read the same
(``2026-12-07T21:44:27.967000Z``), never a bare local-looking time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already (how it was stored)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
