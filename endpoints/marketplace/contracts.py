"""Marketplace service family: service contracts and roaming agreements.

Thin on purpose: decode, one unit of work, commit, drop the SRV 1967 cache of this process,
encode. Rules live in domain/marketplace/contracts.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spyne import DateTime, ServiceBase, Unicode, rpc

from domain.marketplace import contracts as uc
from domain.marketplace.model import AgreementStatus, RoamingAgreement, ServiceContract
from domain.ports import UnitOfWork
from endpoints.marketplace.catalogue import (
    interface_to,
    optional_utc,
    page_info,
    page_of,
    request_of,
    terms_to,
    validity_from,
    validity_to,
)
from endpoints.marketplace.messages import (
    PageInfoType,
    PageRequestType,
    RoamingAgreementType,
    ServiceContractType,
    ValidityType,
)
from gembus.errors import GembusError


def contract_to(uow: UnitOfWork, contract: ServiceContract, now: datetime) -> ServiceContractType:
    """The contract with its service's name and interface (read in the caller's unit of work)."""
    service = uow.marketplace.get_service(contract.service_id)
    if service is None:  # contracts reference services by foreign key
        raise GembusError(f"contract {contract.contract_id} has no service {contract.service_id}")
    return ServiceContractType(
        serviceContractId=contract.contract_id,
        offeringId=contract.offering_id,
        serviceId=contract.service_id,
        serviceName=service.data.name,
        serviceInterface=interface_to(service.data.interface),
        providerPartnerId=contract.provider_id,
        requesterPartnerId=contract.requester_id,
        terms=terms_to(contract.terms),
        validity=validity_to(contract.validity),
        status=contract.status_at(now).value,
        requesterReference=contract.requester_reference,
        acceptedAt=contract.accepted_at,
        terminatedAt=contract.terminated_at,
        terminatedBy=contract.terminated_by,
        terminationReason=contract.termination_reason,
    )


def agreement_to(agreement: RoamingAgreement, now: datetime) -> RoamingAgreementType:
    return RoamingAgreementType(
        roamingAgreementId=agreement.agreement_id,
        operatorId=agreement.operator_id.wire,
        operatorPartnerId=agreement.operator_partner_id,
        providerId=agreement.provider_id.wire,
        providerPartnerId=agreement.provider_partner_id,
        validity=validity_to(agreement.validity),
        status=agreement.status_at(now).value,
        createdAt=agreement.created_at,
        createdBy=agreement.created_by,
        terminatedAt=agreement.terminated_at,
        terminatedBy=agreement.terminated_by,
        terminationReason=agreement.termination_reason,
    )


class MarketplaceContracts(ServiceBase):
    """Service contracts (accepted offerings) and B2B roaming agreements."""

    @rpc(
        Unicode, ValidityType, Unicode, _returns=ServiceContractType, _out_variable_name="contract"
    )
    def AcceptOffering(
        ctx: Any, offeringId: str, validity: ValidityType | None, requesterReference: str | None
    ) -> ServiceContractType:
        request = request_of(ctx)
        with request.uow() as uow:
            contract = uc.accept_offering(
                uow,
                request.actor,
                offeringId,
                validity_from(validity) if validity else None,
                requesterReference,
            )
            encoded = contract_to(uow, contract, request.now())
            uow.commit()
        request.shared.validator.invalidate()
        return encoded

    @rpc(Unicode, DateTime, Unicode, _returns=ServiceContractType, _out_variable_name="contract")
    def TerminateContract(
        ctx: Any, serviceContractId: str, effectiveAt: datetime | None, reason: str | None
    ) -> ServiceContractType:
        request = request_of(ctx)
        with request.uow() as uow:
            contract = uc.terminate_contract(
                uow, request.actor, serviceContractId, optional_utc(effectiveAt), reason
            )
            encoded = contract_to(uow, contract, request.now())
            uow.commit()
        request.shared.validator.invalidate()
        return encoded

    @rpc(
        Unicode,
        Unicode,
        Unicode,
        Unicode,
        PageRequestType,
        _returns=(ServiceContractType.customize(min_occurs=0, max_occurs=1000), PageInfoType),
        _out_variable_names=("contract", "pageInfo"),
    )
    def ListMyContracts(
        ctx: Any,
        role: str | None,
        status: str | None,
        serviceId: str | None,
        counterpartPartnerId: str | None,
        paging: PageRequestType | None,
    ) -> tuple[list[ServiceContractType], PageInfoType]:
        request = request_of(ctx)
        page = page_of(paging)
        now = request.now()
        with request.uow() as uow:
            contracts, total = uc.list_my_contracts(
                uow,
                request.actor,
                role=role,
                status=AgreementStatus(status) if status else None,
                service_id=serviceId,
                counterpart=counterpartPartnerId,
                page=page,
            )
            encoded = [contract_to(uow, c, now) for c in contracts]
        return encoded, page_info(page, total)

    @rpc(Unicode, _returns=ServiceContractType, _out_variable_name="contract")
    def GetContract(ctx: Any, serviceContractId: str) -> ServiceContractType:
        request = request_of(ctx)
        with request.uow() as uow:
            contract = uc.load_contract(uow, request.actor, serviceContractId)
            return contract_to(uow, contract, request.now())

    @rpc(
        Unicode,
        Unicode,
        ValidityType,
        _returns=RoamingAgreementType,
        _out_variable_name="roamingAgreement",
    )
    def CreateRoamingAgreement(
        ctx: Any, operatorId: str, providerId: str, validity: ValidityType
    ) -> RoamingAgreementType:
        request = request_of(ctx)
        with request.uow() as uow:
            agreement = uc.create_roaming_agreement(
                uow, request.actor, operatorId, providerId, validity_from(validity)
            )
            uow.commit()
        request.shared.validator.invalidate()
        return agreement_to(agreement, request.now())

    @rpc(
        Unicode,
        DateTime,
        Unicode,
        _returns=RoamingAgreementType,
        _out_variable_name="roamingAgreement",
    )
    def TerminateRoamingAgreement(
        ctx: Any, roamingAgreementId: str, effectiveAt: datetime | None, reason: str | None
    ) -> RoamingAgreementType:
        request = request_of(ctx)
        with request.uow() as uow:
            agreement = uc.terminate_roaming_agreement(
                uow, request.actor, roamingAgreementId, optional_utc(effectiveAt), reason
            )
            uow.commit()
        request.shared.validator.invalidate()
        return agreement_to(agreement, request.now())

    @rpc(
        Unicode,
        Unicode,
        Unicode,
        PageRequestType,
        _returns=(RoamingAgreementType.customize(min_occurs=0, max_occurs=1000), PageInfoType),
        _out_variable_names=("roamingAgreement", "pageInfo"),
    )
    def ListRoamingAgreements(
        ctx: Any,
        operatorId: str | None,
        providerId: str | None,
        status: str | None,
        paging: PageRequestType | None,
    ) -> tuple[list[RoamingAgreementType], PageInfoType]:
        request = request_of(ctx)
        page = page_of(paging)
        with request.uow() as uow:
            agreements, total = uc.list_roaming_agreements(
                uow,
                request.actor,
                operator_id=operatorId,
                provider_id=providerId,
                status=AgreementStatus(status) if status else None,
                page=page,
            )
        now = request.now()
        return [agreement_to(a, now) for a in agreements], page_info(page, total)
