"""Demo partners for ``make run`` and the README snippet; loading twice changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from bus.contracts import contract_for_interface
from domain.marketplace import catalogue, contracts
from domain.marketplace import partners as uc
from domain.marketplace.model import (
    InterfaceRef,
    LifecycleState,
    Quota,
    ServiceCategory,
    ServiceData,
    Terms,
    Validity,
)
from domain.partners import Contact, PartnerData, Role
from domain.ports import PasswordVault, UnitOfWork


@dataclass(frozen=True)
class DemoPartner:
    partner_id: str
    password: str
    legal_name: str
    roles: tuple[Role, ...]
    operator_ids: tuple[str, ...] = ()
    provider_ids: tuple[str, ...] = ()


DEMO_PARTNERS = (
    DemoPartner(
        "gembus-admin",
        "demo-admin-password",
        "gembus Marketplace Operator",
        (Role.MARKETPLACE_OPERATOR,),
    ),
    DemoPartner(
        "ice-charging",
        "demo-operator-password",
        "ICE Charging GmbH",
        (Role.EVSE_OPERATOR,),
        operator_ids=("DE*ICE",),
    ),
    DemoPartner(
        "tnm-mobility",
        "demo-evsp-password",
        "The New Motion B.V.",
        (Role.EVSP,),
        provider_ids=("NL-TNM",),
    ),
    DemoPartner(
        "bmw-emobility",
        "demo-evsp2-password",
        "BMW eMobility Services",
        (Role.EVSP, Role.EVSE_OPERATOR),
        operator_ids=("DE*BMW",),
        provider_ids=("DE-BMW",),
    ),
    DemoPartner("enel-dso", "demo-dso-password", "Enel Distribuzione", (Role.DSO,)),
    DemoPartner(
        "navi-search", "demo-search-password", "Navi Search Services", (Role.SEARCH_PROVIDER,)
    ),
)


def load(uow_factory: type[UnitOfWork] | object, vault: PasswordVault) -> list[tuple[str, bool]]:
    """Register every demo partner that is missing; returns (partner_id, created) pairs."""
    results = []
    for demo in DEMO_PARTNERS:
        with uow_factory() as uow:  # type: ignore[operator]
            if uow.partners.get(demo.partner_id) is not None:
                results.append((demo.partner_id, False))
                continue
            uc.register_partner(
                uow, vault, uc.SYSTEM_ACTOR, demo.partner_id, _data(demo), demo.password
            )
            uow.commit()
            results.append((demo.partner_id, True))
    return results


def _data(demo: DemoPartner) -> PartnerData:
    operators, providers = uc.parse_identifiers(demo.operator_ids, demo.provider_ids)
    email = f"ops@{demo.partner_id}.example"
    return PartnerData(demo.legal_name, demo.roles, Contact(email), operators, providers)


__all__ = ["DEMO_PARTNERS", "DemoPartner", "UnitOfWork", "load"]


class OwnContractInspector:
    """gembus's own endpoints serve the canonical WSDLs by construction (proven by the e2e
    conformance test), so registering them needs no fetch, only a known family."""

    def known(self, interface: InterfaceRef) -> bool:
        return contract_for_interface(interface.family, interface.version) is not None

    def differences(self, endpoint_url: str, interface: InterfaceRef) -> list[str]:
        return []


#: gembus's own services in the demo catalogue, offered by the marketplace operator.
OWN_SERVICES = (
    ("Search EVSE", "evse_search", ServiceCategory.BASIC_END_USER, "0.002", None),
    (
        "Contract Validation (SRV 1967)",
        "contract_validation",
        ServiceCategory.CORE,
        "0.000",
        "0.00",
    ),
    ("Roaming authorization", "authorization", ServiceCategory.CLEARING_HOUSE, "0.010", "50.00"),
    ("SDR forwarding", "sdr", ServiceCategory.CLEARING_HOUSE, "0.005", "50.00"),
)


def load_marketplace(uow_factory: Callable[[], UnitOfWork], base_url: str) -> list[str]:
    """Publish gembus's own services with an offering each; tnm-mobility signs two of them and
    ice-charging and tnm-mobility have a roaming agreement. Idempotent."""
    with uow_factory() as uow:
        admin = uow.partners.get("gembus-admin")
        found, _ = (
            catalogue.browse_catalogue(uow, admin, provider_id="gembus-admin") if admin else ([], 0)
        )
    if admin is None or found:
        return []
    done = []
    for name, family, category, price, fee in OWN_SERVICES:
        with uow_factory() as uow:
            data = ServiceData(
                name,
                category,
                InterfaceRef(family, 1),
                f"{base_url}/services/{family}",
                f"gembus {name}, served at /services/{family}",
            )
            service = catalogue.register_service(uow, OwnContractInspector(), admin, None, data)
            catalogue.change_lifecycle(uow, admin, service.service_id, LifecycleState.PUBLISHED)
            terms = Terms(
                "EUR", Decimal(price), Decimal(fee) if fee else None, Quota(per_day=10_000)
            )
            offering = catalogue.create_offering(
                uow, admin, service.service_id, "Standard", None, terms, Validity(datetime.now(UTC))
            )
            uow.commit()
        done.append(f"service {service.service_id} {family} (offering {offering.offering_id})")
        if family in ("evse_search", "authorization"):
            with uow_factory() as uow:
                tnm = uow.partners.get("tnm-mobility")
                assert tnm is not None
                signed = contracts.accept_offering(uow, tnm, offering.offering_id, None, "demo")
                uow.commit()
            done.append(f"contract {signed.contract_id} tnm-mobility -> {family}")
    with uow_factory() as uow:
        ice = uow.partners.get("ice-charging")
        assert ice is not None
        if uow.marketplace.agreements_between("DEICE", "NLTNM"):
            return done
        agreement = contracts.create_roaming_agreement(
            uow, ice, "DE*ICE", "NL-TNM", Validity(datetime.now(UTC))
        )
        uow.commit()
    done.append(f"roaming agreement {agreement.agreement_id} DE*ICE <-> NL-TNM")
    return done
