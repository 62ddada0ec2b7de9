"""Opening hours and the static-status schedule, evaluated at a moment (OCHP HoursType).

Evaluated in Python at read time: "open now" depends on the EVSE's time zone, weekday and
exceptional periods, which no index can hold. Search applies it after SQL has narrowed the
candidates with everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.charging.model import EvseRecord, OpeningTimes, Period, ScheduledStatus

#: Static statuses under which nobody can charge, whatever the opening hours say.
_SHUT = frozenset({"Inoperative", "Closed", "Planned"})


def _covers(period: Period, at: datetime) -> bool:
    return period.start <= at and (period.end is None or at < period.end)


def effective_static_status(
    static_status: str, schedule: tuple[ScheduledStatus, ...], at: datetime
) -> str:
    """The staticStatus, unless a statusSchedule entry covering ``at`` overrides it."""
    for entry in schedule:
        if _covers(entry.period, at):
            return entry.static_status
    return static_status


def _local(time_zone: str | None, at: datetime) -> datetime:
    """``at`` in the EVSE's time zone; UTC when the operator sent none (or an unknown one)."""
    try:
        zone = ZoneInfo(time_zone) if time_zone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return at.astimezone(zone)


def is_open(record: EvseRecord, at: datetime) -> bool:
    return is_open_at(
        record.opening, record.schedule, record.static_status, record.address.time_zone, at
    )


def is_open_at(
    hours: OpeningTimes | None,
    schedule: tuple[ScheduledStatus, ...],
    static_status: str,
    time_zone: str | None,
    at: datetime,
) -> bool:
    """Open at ``at``: closings beat openings beat regular hours; no hours means never."""
    if hours is None or effective_static_status(static_status, schedule, at) in _SHUT:
        return False
    if any(_covers(p, at) for p in hours.exceptional_closings):
        return False
    if any(_covers(p, at) for p in hours.exceptional_openings) or hours.twentyfourseven:
        return True
    local = _local(time_zone, at)
    now = local.time()
    return any(
        day == local.isoweekday() and begin <= now and (now < end or end == time.max)
        for day, begin, end in hours.regular
    )
