"""EVSE master data in: operator uploads and CLM pulls, one set of rules for both.

``apply_records`` and ``apply_deletes`` are the ways master data changes, with two forms for
pulls (domain/charging/pull.py) that decide every record by the same rules: a full pull is a
:class:`FullLoad` fed page by page in one transaction, a delta's inserted and updated records
go through ``apply_changes`` and its deletions through ``apply_deletes``. Every call first
takes the operator's row lock (``lock_operator``), so uploads and pulls of one operator are
applied one at a time, in arrival order (OICP 009 precedent).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import TYPE_CHECKING

from domain.charging.model import EvseRecord
from domain.identifiers import EvseId, InvalidIdentifier, OperatorId
from domain.partners import Partner, Role
from gembus.errors import ClientError, InvalidIdentifierError, NotAuthorizedError

if TYPE_CHECKING:
    from domain.ports import UnitOfWork


class Action(enum.StrEnum):
    """OICP ActionType."""

    FULL_LOAD = "fullLoad"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class Reason(enum.StrEnum):
    """evse:RecordRejectReasonType."""

    INVALID_IDENTIFIER = "InvalidIdentifier"
    EVSE_INCONSISTENT = "EvseInconsistent"
    UNKNOWN_EVSE = "UnknownEvse"
    DUPLICATE_EVSE = "DuplicateEvse"
    DUPLICATE_IN_BATCH = "DuplicateInBatch"
    MISSING_FIELD = "MissingField"
    INVALID_VALUE = "InvalidValue"
    STALE_RECORD = "StaleRecord"
    INVALID_STATUS_PAIR = "InvalidStatusPair"
    EXPIRED_TTL = "ExpiredTtl"


class CallerMismatchError(ClientError):
    """The operatorId of the request is not one of the caller's (OICP 017)."""

    fault_code = "Client.CallerMismatch"
    default_message = "the operator ID does not belong to the caller"


class InvalidActionPayloadError(ClientError):
    fault_code = "Client.InvalidActionPayload"
    default_message = "the payload does not fit the actionType"


class InvalidFullLoadPartError(ClientError):
    fault_code = "Client.InvalidFullLoadPart"
    default_message = "the full-load part is not acceptable"


@dataclass(frozen=True)
class Rejected:
    """A record that could not even be read into an EvseRecord (e.g. an unmappable ID)."""

    evse_wire: str
    reason: Reason
    field: str | None = None
    message: str | None = None


Item = EvseRecord | Rejected


@dataclass(frozen=True)
class RecordResult:
    evse_wire: str
    reason: Reason | None = None
    field: str | None = None
    message: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass
class ApplyOutcome:
    results: list[RecordResult] = field(default_factory=list)
    deleted_by_full_load: int | None = None

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.results)


def own_operator(actor: Partner, wire: str) -> OperatorId:
    """The request's operatorId, which must be one of the calling operator's IDs."""
    if not actor.has_role(Role.EVSE_OPERATOR):
        raise NotAuthorizedError("only EVSE operators send EVSE data", field="operatorId")
    try:
        operator = OperatorId.parse(wire)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(str(exc), field="operatorId") from exc
    if operator.key not in {o.key for o in actor.data.operator_ids}:
        raise CallerMismatchError(f"operator ID {wire} is not yours", field="operatorId")
    return operator


def check_record(record: EvseRecord, operator: OperatorId) -> RecordResult | None:
    """Rules XML Schema cannot state; None when the record is fine."""
    wire = record.evse_id.wire
    if record.evse_id.operator_key != operator.key or record.operator_id.key != operator.key:
        return RecordResult(
            wire, Reason.EVSE_INCONSISTENT, "evseId", f"{wire} is not an EVSE of {operator.wire}"
        )
    for i, f in enumerate(record.facilities, 1):
        if not f.battery_exchange and (f.power_type is None or f.power_kw is None):
            path = f"chargingFacilities/chargingFacility[{i}]/powerKw"
            return RecordResult(
                wire, Reason.MISSING_FIELD, path, "a charging facility needs powerType and powerKw"
            )
    if not record.battery_swap and not record.connectors and not record.plugs:
        return RecordResult(
            wire, Reason.MISSING_FIELD, "connectors", "a charging point needs connectors"
        )
    return _check_hours(record)


def _check_hours(record: EvseRecord) -> RecordResult | None:
    hours = record.opening
    for i, (_day, begin, end) in enumerate(hours.regular if hours else (), 1):
        if end != time.max and end <= begin:
            path = f"openingTimes/regularHours/regularHours[{i}]/periodEnd"
            return RecordResult(
                record.evse_id.wire,
                Reason.INVALID_VALUE,
                path,
                "periodEnd must be later than periodBegin",
            )
    return None


def apply_records(
    uow: UnitOfWork,
    operator: OperatorId,
    action: Action,
    items: Sequence[Item],
    now: datetime,
    source: str = "upload",
) -> ApplyOutcome:
    """Store the acceptable records of one operator; reject the rest, each with its reason.

    fullLoad also deletes the operator's stored EVSEs that are neither in the load nor
    rejected from it (a rejected record keeps its stored version), all in the caller's
    transaction, so readers see the old set or the new one, never a mix.
    """
    seen: set[str] = set()
    outcome = _store(uow, operator, action, items, now, source, seen)
    if action is Action.FULL_LOAD:
        outcome.deleted_by_full_load = uow.evses.delete_operator_except(operator.key, seen)
    return outcome


class FullLoad:
    """A full load that arrives in parts (the pages of a CLM's full pull), in one transaction.

    Each part is decided and stored as it comes, as :func:`apply_records` would decide a
    fullLoad (a record seen in an earlier part is a duplicate); :meth:`finish` then deletes the
    operator's EVSEs that no part held. Nothing is visible before the caller commits, so a
    pull that fails at page 37 leaves the stored set as it was.
    """

    def __init__(
        self, uow: UnitOfWork, operator: OperatorId, now: datetime, source: str = "pull"
    ) -> None:
        self.uow, self.operator, self.now, self.source = uow, operator, now, source
        self.seen: set[str] = set()

    def add(self, items: Sequence[Item]) -> ApplyOutcome:
        return _store(
            self.uow, self.operator, Action.FULL_LOAD, items, self.now, self.source, self.seen
        )

    def finish(self) -> int:
        """Delete what the load did not hold; returns how many EVSEs went."""
        return self.uow.evses.delete_operator_except(self.operator.key, self.seen)


def apply_changes(
    uow: UnitOfWork, operator: OperatorId, items: Sequence[Item], now: datetime, source: str
) -> ApplyOutcome:
    """Store records whatever gembus holds of them (a CLM's delta: inserted or updated there,
    so stored here), unless they break a rule or are older than the stored version."""
    return _store(uow, operator, Action.FULL_LOAD, items, now, source, set())


def _store(
    uow: UnitOfWork,
    operator: OperatorId,
    action: Action,
    items: Sequence[Item],
    now: datetime,
    source: str,
    seen: set[str],
) -> ApplyOutcome:
    """Decide each record (``seen``: keys of this load so far) and upsert the accepted ones."""
    repo = uow.evses
    repo.lock_operator(operator.key, operator.wire, now)
    keys = [i.evse_id.key for i in items if isinstance(i, EvseRecord)]
    stored = repo.last_updates(keys)
    outcome, accepted = ApplyOutcome(), []
    for item in items:
        result = _decide(item, operator, action, stored, seen)
        outcome.results.append(result)
        if result.accepted and isinstance(item, EvseRecord):
            accepted.append(item)
    repo.upsert(accepted, source, now)
    return outcome


def _decide(
    item: Item, operator: OperatorId, action: Action, stored: dict[str, datetime], seen: set[str]
) -> RecordResult:
    if isinstance(item, Rejected):
        return RecordResult(item.evse_wire, item.reason, item.field, item.message)
    wire, key = item.evse_id.wire, item.evse_id.key
    problem = check_record(item, operator)
    if problem is None and key in seen:
        problem = RecordResult(wire, Reason.DUPLICATE_IN_BATCH, "evseId", "already in this request")
    if item.evse_id.operator_key == operator.key:
        seen.add(key)  # a rejected record of a full load keeps its stored version
    if problem is not None:
        return problem
    known = stored.get(key)
    if action is Action.INSERT and known is not None:
        return RecordResult(wire, Reason.DUPLICATE_EVSE, "evseId", "the EVSE exists; use update")
    if action is Action.UPDATE and known is None:
        return RecordResult(wire, Reason.UNKNOWN_EVSE, "evseId", "no such EVSE; use insert")
    if known is not None and item.last_update < known:
        return RecordResult(
            wire, Reason.STALE_RECORD, "lastUpdate", f"stored version is of {known.isoformat()}"
        )
    return RecordResult(wire)


def apply_deletes(
    uow: UnitOfWork, operator: OperatorId, evse_wires: Sequence[str], now: datetime
) -> ApplyOutcome:
    """Remove the listed EVSEs of one operator (and their live status)."""
    repo = uow.evses
    repo.lock_operator(operator.key, operator.wire, now)
    parsed: list[tuple[str, EvseId | None]] = [(w, _parse(w)) for w in evse_wires]
    stored = repo.last_updates([e.key for _, e in parsed if e is not None])
    outcome, doomed = ApplyOutcome(), set[str]()
    for wire, evse in parsed:
        result = _decide_delete(wire, evse, operator, stored, doomed)
        outcome.results.append(result)
        if result.accepted and evse is not None:
            doomed.add(evse.key)
    repo.delete(doomed)
    return outcome


def _decide_delete(
    wire: str,
    evse: EvseId | None,
    operator: OperatorId,
    stored: dict[str, datetime],
    doomed: set[str],
) -> RecordResult:
    if evse is None:
        return RecordResult(wire, Reason.INVALID_IDENTIFIER, "evseId", "not a valid EVSE ID")
    if evse.operator_key != operator.key:
        return RecordResult(
            wire, Reason.EVSE_INCONSISTENT, "evseId", f"not an EVSE of {operator.wire}"
        )
    if evse.key in doomed:
        return RecordResult(wire, Reason.DUPLICATE_IN_BATCH, "evseId", "already in this request")
    if evse.key not in stored:
        return RecordResult(wire, Reason.UNKNOWN_EVSE, "evseId", "no such EVSE")
    return RecordResult(wire)


def _parse(wire: str) -> EvseId | None:
    try:
        return EvseId.parse(wire)
    except InvalidIdentifier:
        return None


def content_hash(body: bytes) -> str:
    """The idempotency key of an upload without uploadId (DOMAIN.md §11)."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class PullState:
    """How gembus's last master-data pulls from one operator's CLM went, kept per operator:
    the next delta asks for the changes since ``as_of`` and a failure stays visible.

    The times are gembus's (``last_attempt_at`` decides when the operator is due again);
    ``as_of`` is the CLM's own mark (the asOf of the last successful pull's first page), so
    the two clocks never need to agree. ``records``: what that pull received.
    """

    operator_key: str
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_full_at: datetime | None = None
    last_error: str | None = None
    records: int = 0
    as_of: datetime | None = None
