"""Live status in: operators push it (PushEvseStatus), pulls from the CLM will store it the
same way. Each accepted change is published on EvseStatusChanged in the same transaction, so
subscribers hear of exactly the changes that were committed (domain/pubsub.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from domain.charging.master_data import ApplyOutcome, Reason, RecordResult
from domain.charging.model import EvseStatus
from domain.identifiers import EvseId, InvalidIdentifier, OperatorId
from domain.pubsub import EvseStatusChanged, Topic, operator_of, publish_all

if TYPE_CHECKING:
    from domain.ports import UnitOfWork

#: OICP PullEvseStatusById caps a lookup at 100 IDs; gembus applies the same cap.
MAX_STATUS_LOOKUP = 100


@dataclass(frozen=True)
class StatusUpdate:
    evse_wire: str
    status: EvseStatus


def apply_statuses(
    uow: UnitOfWork,
    operator: OperatorId,
    updates: Sequence[StatusUpdate],
    now: datetime,
) -> ApplyOutcome:
    """Store each acceptable status (last write wins), reject the rest with a reason."""
    parsed = [(u, _parse(u.evse_wire)) for u in updates]
    known = uow.evses.statuses([e.key for _, e in parsed if e is not None])
    outcome, changes, seen = ApplyOutcome(), dict[str, tuple[EvseId, EvseStatus]](), set[str]()
    for update, evse in parsed:
        result = _decide(update, evse, operator, known, seen, now)
        outcome.results.append(result)
        if result.accepted and evse is not None:
            changes[evse.key] = (evse, update.status)
    uow.evses.set_statuses([(key, status) for key, (_, status) in changes.items()], now)
    events = (
        EvseStatusChanged(evse, operator_of(evse), s.major.value, s.minor, s.ttl)
        for key, (evse, s) in changes.items()
        if known.get(key) != s
    )
    publish_all(uow, Topic.EVSE_STATUS_CHANGED, events, now)
    return outcome


def _decide(
    update: StatusUpdate,
    evse: EvseId | None,
    operator: OperatorId,
    known: dict[str, EvseStatus | None],
    seen: set[str],
    now: datetime,
) -> RecordResult:
    wire, status = update.evse_wire, update.status
    if evse is None:
        return RecordResult(wire, Reason.INVALID_IDENTIFIER, "evseId", "not a valid EVSE ID")
    if evse.operator_key != operator.key:
        return RecordResult(
            wire, Reason.EVSE_INCONSISTENT, "evseId", f"not an EVSE of {operator.wire}"
        )
    if evse.key in seen:
        return RecordResult(wire, Reason.DUPLICATE_IN_BATCH, "evseId", "already in this request")
    if evse.key not in known:
        return RecordResult(wire, Reason.UNKNOWN_EVSE, "evseId", "no such EVSE; upload it first")
    if not status.valid_pair:
        return RecordResult(
            wire,
            Reason.INVALID_STATUS_PAIR,
            "minor",
            f"{status.major.value}/{status.minor} is not a valid pair",
        )
    if status.ttl is not None and status.ttl <= now:
        return RecordResult(wire, Reason.EXPIRED_TTL, "ttl", "the ttl lies in the past")
    seen.add(evse.key)
    return RecordResult(wire)


def _parse(wire: str) -> EvseId | None:
    try:
        return EvseId.parse(wire)
    except InvalidIdentifier:
        return None
