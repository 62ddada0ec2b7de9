"""Marketplace service family: services (registration, lifecycle, catalogue) and offerings.

Thin on purpose, like endpoints/marketplace/service.py: decode spyne objects into domain
values, call the domain use case inside one unit of work, commit, encode. Rules live in
domain/marketplace/catalogue.py. Every committed change of services or offerings drops the
SRV 1967 cache of this process (``validator.invalidate()``) so it answers at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spyne import DateTime, Integer, ServiceBase, Unicode, rpc

from domain.marketplace import catalogue as uc
from domain.marketplace.model import (
    InterfaceRef,
    LifecycleState,
    Offering,
    OfferingStatus,
    Quota,
    Service,
    ServiceCategory,
    ServiceData,
    Terms,
    Validity,
)
from domain.marketplace.partners import DEFAULT_PAGE_SIZE, Page
from endpoints.marketplace.messages import (
    AcknowledgementType,
    CallQuotaType,
    FamilyFilterType,
    InterfaceRefType,
    OfferingTermsType,
    OfferingType,
    PageInfoType,
    PageRequestType,
    ServiceDataType,
    ServiceType,
    ValidityType,
)
from gembus.context import RequestContext

# ------------------------------------------------------------------ helpers shared by the family


def request_of(ctx: Any) -> RequestContext:
    request: RequestContext = ctx.udc.request
    return request


def page_of(paging: PageRequestType | None) -> Page:
    return Page(
        (paging.page if paging and paging.page else 1),
        (paging.pageSize if paging and paging.pageSize else DEFAULT_PAGE_SIZE),
    )


def page_info(page: Page, total: int) -> PageInfoType:
    return PageInfoType(page=page.number, pageSize=page.size, totalCount=total)


def utc(value: datetime) -> datetime:
    """xs:dateTime without an offset is read as UTC (the contracts say timestamps carry one)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def validity_from(message: ValidityType) -> Validity:
    return Validity(utc(message.validFrom), optional_utc(message.validTo))


def validity_to(validity: Validity) -> ValidityType:
    return ValidityType(validFrom=validity.valid_from, validTo=validity.valid_to)


def interface_to(interface: InterfaceRef) -> InterfaceRefType:
    return InterfaceRefType(family=interface.family, version=interface.version)


def terms_from(message: OfferingTermsType) -> Terms:
    quota = message.callQuota
    return Terms(
        currency=message.currency,
        price_per_call=message.pricePerCall,
        monthly_fee=message.monthlyFee,
        quota=Quota(quota.perDay, quota.perMonth, quota.overrunPricePerCall) if quota else None,
    )


def terms_to(terms: Terms) -> OfferingTermsType:
    quota = terms.quota
    return OfferingTermsType(
        pricePerCall=terms.price_per_call,
        monthlyFee=terms.monthly_fee,
        currency=terms.currency,
        callQuota=CallQuotaType(
            perDay=quota.per_day, perMonth=quota.per_month, overrunPricePerCall=quota.overrun_price
        )
        if quota
        else None,
    )


# ------------------------------------------------------------------------------ encode / decode


def _data_from(message: ServiceDataType) -> ServiceData:
    return ServiceData(
        name=message.name,
        category=ServiceCategory(message.category),
        interface=InterfaceRef(message.serviceInterface.family, message.serviceInterface.version),
        endpoint_url=message.endpointUrl,
        description=message.description,
    )


def service_to(service: Service) -> ServiceType:
    data = service.data
    return ServiceType(
        serviceId=service.service_id,
        providerPartnerId=service.provider_id,
        state=service.state.value,
        data=ServiceDataType(
            name=data.name,
            category=data.category.value,
            serviceInterface=interface_to(data.interface),
            endpointUrl=data.endpoint_url,
            description=data.description,
        ),
        createdAt=service.created_at,
        updatedAt=service.updated_at,
    )


def offering_to(offering: Offering, now: datetime) -> OfferingType:
    return OfferingType(
        offeringId=offering.offering_id,
        serviceId=offering.service_id,
        providerPartnerId=offering.provider_id,
        name=offering.name,
        description=offering.description,
        terms=terms_to(offering.terms),
        validity=validity_to(offering.validity),
        status=offering.status_at(now).value,
        createdAt=offering.created_at,
    )


class MarketplaceCatalogue(ServiceBase):
    """Services and their lifecycle, the catalogue, offerings (GeM Business Services)."""

    @rpc(Unicode, ServiceDataType, _returns=ServiceType, _out_variable_name="service")
    def RegisterService(
        ctx: Any, providerPartnerId: str | None, data: ServiceDataType
    ) -> ServiceType:
        request = request_of(ctx)
        with request.uow() as uow:
            service = uc.register_service(
                uow, request.shared.inspector, request.actor, providerPartnerId, _data_from(data)
            )
            uow.commit()
        request.shared.validator.invalidate()
        return service_to(service)

    @rpc(Unicode, ServiceDataType, _returns=ServiceType, _out_variable_name="service")
    def UpdateService(ctx: Any, serviceId: str, data: ServiceDataType) -> ServiceType:
        request = request_of(ctx)
        with request.uow() as uow:
            service = uc.update_service(
                uow, request.shared.inspector, request.actor, serviceId, _data_from(data)
            )
            uow.commit()
        request.shared.validator.invalidate()
        return service_to(service)

    @rpc(Unicode, Unicode, Unicode, _returns=ServiceType, _out_variable_name="service")
    def ChangeServiceLifecycle(
        ctx: Any, serviceId: str, targetState: str, reason: str | None
    ) -> ServiceType:
        request = request_of(ctx)
        with request.uow() as uow:
            service = uc.change_lifecycle(
                uow, request.actor, serviceId, LifecycleState(targetState)
            )
            uow.commit()
        request.shared.validator.invalidate()
        request.log.info(
            "service.lifecycle", service_id=serviceId, state=targetState, reason=reason
        )
        return service_to(service)

    @rpc(
        Unicode,
        DateTime,
        Unicode,
        _returns=(
            Unicode(min_occurs=1),
            DateTime(min_occurs=1),
            Integer(min_occurs=1),
            Integer(min_occurs=1),
            AcknowledgementType.customize(min_occurs=1),
        ),
        _out_variable_names=(
            "serviceId",
            "effectiveAt",
            "withdrawnOfferings",
            "terminatedContracts",
            "acknowledgement",
        ),
    )
    def DeregisterService(
        ctx: Any, serviceId: str, effectiveAt: datetime | None, reason: str | None
    ) -> tuple[str, datetime, int, int, AcknowledgementType]:
        request = request_of(ctx)
        when = optional_utc(effectiveAt) or request.now()
        with request.uow() as uow:
            service, withdrawn, terminated = uc.deregister_service(
                uow, request.actor, serviceId, when, reason
            )
            uow.commit()
        request.shared.validator.invalidate()
        return (
            service.service_id,
            when,
            withdrawn,
            terminated,
            AcknowledgementType(messageId=request.message_id, processedAt=request.now()),
        )

    @rpc(Unicode, _returns=ServiceType, _out_variable_name="service")
    def GetService(ctx: Any, serviceId: str) -> ServiceType:
        request = request_of(ctx)
        with request.uow() as uow:
            return service_to(uc.get_service(uow, request.actor, serviceId))

    @rpc(
        Unicode,
        FamilyFilterType,
        Unicode,
        Unicode,
        Unicode,
        PageRequestType,
        _returns=(ServiceType.customize(min_occurs=0, max_occurs=1000), PageInfoType),
        _out_variable_names=("service", "pageInfo"),
    )
    def BrowseCatalogue(
        ctx: Any,
        category: str | None,
        serviceInterface: FamilyFilterType | None,
        providerPartnerId: str | None,
        text: str | None,
        state: str | None,
        paging: PageRequestType | None,
    ) -> tuple[list[ServiceType], PageInfoType]:
        request = request_of(ctx)
        page = page_of(paging)
        with request.uow() as uow:
            services, total = uc.browse_catalogue(
                uow,
                request.actor,
                category=ServiceCategory(category) if category else None,
                family=serviceInterface.family if serviceInterface else None,
                version=serviceInterface.version if serviceInterface else None,
                provider_id=providerPartnerId,
                text=text,
                state=LifecycleState(state) if state else None,
                page=page,
            )
        return [service_to(s) for s in services], page_info(page, total)

    @rpc(
        Unicode,
        Unicode,
        Unicode,
        OfferingTermsType,
        ValidityType,
        _returns=OfferingType,
        _out_variable_name="offering",
    )
    def CreateOffering(
        ctx: Any,
        serviceId: str,
        name: str,
        description: str | None,
        terms: OfferingTermsType,
        validity: ValidityType,
    ) -> OfferingType:
        request = request_of(ctx)
        with request.uow() as uow:
            offering = uc.create_offering(
                uow,
                request.actor,
                serviceId,
                name,
                description,
                terms_from(terms),
                validity_from(validity),
            )
            uow.commit()
        request.shared.validator.invalidate()
        return offering_to(offering, request.now())

    @rpc(Unicode, Unicode, _returns=OfferingType, _out_variable_name="offering")
    def WithdrawOffering(ctx: Any, offeringId: str, reason: str | None) -> OfferingType:
        request = request_of(ctx)
        with request.uow() as uow:
            offering = uc.withdraw_offering(uow, request.actor, offeringId)
            uow.commit()
        request.shared.validator.invalidate()
        request.log.info("offering.withdrawn", offering_id=offeringId, reason=reason)
        return offering_to(offering, request.now())

    @rpc(
        Unicode,
        Unicode,
        Unicode,
        PageRequestType,
        _returns=(OfferingType.customize(min_occurs=0, max_occurs=1000), PageInfoType),
        _out_variable_names=("offering", "pageInfo"),
    )
    def ListOfferings(
        ctx: Any,
        serviceId: str | None,
        providerPartnerId: str | None,
        status: str | None,
        paging: PageRequestType | None,
    ) -> tuple[list[OfferingType], PageInfoType]:
        request = request_of(ctx)
        page = page_of(paging)
        with request.uow() as uow:
            offerings, total = uc.list_offerings(
                uow,
                service_id=serviceId,
                provider_id=providerPartnerId,
                # the contract: "without status only open offerings are returned"
                status=OfferingStatus(status) if status else OfferingStatus.OPEN,
                page=page,
            )
        now = request.now()
        return [offering_to(o, now) for o in offerings], page_info(page, total)
