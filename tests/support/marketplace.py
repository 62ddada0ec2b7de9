"""Build marketplace state through the real use cases (for tests that need contracts to exist)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from domain.marketplace import catalogue, contracts
from domain.marketplace.model import (
    InterfaceRef,
    LifecycleState,
    Quota,
    ServiceCategory,
    ServiceContract,
    ServiceData,
    Terms,
    Validity,
)
from domain.partners import Partner
from domain.ports import UnitOfWork


class AcceptingInspector:
    """Stands in for the provider endpoint check when no provider server runs (integration tier)."""

    def known(self, interface: InterfaceRef) -> bool:
        return True

    def differences(self, endpoint_url: str, interface: InterfaceRef) -> list[str]:
        return []


def partner(uow_factory: Callable[[], UnitOfWork], partner_id: str) -> Partner:
    with uow_factory() as uow:
        found = uow.partners.get(partner_id)
    assert found is not None, partner_id
    return found


def published_offering(
    uow_factory: Callable[[], UnitOfWork],
    provider: Partner,
    *,
    family: str = "evse_search",
    price: str = "0.01",
    fee: str | None = "100.00",
    quota: Quota | None = None,
    valid_to: datetime | None = None,
    endpoint_url: str | None = None,
) -> str:
    """A published service of ``provider`` with one open offering; returns the offering ID."""
    with uow_factory() as uow:
        data = ServiceData(
            f"{family} by {provider.partner_id}",
            ServiceCategory.BASIC_END_USER,
            InterfaceRef(family, 1),
            endpoint_url or f"https://{provider.partner_id}.example/{family}",
        )
        service = catalogue.register_service(uow, AcceptingInspector(), provider, None, data)
        catalogue.change_lifecycle(uow, provider, service.service_id, LifecycleState.PUBLISHED)
        terms = Terms("EUR", Decimal(price), Decimal(fee) if fee else None, quota)
        offering = catalogue.create_offering(
            uow,
            provider,
            service.service_id,
            "Standard",
            None,
            terms,
            Validity(datetime(2020, 1, 1).astimezone(), valid_to),
        )
        uow.commit()
    return offering.offering_id


def contract(
    uow_factory: Callable[[], UnitOfWork],
    requester: Partner,
    offering_id: str,
    validity: Validity | None = None,
) -> ServiceContract:
    with uow_factory() as uow:
        accepted = contracts.accept_offering(uow, requester, offering_id, validity, None)
        uow.commit()
    return accepted


def roaming_agreement(
    uow_factory: Callable[[], UnitOfWork],
    operator: Partner,
    operator_id: str,
    provider_id: str,
    valid_from: datetime,
) -> None:
    """A roaming agreement ``operator`` (owner of ``operator_id``) makes with an EVSP."""
    with uow_factory() as uow:
        contracts.create_roaming_agreement(
            uow, operator, operator_id, provider_id, Validity(valid_from)
        )
        uow.commit()


def published_clm(uow_factory: Callable[[], UnitOfWork], provider: Partner, base_url: str) -> None:
    """The provider's CLM services (ProvideEVSE-MasterData and ProvideEVSEStatusData at the
    paths of tests/fakes/clm_data.py under ``base_url``), registered and published."""
    from tests.fakes.clm_data import MASTERDATA_PATH, STATUS_PATH

    with uow_factory() as uow:
        for family, path in (("evse_masterdata", MASTERDATA_PATH), ("evse_status", STATUS_PATH)):
            data = ServiceData(
                f"{provider.partner_id} CLM {family}",
                ServiceCategory.VALUE_ADDED,
                InterfaceRef(family, 1),
                base_url + path,
            )
            service = catalogue.register_service(uow, AcceptingInspector(), provider, None, data)
            catalogue.change_lifecycle(uow, provider, service.service_id, LifecycleState.PUBLISHED)
        uow.commit()
