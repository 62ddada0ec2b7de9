"""Wiring of the CLM pulls (domain/charging/pull.py) for `gembus evse pull` and the worker.

Where each operator's CLM answers comes from the marketplace registry, through the routing
table the gateway builds from published services (bus/routing.py): an operator's published
``evse_masterdata`` v1 and ``evse_status`` v1 services. The wire side is
adapters/clm_client.py, which checks every page against the canonical XSD; here its pages
become domain values (records read by endpoints/evse_types.py, as an upload's are) and its
``ClmPullError`` becomes the domain's ``ClmReadError``. The client sends no UsernameToken:
gembus calls the endpoint the operator registered, as the gateway does.

**Read-ahead.** A pull is a pipeline of three threads, each up to ``read_ahead`` pages ahead
of the next: one waits for the CLM's pages and checks them (HTTP, parse and XSD validation,
which libcurl and lxml run without the GIL), one reads their records, and the caller's
stores them. The CLM renders page n + 2 while gembus reads page n + 1 and PostgreSQL stores
page n: a pull costs about as long as its slowest stage, not their sum.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Generic, TypeVar

from lxml import etree
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.clm_client import (
    ClmPullError,
    EvseChange,
    EvseMasterDataClient,
    EvseStatus,
    EvseStatusClient,
    Pull,
)
from bus.routing import Route, Router, RoutingTable
from domain.charging.master_data import Item
from domain.charging.model import EvseStatus as StatusValue
from domain.charging.model import Major
from domain.charging.pull import (
    MASTERDATA_FAMILY,
    STATUS_FAMILY,
    Change,
    ClmEndpoint,
    ClmReadError,
    Puller,
)
from domain.charging.status import StatusUpdate
from domain.identifiers import OperatorId
from domain.ports import UnitOfWork
from endpoints.evse_types import read_record
from gembus.errors import GembusError, NotFoundError
from gembus.logging import get_logger
from gembus.settings import Settings
from persistence.leases import AdvisoryLeases
from persistence.unit_of_work import SqlUnitOfWork

#: Pages fetched ahead of the one being stored (each up to 1,000 records, a few MB).
READ_AHEAD = 2

W = TypeVar("W")
T = TypeVar("T")


def build_puller(
    session_factory: sessionmaker[Session], engine: Engine, settings: Settings
) -> Puller:
    def uow() -> SqlUnitOfWork:
        return SqlUnitOfWork(session_factory)

    router = Router(uow, settings.operator_partner_id)
    directory = RegistryDirectory(router, uow, settings.clm_pull_timeout_s)
    return Puller(uow, directory, AdvisoryLeases(engine))


class RegistryDirectory:
    """Implements domain.charging.pull.ClmDirectory over the marketplace registry."""

    def __init__(
        self,
        router: Router,
        uow: Callable[[], UnitOfWork],
        timeout_s: float,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        self.router, self.uow = router, uow
        self.timeout_s, self.read_ahead = timeout_s, read_ahead

    def endpoints(self) -> list[ClmEndpoint]:
        table = self.router.table
        keys: set[str] = set()
        for family, version in (MASTERDATA_FAMILY, STATUS_FAMILY):
            for route in table.by_family.get(family, ()):
                if route.version == version and not route.local:
                    keys |= route.operator_keys
        found = []
        for key in sorted(keys):
            try:
                found.append(self._endpoint(table, key))
            except GembusError as exc:  # e.g. two published services: the operator must say
                get_logger("gembus.evse").warning("evse.pull_skipped", operator=key, error=str(exc))
        return found

    def endpoint(self, operator: OperatorId) -> ClmEndpoint:
        return self._endpoint(self.router.table, operator.key)

    def clm(self, endpoint: ClmEndpoint) -> PulledClm:
        return PulledClm(endpoint, self.timeout_s, self.read_ahead)

    def _endpoint(self, table: RoutingTable, key: str) -> ClmEndpoint:
        masterdata = _route(table, MASTERDATA_FAMILY, key)
        status = _route(table, STATUS_FAMILY, key)
        route = masterdata or status
        if route is None:
            raise NotFoundError(
                "Service",
                f"operator {key} published no evse_masterdata or evse_status service",
                field="operator",
            )
        return ClmEndpoint(
            self._operator_id(route.provider_id, key),
            route.provider_id,
            masterdata.endpoint_url if masterdata else None,
            status.endpoint_url if status else None,
        )

    def _operator_id(self, partner_id: str, key: str) -> OperatorId:
        """The operator ID as its partner registered it (what the CLM is asked for)."""
        with self.uow() as uow:
            partner = uow.partners.get(partner_id)
        for operator in partner.data.operator_ids if partner else ():
            if operator.key == key:
                return operator
        return OperatorId.parse(key)


def _route(table: RoutingTable, family: tuple[str, int], key: str) -> Route | None:
    name, version = family
    try:
        route = table.for_operator(name, key, version)
    except NotFoundError:
        return None
    return None if route.local or route.version != version else route


class PulledClm:
    """Implements domain.charging.pull.Clm with the pull client of adapters/clm_client.py."""

    def __init__(self, endpoint: ClmEndpoint, timeout_s: float, read_ahead: int) -> None:
        self.endpoint, self.timeout_s, self.depth = endpoint, timeout_s, read_ahead

    def full(self, operator: OperatorId) -> PagedRead[etree._Element, Item]:
        pull = self._masterdata().full_pull([operator.wire])
        return PagedRead(pull, _records, self.depth)

    def delta(self, operator: OperatorId, since: datetime) -> PagedRead[EvseChange, Change]:
        pull = self._masterdata().delta_pull(since, [operator.wire])
        return PagedRead(pull, _changes, self.depth)

    def statuses(
        self, operator: OperatorId, since: datetime | None
    ) -> PagedRead[EvseStatus, StatusUpdate]:
        url = self.endpoint.status_url
        if url is None:
            raise ValueError(f"{operator.wire} has no evse_status endpoint")
        client = EvseStatusClient(url, timeout_s=self.timeout_s)
        return PagedRead(client.status_pull(since, [operator.wire]), _statuses, self.depth)

    def _masterdata(self) -> EvseMasterDataClient:
        url = self.endpoint.masterdata_url
        if url is None:
            raise ValueError(f"{self.endpoint.operator.wire} has no evse_masterdata endpoint")
        return EvseMasterDataClient(url, timeout_s=self.timeout_s)


def _records(page: list[etree._Element]) -> list[Item]:
    return [read_record(element) for element in page]


def _changes(page: list[EvseChange]) -> list[Change]:
    return [Change(c.evse_id, c.delta_type, c.changed_at, _record(c.evse)) for c in page]


def _record(element: etree._Element | None) -> Item | None:
    return read_record(element) if element is not None else None


def _statuses(page: list[EvseStatus]) -> list[StatusUpdate]:
    return [StatusUpdate(s.evse_id, StatusValue(Major(s.major), s.minor, s.ttl)) for s in page]


class PagedRead(Generic[W, T]):
    """Implements domain.charging.pull.Read: the client's pages, read ahead and converted."""

    def __init__(self, pull: Pull[W], convert: Callable[[list[W]], list[T]], depth: int) -> None:
        self._pull, self._convert, self._depth = pull, convert, depth

    @property
    def as_of(self) -> datetime | None:
        return self._pull.as_of

    @property
    def total(self) -> int | None:
        return self._pull.total

    def pages(self) -> Iterator[list[T]]:
        # Three stages, each in its own thread: one waits for the CLM and checks its pages
        # (libcurl, lxml: no GIL), one reads their records, the caller stores them.
        fetched = read_ahead(self._pull.pages(), self._depth, "clm-fetch")
        converted = (self._convert(page) for page in fetched)
        try:
            with _collector_paused():
                yield from read_ahead(converted, self._depth, "clm-read")
        except ClmPullError as exc:
            detail = str(exc).removeprefix(f"{exc.kind.value}: ")
            raise ClmReadError(exc.kind.value, detail, exc.fault_code) from exc


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a pull runs (reference counting frees as usual).

    A pull allocates millions of small objects (records, their sets and tuples) that live
    for one page; each allocation burst starts a collection, and the full ones walk the
    whole long-lived heap of the process too: a tenth to a sixth of a 100,000-EVSE pull's
    CPU, collecting nothing (a pull's objects hold no cycles). A collector paused by
    someone else stays paused.
    """
    paused_here = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused_here:
            gc.enable()


_DONE = object()


def read_ahead(items: Iterator[T], depth: int, name: str = "read-ahead") -> Iterator[T]:
    """``items`` produced by a thread of their own, at most ``depth`` ahead of the consumer.

    What the producer raises is raised here, after the items it produced before. A consumer
    that stops early (its own failure) stops the producer at its next item, and the producer
    closes ``items`` (stopping a read-ahead it reads from in turn).
    """
    if depth < 1:
        yield from items
        return
    slots: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def offer(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer((_DONE, exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        offer((_DONE, None))

    producer = threading.Thread(target=produce, name=name, daemon=True)
    producer.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()
