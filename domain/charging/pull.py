"""Pulling EVSE data from the operators' CLMs into storage (DOMAIN.md §3.2, §3.3).

gembus pulls from every operator that published a ProvideEVSE-MasterData service (family
``evse_masterdata`` v1) or a ProvideEVSEStatusData service (``evse_status`` v1) on the
marketplace; the registry is the routing data, as for the gateway (gembus/evse_pull.py wires
the routing table and the pull client behind :class:`ClmDirectory`). Every record goes
through the write path uploads use, so a pulled record obeys the rules of an uploaded one:

* **full pull**: every page is decided and stored as it arrives, as one
  :class:`~domain.charging.master_data.FullLoad`, and committed after the last page with the
  deletion of what the CLM no longer holds. A CLM that fails at page 37 (down, slow, garbage,
  invalid XML, a fault) leaves the stored set exactly as it was. ``Client.SnapshotExpired``
  (the data changed during the read) restarts the read from page 1, once, as the contract
  says.
* **delta**: the changes since the CLM's asOf of the last successful pull
  (:class:`~domain.charging.master_data.PullState`), in one transaction too. A CLM that
  answers ``Client.DeltaNotAvailable`` (or offers full reads only) gets a full pull instead,
  and the run says so.
* **status**: all statuses, or those changed since the last successful status pull, stored
  as PushEvseStatus stores them (ttl checked, valid pairs only) and published on
  ``EvseStatusChanged`` in the same transaction.

Records the CLM sends that break gembus's rules (an EVSE ID of another operator, a charging
point without connectors, ...) are rejected one by one, counted and kept with the run; the
rest is stored. Every run is recorded (``EvseRepository.record_pull_run``): an ok run in the
transaction of its data, a failed one after the rollback, with the failure's kind and detail.

Runs of one operator never overlap: each takes the operator's lease (``Leases``), which the
scheduled job (:meth:`Puller.pull_due`, in every ``gembus worker``) and ``gembus evse pull``
share; a scheduled run checks again under the lease that the operator is still due.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from domain.charging.master_data import (
    ApplyOutcome,
    FullLoad,
    Item,
    PullState,
    Reason,
    RecordResult,
    apply_changes,
    apply_deletes,
)
from domain.charging.model import EvseRecord
from domain.charging.status import StatusUpdate, apply_statuses
from domain.identifiers import EvseId, InvalidIdentifier, OperatorId
from gembus.errors import ClientError, GembusError, NotFoundError

if TYPE_CHECKING:  # domain.ports imports the run model below
    from domain.ports import Leases, UnitOfWork

#: Marketplace families (and version) an operator's CLM publishes its endpoints under.
MASTERDATA_FAMILY = ("evse_masterdata", 1)
STATUS_FAMILY = ("evse_status", 1)
#: Faults after which a delta is read as a full pull (wsdl/evse_masterdata.wsdl).
DELTA_FALLBACK = frozenset({"Client.DeltaNotAvailable", "Server.NotImplemented"})
#: Fault after which a full read starts again from page 1 (the data changed meanwhile).
SNAPSHOT_EXPIRED = "Client.SnapshotExpired"
#: Rejected records kept with a run for people to read (the counts are complete).
KEPT_REJECTIONS = 20
#: A delta that asks for deleting an EVSE gembus does not hold has nothing to do.
_NOTHING_TO_DELETE = Reason.UNKNOWN_EVSE


class PullKind(enum.StrEnum):
    FULL = "full"
    DELTA = "delta"
    STATUS = "status"


class PullOutcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"


class Trigger(enum.StrEnum):
    CLI = "cli"  # gembus evse pull
    SCHEDULE = "schedule"  # gembus worker


class PullInProgressError(ClientError):
    fault_code = "Client.PullInProgress"
    default_message = "a pull of this operator is running; try again when it has finished"


class ClmReadError(Exception):
    """A CLM answer gembus must not use, as the adapter translated it where it entered
    (adapters/clm_client.py ``ClmPullError``): ``kind`` is its PullFailure value."""

    def __init__(self, kind: str, detail: str, fault_code: str | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.fault_code = fault_code


@dataclass(frozen=True)
class ClmEndpoint:
    """Where one operator's CLM answers, per the marketplace registry."""

    operator: OperatorId
    partner_id: str
    masterdata_url: str | None = None
    status_url: str | None = None


@dataclass(frozen=True)
class Change:
    """One master-data change of a delta; ``record`` is None for a delete."""

    evse_wire: str
    delta_type: str  # insert | update | delete
    changed_at: datetime
    record: Item | None


T_co = TypeVar("T_co", covariant=True)


class Read(Protocol[T_co]):
    """One paged read from a CLM: its pages as they arrive, each checked against the contract.
    ``as_of`` (the CLM's mark for the next read) and ``total`` (records in all pages) are
    known once the first page is in; a failure raises :class:`ClmReadError` from ``pages``."""

    @property
    def as_of(self) -> datetime | None: ...

    @property
    def total(self) -> int | None: ...

    def pages(self) -> Iterator[Sequence[T_co]]: ...


class Clm(Protocol):
    """One operator's CLM, read for that operator's data only."""

    def full(self, operator: OperatorId) -> Read[Item]: ...

    def delta(self, operator: OperatorId, since: datetime) -> Read[Change]: ...

    def statuses(self, operator: OperatorId, since: datetime | None) -> Read[StatusUpdate]: ...


class ClmDirectory(Protocol):
    """The CLMs gembus pulls from (gembus/evse_pull.py: the marketplace registry)."""

    def endpoints(self) -> list[ClmEndpoint]:
        """Every operator with a published masterdata or status service."""
        ...

    def endpoint(self, operator: OperatorId) -> ClmEndpoint:
        """The operator's endpoints; ``Client.UnknownService`` when it published none."""
        ...

    def clm(self, endpoint: ClmEndpoint) -> Clm: ...


#: Called after each stored page: records received so far, records the read holds.
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class PullRun:
    """What one pull did: the record in ``evse_pull`` and the summary people read."""

    operator_key: str
    operator_wire: str
    partner_id: str
    kind: PullKind
    trigger: Trigger
    started_at: datetime
    finished_at: datetime
    outcome: PullOutcome
    received: int = 0
    stored: int = 0
    deleted: int = 0
    rejected: int = 0
    as_of: datetime | None = None
    failure_kind: str | None = None
    fault_code: str | None = None
    failure_detail: str | None = None
    note: str | None = None
    rejections: tuple[RecordResult, ...] = ()
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is PullOutcome.OK

    def summary(self) -> str:
        """One line: what was pulled, how it ended, the counts (and why it failed)."""
        seconds = (self.finished_at - self.started_at).total_seconds()
        counts = (
            f"{self.received} received, {self.stored} stored, {self.deleted} deleted, "
            f"{self.rejected} rejected"
        )
        head = f"{self.operator_wire} {self.kind.value} pull {self.outcome.value}"
        if self.ok:
            return f"{head} in {seconds:.1f} s: {counts}"
        why = f"({self.failure_kind}) in {seconds:.1f} s: {self.failure_detail}"
        return f"{head} {why}; nothing stored"

    def rejections_json(self) -> str | None:
        rows = [[r.evse_wire, r.reason, r.field, r.message] for r in self.rejections]
        return json.dumps(rows) if rows else None


def rejections_from_json(text: str | None) -> tuple[RecordResult, ...]:
    rows = json.loads(text) if text else []
    return tuple(RecordResult(w, Reason(r), f, m) for w, r, f, m in rows)


@dataclass
class _Tally:
    """The counts of a run in progress."""

    received: int = 0
    stored: int = 0
    deleted: int = 0
    rejected: int = 0
    rejections: list[RecordResult] = field(default_factory=list)

    def add(self, outcome: ApplyOutcome) -> None:
        for result in outcome.results:
            if result.accepted:
                self.stored += 1
            else:
                self._reject(result)

    def add_deletes(self, outcome: ApplyOutcome) -> None:
        for result in outcome.results:
            if result.accepted:
                self.deleted += 1
            elif result.reason is not _NOTHING_TO_DELETE:
                self._reject(result)

    def _reject(self, result: RecordResult) -> None:
        self.rejected += 1
        if len(self.rejections) < KEPT_REJECTIONS:
            self.rejections.append(result)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Puller:
    """Runs pulls: on demand (:meth:`pull_master_data`, :meth:`pull_statuses`) and as the
    scheduled singleton job (:meth:`pull_due`)."""

    uow: Callable[[], UnitOfWork]
    directory: ClmDirectory
    leases: Leases
    clock: Callable[[], datetime] = _utc_now

    # ------------------------------------------------------------------ on demand

    def pull_master_data(
        self,
        operator: OperatorId,
        *,
        full: bool = False,
        trigger: Trigger = Trigger.CLI,
        progress: Progress | None = None,
    ) -> PullRun:
        """A delta since the last successful pull (a full pull when there is none, or when
        ``full``); Client.PullInProgress while another run of the operator holds its lease."""
        return self._on_demand(operator, False, full, trigger, progress)

    def pull_statuses(
        self,
        operator: OperatorId,
        *,
        full: bool = False,
        trigger: Trigger = Trigger.CLI,
        progress: Progress | None = None,
    ) -> PullRun:
        """The statuses changed since the last successful status pull (all of them when
        there is none, or when ``full``); Client.PullInProgress as for master data."""
        return self._on_demand(operator, True, full, trigger, progress)

    def _on_demand(
        self,
        operator: OperatorId,
        statuses: bool,
        full: bool,
        trigger: Trigger,
        progress: Progress | None,
    ) -> PullRun:
        endpoint = self.directory.endpoint(operator)
        family, version = STATUS_FAMILY if statuses else MASTERDATA_FAMILY
        if (endpoint.status_url if statuses else endpoint.masterdata_url) is None:
            raise NotFoundError(
                "Service",
                f"operator {operator.wire} published no {family} v{version} service",
                field="operator",
            )
        with self.leases.hold(_lease(endpoint, status=statuses)) as held:
            if not held:
                raise PullInProgressError(f"a {family} pull of {operator.wire} is running")
            pull = self._status if statuses else self._master
            return pull(endpoint, full, trigger, progress)

    # ------------------------------------------------------------------ scheduled

    def pull_due(self, every_s: float, *, statuses: bool = False) -> list[PullRun]:
        """Pull every operator whose last run (of master data, or of ``statuses``) started
        ``every_s`` ago or longer, or that was never pulled: a delta, or a full pull when no
        pull succeeded yet. An operator whose lease another worker holds is left to it."""
        runs = []
        for endpoint in self.directory.endpoints():
            url = endpoint.status_url if statuses else endpoint.masterdata_url
            if url is not None and self._due(endpoint, every_s, statuses):
                run = self._pull_if_due(endpoint, every_s, statuses)
                if run is not None:
                    runs.append(run)
        return runs

    def _pull_if_due(self, endpoint: ClmEndpoint, every_s: float, statuses: bool) -> PullRun | None:
        with self.leases.hold(_lease(endpoint, status=statuses)) as held:
            if not held or not self._due(endpoint, every_s, statuses):
                return None  # another worker pulls it, or just did
            if statuses:
                return self._status(endpoint, False, Trigger.SCHEDULE, None)
            return self._master(endpoint, False, Trigger.SCHEDULE, None)

    def _due(self, endpoint: ClmEndpoint, every_s: float, statuses: bool) -> bool:
        with self.uow() as uow:
            if statuses:
                last = uow.evses.last_pull_run(endpoint.operator.key, (PullKind.STATUS,), None)
                attempted = last.started_at if last is not None else None
            else:
                state = uow.evses.pull_state(endpoint.operator.key)
                attempted = state.last_attempt_at if state is not None else None
        return attempted is None or attempted + timedelta(seconds=every_s) <= self.clock()

    # ------------------------------------------------------------------ master data

    def _master(
        self, endpoint: ClmEndpoint, full: bool, trigger: Trigger, progress: Progress | None
    ) -> PullRun:
        operator, clm = endpoint.operator, self.directory.clm(endpoint)
        with self.uow() as uow:
            state = uow.evses.pull_state(operator.key)
        since = None if full or state is None else state.as_of
        run = _Run(self, endpoint, PullKind.DELTA if since else PullKind.FULL, trigger, progress)
        if since is not None:
            try:
                return run.attempt(lambda uow, tally: self._delta(uow, clm, run, since, tally))
            except ClmReadError as exc:
                if exc.fault_code not in DELTA_FALLBACK:
                    return run.failed(exc)
                run.note = f"no delta since {since.isoformat()} ({exc.fault_code}): full pull"
                run.kind = PullKind.FULL
        return self._full_pull(run, clm)

    def _full_pull(self, run: _Run, clm: Clm) -> PullRun:
        for restart in (False, True):
            try:
                return run.attempt(lambda uow, tally: self._full(uow, clm, run, tally))
            except ClmReadError as exc:
                if exc.fault_code != SNAPSHOT_EXPIRED or restart:
                    return run.failed(exc)
                run.note = _join(run.note, "snapshot expired during the read: read again")
        raise AssertionError("unreachable")

    def _full(self, uow: UnitOfWork, clm: Clm, run: _Run, tally: _Tally) -> datetime | None:
        read = clm.full(run.endpoint.operator)
        load = FullLoad(uow, run.endpoint.operator, run.started_at)
        for page in read.pages():
            tally.add(load.add(page))
            run.advanced(tally, read, len(page))
        tally.deleted = load.finish()
        return read.as_of

    def _delta(
        self, uow: UnitOfWork, clm: Clm, run: _Run, since: datetime, tally: _Tally
    ) -> datetime | None:
        operator, now = run.endpoint.operator, run.started_at
        read = clm.delta(operator, since)
        for page in read.pages():
            upserts, deletes = _split(page, tally)
            tally.add(apply_changes(uow, operator, upserts, now, "pull"))
            tally.add_deletes(apply_deletes(uow, operator, deletes, now))
            run.advanced(tally, read, len(page))
        return read.as_of

    # ------------------------------------------------------------------ status

    def _status(
        self, endpoint: ClmEndpoint, full: bool, trigger: Trigger, progress: Progress | None
    ) -> PullRun:
        clm = self.directory.clm(endpoint)
        run = _Run(self, endpoint, PullKind.STATUS, trigger, progress)
        since = None
        if not full:
            with self.uow() as uow:
                last = uow.evses.last_pull_run(
                    endpoint.operator.key, (PullKind.STATUS,), PullOutcome.OK
                )
            since = last.as_of if last is not None else None
        try:
            return run.attempt(lambda uow, tally: self._statuses(uow, clm, run, since, tally))
        except ClmReadError as exc:
            if since is None or exc.fault_code != "Client.DeltaNotAvailable":
                return run.failed(exc)
            run.note = f"no changes since {since.isoformat()} ({exc.fault_code}): all read"
        try:
            return run.attempt(lambda uow, tally: self._statuses(uow, clm, run, None, tally))
        except ClmReadError as exc:
            return run.failed(exc)

    def _statuses(
        self, uow: UnitOfWork, clm: Clm, run: _Run, since: datetime | None, tally: _Tally
    ) -> datetime | None:
        read = clm.statuses(run.endpoint.operator, since)
        for page in read.pages():
            tally.add(apply_statuses(uow, run.endpoint.operator, page, self.clock()))
            run.advanced(tally, read, len(page))
        return read.as_of


def _lease(endpoint: ClmEndpoint, *, status: bool) -> str:
    return f"evse-{'status-' if status else ''}pull/{endpoint.operator.key}"


def _join(note: str | None, more: str) -> str:
    return f"{note}; {more}" if note else more


def _split(page: Sequence[Change], tally: _Tally) -> tuple[list[Item], list[str]]:
    """A delta page as records to store and EVSE IDs to delete; the latest change of an EVSE
    wins, and a change whose record names another EVSE is rejected."""
    latest: dict[str, Change] = {}
    for change in page:
        latest.pop(change.evse_wire, None)
        latest[change.evse_wire] = change
    upserts: list[Item] = []
    deletes: list[str] = []
    for change in latest.values():
        if change.delta_type == "delete":
            deletes.append(change.evse_wire)
        elif change.record is None:
            tally.add(_missing_record(change))
        elif _names_another(change):
            tally.add(_inconsistent(change))
        else:
            upserts.append(change.record)
    return upserts, deletes


def _names_another(change: Change) -> bool:
    if not isinstance(change.record, EvseRecord):
        return False
    try:
        return EvseId.parse(change.evse_wire).key != change.record.evse_id.key
    except InvalidIdentifier:
        return True


def _missing_record(change: Change) -> ApplyOutcome:
    message = f"an {change.delta_type} carries the record"
    return ApplyOutcome([RecordResult(change.evse_wire, Reason.MISSING_FIELD, "evse", message)])


def _inconsistent(change: Change) -> ApplyOutcome:
    message = "the change's evseId is not its record's"
    return ApplyOutcome(
        [RecordResult(change.evse_wire, Reason.EVSE_INCONSISTENT, "evse/evseId", message)]
    )


AttemptBody = Callable[["UnitOfWork", _Tally], "datetime | None"]


@dataclass
class _Run:
    """One run in progress: attempts in a transaction each, recorded when it ends."""

    puller: Puller
    endpoint: ClmEndpoint
    kind: PullKind
    trigger: Trigger
    progress: Progress | None
    note: str | None = None
    started_at: datetime = field(init=False)
    _tally: _Tally = field(default_factory=_Tally)

    def __post_init__(self) -> None:
        self.started_at = self.puller.clock()

    def advanced(self, tally: _Tally, read: Read[object], records: int) -> None:
        tally.received += records
        if self.progress is not None:
            self.progress(tally.received, read.total)

    def attempt(self, body: AttemptBody) -> PullRun:
        """Run ``body`` in a transaction; commit it with the ok run and the pull state. A
        :class:`ClmReadError` rolls everything back and is raised."""
        self._tally = tally = _Tally()
        try:
            with self.puller.uow() as uow:
                as_of = body(uow, tally)
                run = self._record(uow, PullOutcome.OK, as_of)
                uow.commit()
        except GembusError as exc:  # storage failed (the database, a concurrent writer)
            raise ClmReadError("storage", f"{exc.fault_code}: {exc.message}") from exc
        return run

    def failed(self, exc: ClmReadError) -> PullRun:
        """Record the failure (storage is as it was before the run) and return it."""
        with self.puller.uow() as uow:
            run = self._record(uow, PullOutcome.FAILED, None, exc)
            uow.commit()
        return run

    def _record(
        self,
        uow: UnitOfWork,
        outcome: PullOutcome,
        as_of: datetime | None,
        exc: ClmReadError | None = None,
    ) -> PullRun:
        tally, ok = self._tally, outcome is PullOutcome.OK
        operator = self.endpoint.operator
        run = PullRun(
            operator.key,
            operator.wire,
            self.endpoint.partner_id,
            self.kind,
            self.trigger,
            self.started_at,
            self.puller.clock(),
            outcome,
            received=tally.received,
            stored=tally.stored if ok else 0,
            deleted=tally.deleted if ok else 0,
            rejected=tally.rejected if ok else 0,
            as_of=as_of,
            failure_kind=exc.kind if exc else None,
            fault_code=exc.fault_code if exc else None,
            failure_detail=exc.detail if exc else None,
            note=self.note,
            rejections=tuple(tally.rejections) if ok else (),
        )
        run = replace(run, run_id=uow.evses.record_pull_run(run))
        if self.kind is not PullKind.STATUS:
            self._record_state(uow, run)
        return run

    def _record_state(self, uow: UnitOfWork, run: PullRun) -> None:
        operator = self.endpoint.operator
        uow.evses.lock_operator(operator.key, operator.wire, run.finished_at)
        state = uow.evses.pull_state(operator.key) or PullState(operator.key)
        if not run.ok:
            error = f"{run.failure_kind}: {run.failure_detail}"
            uow.evses.record_pull(replace(state, last_attempt_at=run.started_at, last_error=error))
            return
        uow.evses.record_pull(
            replace(
                state,
                last_attempt_at=run.started_at,
                last_success_at=run.finished_at,
                last_full_at=run.finished_at if run.kind is PullKind.FULL else state.last_full_at,
                last_error=None,
                records=run.received,
                as_of=run.as_of,
            )
        )
