"""Service contracts (a requester accepts an offering) and roaming agreements (operator-EVSP).

Both are bilateral: only their two parties (and the marketplace operator) see or end them.
Every change bumps the marketplace change counter so SRV 1967's caches drop stale answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain.identifiers import OperatorId, ProviderId
from domain.marketplace.catalogue import CACHE_COUNTER, load_offering, load_service, new_id
from domain.marketplace.model import (
    AgreementStatus,
    LifecycleState,
    OfferingStatus,
    RoamingAgreement,
    ServiceContract,
    Validity,
)
from domain.marketplace.partners import Page, parse_identifier
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from gembus.errors import (
    ClientError,
    InvalidPeriodError,
    InvalidStateError,
    NotAuthorizedError,
    NotFoundError,
)


class OverlappingAgreementError(ClientError):
    fault_code = "Client.OverlappingAgreement"
    default_message = "an agreement for this operator and provider already covers the period"


def _check_window(validity: Validity, field: str) -> None:
    if validity.valid_to is not None and validity.valid_to <= validity.valid_from:
        raise InvalidPeriodError("validTo must be after validFrom", field=f"{field}/validTo")


def accept_offering(
    uow: UnitOfWork,
    actor: Partner,
    offering_id: str,
    validity: Validity | None,
    reference: str | None,
) -> ServiceContract:
    """Create the bilateral contract; the offering's terms are copied into it."""
    now = datetime.now(UTC)
    offering = load_offering(uow, offering_id)
    if offering.status_at(now) is not OfferingStatus.OPEN or not (
        offering.validity.contains(now) or offering.validity.valid_from > now
    ):
        raise InvalidStateError(
            f"offering {offering_id} is {offering.status_at(now)}", field="offeringId"
        )
    if actor.partner_id == offering.provider_id:
        raise NotAuthorizedError("a provider cannot accept its own offering", field="offeringId")
    service = load_service(uow, offering.service_id)
    if service.state is not LifecycleState.PUBLISHED:
        raise InvalidStateError(
            f"service {service.service_id} is {service.state}", field="offeringId"
        )
    window = validity or Validity(now)
    _check_window(window, "validity")
    if not offering.validity.contains(window.valid_from):
        raise InvalidPeriodError(
            "the contract must start inside the offering's validity", field="validity/validFrom"
        )
    contract = ServiceContract(
        new_id("sc"),
        offering.offering_id,
        offering.service_id,
        offering.provider_id,
        actor.partner_id,
        offering.terms,
        window,
        now,
        reference,
    )
    uow.marketplace.add_contract(contract)
    uow.marketplace.bump(CACHE_COUNTER)
    return contract


def _not_in_past(effective_at: datetime | None, now: datetime) -> datetime:
    """An end takes effect now or later; a past effectiveAt would rewrite history."""
    if effective_at is not None and effective_at < now - timedelta(seconds=60):
        raise InvalidPeriodError("effectiveAt lies in the past", field="effectiveAt")
    return max(effective_at or now, now)


def load_contract(uow: UnitOfWork, actor: Partner, contract_id: str) -> ServiceContract:
    """A contract exists for its parties and the operator only; others get 'unknown'."""
    contract = uow.marketplace.get_contract(contract_id)
    if contract is None or not (
        contract.party(actor.partner_id) or actor.has_role(Role.MARKETPLACE_OPERATOR)
    ):
        raise NotFoundError("Contract", f"no contract {contract_id}", field="serviceContractId")
    return contract


def terminate_contract(
    uow: UnitOfWork,
    actor: Partner,
    contract_id: str,
    effective_at: datetime | None,
    reason: str | None,
) -> ServiceContract:
    contract = load_contract(uow, actor, contract_id)
    now = datetime.now(UTC)
    if contract.status_at(now) in (AgreementStatus.TERMINATED, AgreementStatus.EXPIRED):
        raise InvalidStateError(
            f"the contract is {contract.status_at(now)}", field="serviceContractId"
        )
    when = _not_in_past(effective_at, now)
    updated = replace(
        contract, terminated_at=when, terminated_by=actor.partner_id, termination_reason=reason
    )
    uow.marketplace.update_contract(updated)
    uow.marketplace.bump(CACHE_COUNTER)
    return updated


def list_my_contracts(
    uow: UnitOfWork,
    actor: Partner,
    *,
    role: str | None,
    status: AgreementStatus | None,
    service_id: str | None,
    counterpart: str | None,
    page: Page,
) -> tuple[list[ServiceContract], int]:
    """The caller's contracts as requester, provider or both; status is evaluated now."""
    now = datetime.now(UTC)
    found = uow.marketplace.contracts_of(
        actor.partner_id,
        as_requester=role in (None, "requester"),
        as_provider=role in (None, "provider"),
        service_id=service_id,
        counterpart=counterpart,
    )
    if status is not None:
        found = [c for c in found if c.status_at(now) is status]
    # the contract's order: acceptedAt descending, then serviceContractId (two stable sorts)
    found = sorted(found, key=lambda c: c.contract_id)
    found.sort(key=lambda c: c.accepted_at, reverse=True)
    return found[page.offset : page.offset + page.size], len(found)


def _parse_party_ids(operator_id: str, provider_id: str) -> tuple[OperatorId, ProviderId]:
    return (
        parse_identifier(OperatorId.parse, operator_id, "operatorId"),
        parse_identifier(ProviderId.parse, provider_id, "providerId"),
    )


def owners(uow: UnitOfWork, operator: OperatorId, provider: ProviderId) -> tuple[str, str]:
    """The partners that own an operator ID and a provider ID, or an UnknownPartner fault."""
    operator_owner = uow.partners.owner_of_identifier("operator", operator.key)
    if operator_owner is None:
        raise NotFoundError(
            "Partner", f"no partner owns operator ID {operator.wire}", field="operatorId"
        )
    provider_owner = uow.partners.owner_of_identifier("provider", provider.key)
    if provider_owner is None:
        raise NotFoundError(
            "Partner", f"no partner owns provider ID {provider.wire}", field="providerId"
        )
    return operator_owner, provider_owner


def create_roaming_agreement(
    uow: UnitOfWork, actor: Partner, operator_id: str, provider_id: str, validity: Validity
) -> RoamingAgreement:
    """Record a B2B roaming agreement; either party (or the operator) may record it."""
    operator, provider = _parse_party_ids(operator_id, provider_id)
    operator_owner, provider_owner = owners(uow, operator, provider)
    if actor.partner_id not in (operator_owner, provider_owner) and not actor.has_role(
        Role.MARKETPLACE_OPERATOR
    ):
        raise NotAuthorizedError("only a party to the agreement may record it", field="operatorId")
    _check_window(validity, "validity")
    now = datetime.now(UTC)
    for existing in uow.marketplace.agreements_between(operator.key, provider.key):
        live = existing.terminated_at is None or existing.terminated_at > validity.valid_from
        if live and existing.validity.overlaps(validity):
            raise OverlappingAgreementError(
                f"agreement {existing.agreement_id} already covers part of the period",
                field="validity",
            )
    agreement = RoamingAgreement(
        new_id("ra"),
        operator,
        operator_owner,
        provider,
        provider_owner,
        validity,
        now,
        actor.partner_id,
    )
    uow.marketplace.add_agreement(agreement)
    uow.marketplace.bump(CACHE_COUNTER)
    return agreement


def terminate_roaming_agreement(
    uow: UnitOfWork,
    actor: Partner,
    agreement_id: str,
    effective_at: datetime | None,
    reason: str | None,
) -> RoamingAgreement:
    agreement = uow.marketplace.get_agreement(agreement_id)
    if agreement is None or not (
        agreement.party(actor.partner_id) or actor.has_role(Role.MARKETPLACE_OPERATOR)
    ):
        raise NotFoundError(
            "RoamingAgreement", f"no roaming agreement {agreement_id}", field="roamingAgreementId"
        )
    now = datetime.now(UTC)
    if agreement.status_at(now) in (AgreementStatus.TERMINATED, AgreementStatus.EXPIRED):
        raise InvalidStateError(
            f"the agreement is {agreement.status_at(now)}", field="roamingAgreementId"
        )
    updated = replace(
        agreement,
        terminated_at=_not_in_past(effective_at, now),
        terminated_by=actor.partner_id,
        termination_reason=reason,
    )
    uow.marketplace.update_agreement(updated)
    uow.marketplace.bump(CACHE_COUNTER)
    return updated


def list_roaming_agreements(
    uow: UnitOfWork,
    actor: Partner,
    *,
    operator_id: str | None,
    provider_id: str | None,
    status: AgreementStatus | None,
    page: Page,
) -> tuple[list[RoamingAgreement], int]:
    """A partner sees the agreements it is party to; the operator sees all."""
    operator_key = _key(OperatorId, operator_id, "operatorId")
    provider_key = _key(ProviderId, provider_id, "providerId")
    party = None if actor.has_role(Role.MARKETPLACE_OPERATOR) else actor.partner_id
    found = uow.marketplace.agreements_of(party, operator_key, provider_key)
    if status is not None:
        now = datetime.now(UTC)
        found = [a for a in found if a.status_at(now) is status]
    return found[page.offset : page.offset + page.size], len(found)


def _key(kind: type[OperatorId] | type[ProviderId], text: str | None, field: str) -> str | None:
    if text is None:
        return None
    parse: Callable[[str], OperatorId | ProviderId] = kind.parse
    return parse_identifier(parse, text, field).key
