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


#: Customer contracts the demo EVSPs keep at the clearing house (stored-list authorization):
#: (EVSP partner, provider ID, contract ID, status, RFID UID or None, entitled services).
DEMO_CUSTOMER_CONTRACTS = (
    ("tnm-mobility", "NL-TNM", "NL-TNM-000122045-U", "active", "4F2A19C3", True),
    ("tnm-mobility", "NL-TNM", "NL-TNM-C00000001-Q", "active", "04A2B3C4D5E680", False),
    ("tnm-mobility", "NL-TNM", "NL-TNM-C00000002-N", "blocked", "0A0B0C0D", False),
    ("bmw-emobility", "DE-BMW", "DE*BMW*0010LY*3", "active", "B0B0B0B0", False),
)


def load_customer_contracts(uow_factory: Callable[[], UnitOfWork]) -> list[str]:
    """Upload the demo EVSPs' customer contracts through the real use case (a full upload
    per provider with a fixed uploadId: loading twice is answered ``duplicate``)."""
    from domain.clearing.customer_contracts import (
        ContractStatus,
        CustomerContract,
        EntitledService,
        LocalizedText,
        Token,
        UploadMode,
        UploadRequest,
        upload_customer_contracts,
    )

    extras = (
        EntitledService("charging"),
        EntitledService(
            "reservation", "Reservation", (LocalizedText("Charge point reservation", "en"),)
        ),
        EntitledService("valueAddedService", "Co2Reporting"),
    )
    validity = Validity(datetime(2024, 1, 1, tzinfo=UTC), datetime(2036, 1, 1, tzinfo=UTC))
    done = []
    for partner_id, provider_id in (("tnm-mobility", "NL-TNM"), ("bmw-emobility", "DE-BMW")):
        contracts = tuple(
            CustomerContract(
                contract_id,
                ContractStatus(status),
                validity,
                (Token(uid, "rfid", "mifareCls", "plain"),) if uid else (),
                None,
                extras if rich else None,
            )
            for evsp, provider, contract_id, status, uid, rich in DEMO_CUSTOMER_CONTRACTS
            if evsp == partner_id and provider == provider_id
        )
        request = UploadRequest(provider_id, UploadMode.FULL, contracts, upload_id="demo-v1")
        with uow_factory() as uow:
            actor = uow.partners.get(partner_id)
            if actor is None:
                continue
            outcome = upload_customer_contracts(uow, actor, request, datetime.now(UTC))
            uow.commit()
        done.append(
            f"customer contracts {provider_id}: {outcome.status.value}, "
            f"{outcome.stored_total} stored"
        )
    return done


#: The demo SDRs: ICE Charging's sessions for customers of The New Motion, which pulls them.
DEMO_SDRS = (("DEICEDEMO000001", "21.340", "7.4690"), ("DEICEDEMO000002", "9.500", "3.3250"))

_DEMO_SDR = (
    '<s:sdr xmlns:s="urn:gembus:sdr:v1" xmlns:rm="urn:gembus:roaming:v1" '
    'xmlns:cmn="urn:gembus:common:v1"><rm:sdrId>{sdr_id}</rm:sdrId>'
    "<rm:evseId>DE*ICE*E123456*7</rm:evseId><rm:token><cmn:instance>4F2A19C3</cmn:instance>"
    "<cmn:tokenType>rfid</cmn:tokenType></rm:token><rm:contractId>NL-TNM-000122045-U"
    "</rm:contractId><rm:status>new</rm:status><rm:startDateTime>{start}</rm:startDateTime>"
    "<rm:endDateTime>{end}</rm:endDateTime><rm:duration>000:01:00</rm:duration>"
    "<rm:chargePointAddress><cmn:country>DE</cmn:country><cmn:city>Berlin</cmn:city>"
    "<cmn:street>Invalidenstrasse</cmn:street><cmn:houseNumber>117</cmn:houseNumber>"
    "</rm:chargePointAddress><rm:chargePointType>AC</rm:chargePointType><rm:connectorType>"
    "<rm:connectorStandard>IEC_62196_T2</rm:connectorStandard><rm:connectorFormat>Socket"
    "</rm:connectorFormat></rm:connectorType><rm:chargingPeriods><rm:chargingPeriod>"
    "<rm:startDateTime>{start}</rm:startDateTime><rm:endDateTime>{end}</rm:endDateTime>"
    "<rm:billingItem>energy</rm:billingItem><rm:billingValue>{kwh}</rm:billingValue>"
    "<rm:itemPrice>0.3500</rm:itemPrice><rm:periodCost>{cost}</rm:periodCost>"
    "</rm:chargingPeriod></rm:chargingPeriods><rm:totalCost>{cost}</rm:totalCost>"
    "<rm:currency>EUR</rm:currency></s:sdr>"
)


#: Demo EVSEs per operator of the demo partners, around German cities (loading twice
#: replaces them with the same set: a full load).
DEMO_EVSES = (("DE*ICE", 60, 1), ("DE*BMW", 30, 2))


def load_evses(uow_factory: Callable[[], UnitOfWork]) -> list[str]:
    """EVSEs of the demo operators, with live status, through the real use cases."""
    from domain.charging.master_data import Action, apply_records
    from domain.charging.status import StatusUpdate, apply_statuses
    from domain.identifiers import OperatorId
    from gembus.evse_dataset import generate

    now = datetime.now(UTC)
    lines = []
    for operator_wire, count, seed in DEMO_EVSES:
        made = list(generate(count, seed, now, operators=(operator_wire,), countries=("DE",)))
        operator = OperatorId.parse(operator_wire)
        updates = [StatusUpdate(g.record.evse_id.wire, g.status) for g in made]
        with uow_factory() as uow:
            apply_records(uow, operator, Action.FULL_LOAD, [g.record for g in made], now, "demo")
            apply_statuses(uow, operator, updates, now)
            uow.commit()
        lines.append(f"{count} EVSEs of {operator_wire} with live status")
    return lines


def load_sdrs(uow_factory: Callable[[], UnitOfWork]) -> list[str]:
    """Submit the demo SDRs through the real use case, for sessions that began just after the
    demo roaming agreement did (so loading twice is answered ``duplicate``)."""
    from datetime import timedelta

    from lxml import etree

    from domain.clearing.sdr_forwarding import submit_sdrs
    from domain.marketplace.validation import ContractValidator
    from endpoints.sdr.messages import decode_sdr

    with uow_factory() as uow:
        agreements = uow.marketplace.agreements_between("DEICE", "NLTNM")
    if not agreements:
        return []
    begun = min(a.validity.valid_from for a in agreements)
    start = begun.replace(microsecond=0) + timedelta(seconds=1)
    end = start + timedelta(minutes=1)
    records = [
        decode_sdr(
            etree.fromstring(
                _DEMO_SDR.format(
                    sdr_id=sdr_id, start=start.isoformat(), end=end.isoformat(), kwh=kwh, cost=cost
                ).encode()
            ),
            n,
        )
        for n, (sdr_id, kwh, cost) in enumerate(DEMO_SDRS, 1)
    ]
    validator = ContractValidator(uow_factory)

    def agreement(operator_id: str, provider_key: str, at: datetime) -> str | None:
        answer = validator.validate_roaming_agreement(operator_id, provider_key, at)
        return None if answer.valid else answer.reason.value

    with uow_factory() as uow:
        ice = uow.partners.get("ice-charging")
        assert ice is not None
        lines = submit_sdrs(uow, ice, "DE*ICE", records, datetime.now(UTC), agreement)
        uow.commit()
    return [f"SDR {line.sdr_id} {line.outcome.result.value}" for line in lines]
