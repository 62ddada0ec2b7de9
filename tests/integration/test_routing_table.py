"""The gateway's whole routing table for a demo registry, and how routes are chosen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bus.routing import AmbiguousRouteError, Router
from domain.marketplace import catalogue
from domain.marketplace.model import InterfaceRef, LifecycleState, ServiceCategory, ServiceData
from domain.route_policy import RoutePolicy, set_policy
from gembus.bootstrap import Gembus
from gembus.demo import load_marketplace
from gembus.errors import GembusError, NotFoundError
from tests.support.marketplace import AcceptingInspector, partner


@pytest.fixture
def gembus(gembus: Gembus) -> Gembus:
    """The demo partners plus gembus's own published services."""
    load_marketplace(gembus.uow, "http://gembus.example")
    return gembus


def _service(gembus: Gembus, partner_id: str, family: str, url: str, publish: bool = True) -> str:
    provider = partner(gembus.uow, partner_id)
    with gembus.uow() as uow:
        data = ServiceData(
            f"{partner_id} {family}", ServiceCategory.VALUE_ADDED, InterfaceRef(family, 1), url
        )
        service = catalogue.register_service(uow, AcceptingInspector(), provider, None, data)
        if publish:
            catalogue.change_lifecycle(uow, provider, service.service_id, LifecycleState.PUBLISHED)
        uow.commit()
    return service.service_id


def test_the_whole_table_of_a_demo_registry(gembus: Gembus) -> None:
    ice = _service(gembus, "ice-charging", "reservation", "https://clm.ice.example/reservation")
    bmw = _service(gembus, "bmw-emobility", "reservation", "https://clm.bmw.example/reservation")
    _service(gembus, "ice-charging", "evse_status", "https://clm.ice.example/status", publish=False)
    router = Router(gembus.uow, "gembus-admin")
    own = {r.family: r.service_id for r in router.table.routes if r.provider_id == "gembus-admin"}
    assert router.table.describe() == sorted(
        [
            (
                own["evse_search"],
                "evse_search",
                "gembus-admin",
                "http://gembus.example/services/evse_search",
                True,
                (),
                (),
            ),
            (
                own["contract_validation"],
                "contract_validation",
                "gembus-admin",
                "http://gembus.example/services/contract_validation",
                True,
                (),
                (),
            ),
            (
                own["authorization"],
                "authorization",
                "gembus-admin",
                "http://gembus.example/services/authorization",
                True,
                (),
                (),
            ),
            (own["sdr"], "sdr", "gembus-admin", "http://gembus.example/services/sdr", True, (), ()),
            (
                ice,
                "reservation",
                "ice-charging",
                "https://clm.ice.example/reservation",
                False,
                ("DEICE",),
                (),
            ),
            (
                bmw,
                "reservation",
                "bmw-emobility",
                "https://clm.bmw.example/reservation",
                False,
                ("DEBMW",),
                ("DEBMW",),
            ),
        ]
    )  # the draft evse_status service is not routable


def test_routes_by_service_partner_operator_and_provider(gembus: Gembus) -> None:
    ice = _service(gembus, "ice-charging", "reservation", "https://clm.ice.example/reservation")
    bmw = _service(gembus, "bmw-emobility", "reservation", "https://clm.bmw.example/reservation")
    table = Router(gembus.uow, "gembus-admin").table
    assert table.for_service(ice).provider_id == "ice-charging"
    assert table.for_operator("reservation", "DEBMW").service_id == bmw
    assert table.for_provider_key("reservation", "DEBMW").service_id == bmw
    assert table.for_partner("reservation", "ice-charging").service_id == ice
    with pytest.raises(NotFoundError) as unknown:
        table.for_operator("reservation", "FRXYZ")
    assert unknown.value.fault_code == "Client.UnknownService"
    _service(gembus, "ice-charging", "reservation", "https://clm2.ice.example/reservation")
    with pytest.raises(AmbiguousRouteError):
        Router(gembus.uow, "gembus-admin").table.for_operator("reservation", "DEICE")


def test_a_new_service_reaches_every_router_after_the_refresh(gembus: Gembus) -> None:
    clock = [0.0]
    router = Router(gembus.uow, "gembus-admin", refresh_s=0.25, clock=lambda: clock[0])
    before = len(router.table.routes)
    _service(gembus, "ice-charging", "reservation", "https://clm.ice.example/reservation")
    assert len(router.table.routes) == before  # another node's change: not yet seen
    clock[0] += 0.3
    assert len(router.table.routes) == before + 1


def test_a_route_policy_reaches_every_router_and_can_be_cleared(gembus: Gembus) -> None:
    ice = _service(gembus, "ice-charging", "reservation", "https://clm.ice.example/reservation")
    node_a, node_b = Router(gembus.uow, "gembus-admin"), Router(gembus.uow, "gembus-admin")
    assert node_a.table.for_service(ice).timeout_s is None  # both nodes loaded, defaults
    assert node_b.table.for_service(ice).validation is None
    with gembus.uow() as uow:
        stored = set_policy(uow, "ops", RoutePolicy(ice, 1500, " Sample:0.25 "), datetime.now(UTC))
        uow.commit()
    assert stored.response_validation == "sample:0.25"
    for node in (node_a, node_b):
        node.invalidate()  # what the 0.25 s poll of the change counter does on its own
        route = node.table.for_service(ice)
        assert (route.timeout_s, route.validation) == (1.5, "sample:0.25")
    with gembus.uow() as uow:
        set_policy(uow, "ops", RoutePolicy(ice), datetime.now(UTC))
        uow.commit()
    node_a.invalidate()
    assert node_a.table.for_service(ice).timeout_s is None
    with gembus.uow() as uow:
        assert uow.marketplace.route_policies() == {}


@pytest.mark.parametrize(
    ("policy", "code", "field"),
    [
        (RoutePolicy("no-such-service", 100), "Client.UnknownService", "serviceId"),
        (RoutePolicy("<service>", 0), "Client.InvalidValue", "timeoutMs"),
        (RoutePolicy("<service>", 120_001), "Client.InvalidValue", "timeoutMs"),
        (RoutePolicy("<service>", None, "sometimes"), "Client.InvalidValue", "responseValidation"),
        (RoutePolicy("<service>", None, "sample:1.5"), "Client.InvalidValue", "responseValidation"),
    ],
)
def test_impossible_route_policies_are_refused_with_the_field(
    gembus: Gembus, policy: RoutePolicy, code: str, field: str
) -> None:
    ice = _service(gembus, "ice-charging", "reservation", "https://clm.ice.example/reservation")
    if policy.service_id == "<service>":
        policy = RoutePolicy(ice, policy.timeout_ms, policy.response_validation)
    with gembus.uow() as uow, pytest.raises(GembusError) as raised:
        set_policy(uow, "ops", policy, datetime.now(UTC))
    assert (raised.value.fault_code, raised.value.field) == (code, field)
