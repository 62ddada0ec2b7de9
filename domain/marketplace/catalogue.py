"""Services and offerings: what providers sell on the marketplace (GeM Business Services).

A provider registers a service in ``draft``, the contract it claims is checked against the
canonical WSDL of its family, then it is published, offered under terms, deprecated and
retired. Only the provider (or the marketplace operator) changes its own services.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from domain.marketplace.model import (
    InterfaceRef,
    LifecycleState,
    Offering,
    OfferingStatus,
    Service,
    ServiceCategory,
    ServiceData,
    Terms,
    Validity,
)
from domain.marketplace.partners import Page
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from gembus.errors import (
    ClientError,
    InvalidPeriodError,
    InvalidStateError,
    NotAuthorizedError,
    NotFoundError,
)

CACHE_COUNTER = "marketplace"  # bumped by every change SRV 1967's cache depends on


class ContractMismatchError(ClientError):
    fault_code = "Client.ContractMismatch"
    default_message = "the endpoint's WSDL is not the canonical contract it claims"


class InvalidTermsError(ClientError):
    fault_code = "Client.InvalidTerms"
    default_message = "the offering's terms are incomplete or inconsistent"


class ActiveContractsError(ClientError):
    fault_code = "Client.ActiveContracts"
    default_message = "the service still has active contracts"


class ContractInspector(Protocol):
    """Fetches an endpoint's WSDL and lists how it differs from the canonical family contract."""

    def known(self, interface: InterfaceRef) -> bool: ...

    def differences(self, endpoint_url: str, interface: InterfaceRef) -> list[str]: ...


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _require_provider(actor: Partner, provider_id: str) -> None:
    if actor.partner_id != provider_id and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError("only the service's provider may do this", field="serviceId")


def load_service(uow: UnitOfWork, service_id: str, field: str = "serviceId") -> Service:
    service = uow.marketplace.get_service(service_id)
    if service is None:
        raise NotFoundError("Service", f"no service {service_id}", field=field)
    return service


def _check_contract(inspector: ContractInspector, data: ServiceData) -> None:
    if not inspector.known(data.interface):
        raise NotFoundError(
            "Interface",
            f"gembus has no contract {data.interface.family} v{data.interface.version}",
            field="data/serviceInterface/family",
        )
    differences = inspector.differences(data.endpoint_url, data.interface)
    if differences:
        shown = "; ".join(differences[:10]) + (
            f"; and {len(differences) - 10} more" if len(differences) > 10 else ""
        )
        raise ContractMismatchError(
            f"{data.endpoint_url} does not serve the canonical {data.interface.family} "
            f"v{data.interface.version} contract: {shown}",
            field="data/endpointUrl",
        )


def register_service(
    uow: UnitOfWork,
    inspector: ContractInspector,
    actor: Partner,
    provider_id: str | None,
    data: ServiceData,
) -> Service:
    """Register a draft service; the operator may register one on a provider's behalf."""
    provider = provider_id or actor.partner_id
    _require_provider(actor, provider)
    owner = uow.partners.get(provider)
    if owner is None or not owner.is_active:
        raise NotFoundError("Partner", f"no active partner {provider}", field="providerPartnerId")
    _check_contract(inspector, data)
    now = datetime.now(UTC)
    service = Service(new_id("svc"), provider, LifecycleState.DRAFT, data, now, now)
    uow.marketplace.add_service(service)
    return service


def update_service(
    uow: UnitOfWork,
    inspector: ContractInspector,
    actor: Partner,
    service_id: str,
    data: ServiceData,
) -> Service:
    """Replace a service's data; its category and interface change only while in draft."""
    service = load_service(uow, service_id)
    _require_provider(actor, service.provider_id)
    if service.state is LifecycleState.RETIRED:
        raise InvalidStateError("a retired service cannot change", field="serviceId")
    if service.state is not LifecycleState.DRAFT and (
        data.interface != service.data.interface or data.category != service.data.category
    ):
        raise InvalidStateError(
            "category and interface change only in draft", field="data/serviceInterface"
        )
    if data.endpoint_url != service.data.endpoint_url or data.interface != service.data.interface:
        _check_contract(inspector, data)
    updated = replace(service, data=data, updated_at=datetime.now(UTC))
    uow.marketplace.update_service(updated)
    uow.marketplace.bump(CACHE_COUNTER)
    return updated


def change_lifecycle(
    uow: UnitOfWork, actor: Partner, service_id: str, target: LifecycleState
) -> Service:
    """Move one step forward: draft -> published -> deprecated -> retired."""
    service = load_service(uow, service_id)
    _require_provider(actor, service.provider_id)
    if target not in service.state.next_states():
        raise InvalidStateError(
            f"a {service.state} service cannot become {target}", field="targetState"
        )
    now = datetime.now(UTC)
    if target is LifecycleState.RETIRED and any(
        c.status_at(now).value in ("active", "pending")
        for c in uow.marketplace.active_contracts_of_service(service_id)
    ):
        raise ActiveContractsError(
            "terminate its contracts first, or deregister the service", field="serviceId"
        )
    updated = replace(service, state=target, updated_at=now)
    uow.marketplace.update_service(updated)
    uow.marketplace.bump(CACHE_COUNTER)
    return updated


def deregister_service(
    uow: UnitOfWork,
    actor: Partner,
    service_id: str,
    effective_at: datetime | None,
    reason: str | None,
) -> tuple[Service, int, int]:
    """Withdraw a service: offerings withdrawn, contracts terminated, state retired."""
    service = load_service(uow, service_id)
    _require_provider(actor, service.provider_id)
    if service.state is LifecycleState.RETIRED:
        raise InvalidStateError("the service is already retired", field="serviceId")
    when = effective_at or datetime.now(UTC)
    offerings = uow.marketplace.open_offerings_of(service_id)
    for offering in offerings:
        uow.marketplace.update_offering(replace(offering, status=OfferingStatus.WITHDRAWN))
    contracts = uow.marketplace.active_contracts_of_service(service_id)
    for contract in contracts:
        uow.marketplace.update_contract(
            replace(
                contract,
                terminated_at=when,
                terminated_by=actor.partner_id,
                termination_reason=reason or "service deregistered",
            )
        )
    updated = replace(service, state=LifecycleState.RETIRED, updated_at=datetime.now(UTC))
    uow.marketplace.update_service(updated)
    uow.marketplace.bump(CACHE_COUNTER)
    return updated, len(offerings), len(contracts)


def get_service(uow: UnitOfWork, actor: Partner, service_id: str) -> Service:
    """Drafts are visible to their provider and the operator only."""
    service = load_service(uow, service_id)
    if service.state is LifecycleState.DRAFT and not _may_see_drafts(actor, service.provider_id):
        raise NotFoundError("Service", f"no service {service_id}", field="serviceId")
    return service


def _may_see_drafts(actor: Partner, provider_id: str) -> bool:
    return actor.partner_id == provider_id or actor.has_role(Role.MARKETPLACE_OPERATOR)


def browse_catalogue(
    uow: UnitOfWork,
    actor: Partner,
    *,
    category: ServiceCategory | None = None,
    family: str | None = None,
    version: int | None = None,
    provider_id: str | None = None,
    text: str | None = None,
    state: LifecycleState | None = None,
    page: Page | None = None,
) -> tuple[list[Service], int]:
    """Published and deprecated services for everyone; drafts only for their own provider."""
    page = page or Page()
    states = [state] if state else [LifecycleState.PUBLISHED, LifecycleState.DEPRECATED]
    if state is LifecycleState.DRAFT and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        provider_id = actor.partner_id  # a provider browses its own drafts only
    return uow.marketplace.browse(
        category=category,
        family=family,
        version=version,
        provider_id=provider_id,
        text=text,
        states=states,
        page=(page.offset, page.size),
    )


def _check_terms(terms: Terms) -> None:
    if terms.price_per_call is None and terms.monthly_fee is None:
        raise InvalidTermsError("give a price per call, a monthly fee, or both", field="terms")
    prices = [terms.price_per_call, terms.monthly_fee]
    if terms.quota is not None:
        if terms.quota.per_day is None and terms.quota.per_month is None:
            raise InvalidTermsError(
                "a call quota needs perDay or perMonth", field="terms/callQuota"
            )
        prices.append(terms.quota.overrun_price)
    if any(p is not None and p < Decimal(0) for p in prices):
        raise InvalidTermsError("prices cannot be negative", field="terms")


def create_offering(
    uow: UnitOfWork,
    actor: Partner,
    service_id: str,
    name: str,
    description: str | None,
    terms: Terms,
    validity: Validity,
) -> Offering:
    """Offer a draft or published service under terms; only its provider may.

    An offering of a draft service can be accepted once the service is published.
    """
    service = load_service(uow, service_id)
    if actor.partner_id != service.provider_id:
        raise NotAuthorizedError("only the service's provider may offer it", field="serviceId")
    if service.state not in (LifecycleState.DRAFT, LifecycleState.PUBLISHED):
        raise InvalidStateError(f"a {service.state} service cannot be offered", field="serviceId")
    _check_terms(terms)
    if validity.valid_to is not None and validity.valid_to <= validity.valid_from:
        raise InvalidPeriodError("validTo must be after validFrom", field="validity/validTo")
    offering = Offering(
        new_id("off"),
        service_id,
        service.provider_id,
        name,
        terms,
        validity,
        OfferingStatus.OPEN,
        datetime.now(UTC),
        description,
    )
    uow.marketplace.add_offering(offering)
    return offering


def withdraw_offering(uow: UnitOfWork, actor: Partner, offering_id: str) -> Offering:
    offering = load_offering(uow, offering_id)
    if actor.partner_id != offering.provider_id and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError("only the offering's provider may withdraw it", field="offeringId")
    if offering.status is not OfferingStatus.OPEN:
        raise InvalidStateError(f"the offering is {offering.status}", field="offeringId")
    updated = replace(offering, status=OfferingStatus.WITHDRAWN)
    uow.marketplace.update_offering(updated)
    return updated


def load_offering(uow: UnitOfWork, offering_id: str) -> Offering:
    offering = uow.marketplace.get_offering(offering_id)
    if offering is None:
        raise NotFoundError("Offering", f"no offering {offering_id}", field="offeringId")
    return offering


def list_offerings(
    uow: UnitOfWork,
    *,
    service_id: str | None,
    provider_id: str | None,
    status: OfferingStatus | None,
    page: Page,
) -> tuple[list[Offering], int]:
    """Offerings by their status now: an open offering past its validTo lists as expired."""
    if status is None:
        return uow.marketplace.list_offerings(
            service_id=service_id,
            provider_id=provider_id,
            status=None,
            page=(page.offset, page.size),
        )
    stored = OfferingStatus.WITHDRAWN if status is OfferingStatus.WITHDRAWN else OfferingStatus.OPEN
    candidates, _ = uow.marketplace.list_offerings(
        service_id=service_id, provider_id=provider_id, status=stored, page=(0, 100_000)
    )
    now = datetime.now(UTC)
    found = [o for o in candidates if o.status_at(now) is status]
    return found[page.offset : page.offset + page.size], len(found)
