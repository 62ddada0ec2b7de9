"""The gateway's routing table: data built from the service registry, reloaded on change.

A route is a published (or deprecated) service: its family and version, its provider partner,
the provider's endpoint, and the operator and EVSP ID keys the provider owns, which is what
content-based routing needs: the operator prefix of an EVSE ID selects that operator's
service, the provider prefix of a contract ID selects the home EVSP's. gembus's own services
(provided by the marketplace operator's partner) are marked local and dispatched in process.

Every process rebuilds its table when the marketplace change counter moves (polled at most
every ``refresh_s`` seconds), so a registration on one node reaches every node.

Versions: ``family`` is the marketplace's family name (``reservation``) for every version, so
a family's routes hold the providers of v1 and of v2 alike and a requester of either version
reaches both (the gateway converts, bus/transform.py). When one provider or operator offers
the family in several versions, the lookups prefer the requester's ``version``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from domain.marketplace.model import LifecycleState, Service
from domain.ports import UnitOfWork
from domain.route_policy import RoutePolicy
from gembus.errors import ClientError, NotFoundError

ROUTED_STATES = (LifecycleState.PUBLISHED, LifecycleState.DEPRECATED)


class AmbiguousRouteError(ClientError):
    fault_code = "Client.AmbiguousRoute"
    default_message = "several providers match; name the target partner or the service"


@dataclass(frozen=True)
class Route:
    service_id: str
    family: str
    version: int
    provider_id: str
    endpoint_url: str
    local: bool
    operator_keys: frozenset[str] = frozenset()
    provider_keys: frozenset[str] = frozenset()
    #: The operator's policy for this route (domain/route_policy.py); None = the default.
    timeout_s: float | None = None
    validation: str | None = None


@dataclass
class RoutingTable:
    """Routes by service, by family, by operator key and by EVSP key."""

    routes: tuple[Route, ...] = ()
    by_service: dict[str, Route] = field(init=False)
    by_family: dict[str, list[Route]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_service = {r.service_id: r for r in self.routes}
        self.by_family = {}
        for route in self.routes:
            self.by_family.setdefault(route.family, []).append(route)

    def for_service(self, service_id: str) -> Route:
        route = self.by_service.get(service_id)
        if route is None:
            raise NotFoundError("Service", f"no published service {service_id}", field="service")
        return route

    def for_partner(self, family: str, partner_id: str, version: int | None = None) -> Route:
        return self._one(
            family,
            [r for r in self._family(family) if r.provider_id == partner_id],
            f"partner {partner_id}",
            version,
        )

    def for_operator(self, family: str, operator_key: str, version: int | None = None) -> Route:
        return self._one(
            family,
            [r for r in self._family(family) if operator_key in r.operator_keys],
            f"operator {operator_key}",
            version,
        )

    def for_provider_key(self, family: str, provider_key: str, version: int | None = None) -> Route:
        return self._one(
            family,
            [r for r in self._family(family) if provider_key in r.provider_keys],
            f"EV service provider {provider_key}",
            version,
        )

    def _family(self, family: str) -> list[Route]:
        routes = self.by_family.get(family)
        if not routes:
            raise NotFoundError(
                "Service", f"no published service implements {family}", field="service"
            )
        return routes

    @staticmethod
    def _one(family: str, found: list[Route], who: str, version: int | None = None) -> Route:
        if not found:
            raise NotFoundError("Service", f"{who} offers no {family} service", field="service")
        if len(found) > 1 and version is not None:
            # one provider with the family in several versions: the requester's own wins
            found = [r for r in found if r.version == version] or found
        if len(found) > 1:
            raise AmbiguousRouteError(
                f"{who} offers {len(found)} {family} services; address one by ID"
            )
        return found[0]

    def describe(self) -> list[tuple[str, str, str, str, bool, tuple[str, ...], tuple[str, ...]]]:
        """The whole table as plain rows (for tests and `gembus routes`)."""
        return sorted(
            (
                r.service_id,
                r.family,
                r.provider_id,
                r.endpoint_url,
                r.local,
                tuple(sorted(r.operator_keys)),
                tuple(sorted(r.provider_keys)),
            )
            for r in self.routes
        )


def build_table(
    services: Iterable[Service],
    identifiers: Callable[[str], tuple[set[str], set[str]]],
    operator_partner_id: str,
    policies: Mapping[str, RoutePolicy] | None = None,
) -> RoutingTable:
    routes = []
    for service in services:
        operators, providers = identifiers(service.provider_id)
        policy = (policies or {}).get(service.service_id)
        routes.append(
            Route(
                service.service_id,
                service.data.interface.family,
                service.data.interface.version,
                service.provider_id,
                service.data.endpoint_url,
                service.provider_id == operator_partner_id,
                frozenset(operators),
                frozenset(providers),
                policy.timeout_s if policy else None,
                policy.response_validation if policy else None,
            )
        )
    return RoutingTable(tuple(routes))


@dataclass
class Router:
    """The process's current routing table, rebuilt when the registry changes."""

    uow: Callable[[], UnitOfWork]
    operator_partner_id: str
    refresh_s: float = 0.25
    clock: Callable[[], float] = time.monotonic
    _table: RoutingTable | None = None
    _version: int = -1
    _checked: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def table(self) -> RoutingTable:
        now = self.clock()
        if self._table is not None and now - self._checked < self.refresh_s:
            return self._table
        with self.uow() as uow:
            version = uow.marketplace.counter("marketplace")
            if self._table is None or version != self._version:
                self._table = self._load(uow)
                self._version = version
        self._checked = now
        return self._table

    def invalidate(self) -> None:
        with self._lock:
            self._checked = float("-inf")
            self._version = -1

    def _load(self, uow: UnitOfWork) -> RoutingTable:
        services, _ = uow.marketplace.browse(
            category=None,
            family=None,
            version=None,
            provider_id=None,
            text=None,
            states=ROUTED_STATES,
            page=(0, 1_000_000),
        )

        def identifiers(partner_id: str) -> tuple[set[str], set[str]]:
            partner = uow.partners.get(partner_id)
            if partner is None or not partner.is_active:
                return set(), set()
            return (
                {o.key for o in partner.data.operator_ids},
                {p.key for p in partner.data.provider_ids},
            )

        active = [
            s
            for s in services
            if (p := uow.partners.get(s.provider_id)) is not None and p.is_active
        ]
        return build_table(
            active, identifiers, self.operator_partner_id, uow.marketplace.route_policies()
        )
