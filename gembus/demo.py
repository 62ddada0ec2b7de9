"""Demo partners for ``make run`` and the README snippet; loading twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from domain.marketplace import partners as uc
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
