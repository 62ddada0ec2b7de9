"""Marketplace service family: the partner operations (registration and lookup).

Thin on purpose: decode spyne objects into domain values, call the domain use case inside one
unit of work, commit, encode. Rules live in domain/marketplace/partners.py.
"""

from __future__ import annotations

from typing import Any

from spyne import ServiceBase, Unicode, rpc

from domain.marketplace import partners as uc
from domain.partners import Address, Contact, Partner, PartnerData, PartnerStatus, Role
from endpoints.marketplace.billing import MarketplaceBilling
from endpoints.marketplace.catalogue import MarketplaceCatalogue, page_of, request_of
from endpoints.marketplace.contracts import MarketplaceContracts
from endpoints.marketplace.messages import (
    MARKETPLACE_NS,
    AcknowledgementType,
    AddressType,
    ContactType,
    OperatorIdListType,
    PageInfoType,
    PageRequestType,
    PartnerDataType,
    PartnerType,
    ProviderIdListType,
    RoleListType,
)
from endpoints.marketplace.subscriptions import MarketplaceSubscriptions
from endpoints.spyne_driver import SpyneEndpoint


def _data_from(message: PartnerDataType) -> PartnerData:
    operator_ids, provider_ids = uc.parse_identifiers(
        list(message.operatorIds.operatorId) if message.operatorIds else [],
        list(message.providerIds.providerId) if message.providerIds else [],
    )
    roles = tuple(dict.fromkeys(Role(r) for r in message.roles.role))
    contact = Contact(message.contact.email, message.contact.telephone, message.contact.person)
    return PartnerData(
        legal_name=message.legalName,
        roles=roles,
        contact=contact,
        operator_ids=operator_ids,
        provider_ids=provider_ids,
        address=_address_from(message.address),
    )


def _address_from(message: AddressType | None) -> Address | None:
    if message is None:
        return None
    return Address(
        message.country,
        message.city,
        message.postalCode,
        message.street,
        message.houseNumber,
        message.floor,
        message.region,
        message.timeZone,
    )


def _partner_to(partner: Partner) -> PartnerType:
    data = partner.data
    address = data.address
    return PartnerType(
        partnerId=partner.partner_id,
        status=partner.status.value,
        data=PartnerDataType(
            legalName=data.legal_name,
            roles=RoleListType(role=[r.value for r in data.roles]),
            operatorIds=OperatorIdListType(operatorId=[o.wire for o in data.operator_ids])
            if data.operator_ids
            else None,
            providerIds=ProviderIdListType(providerId=[p.wire for p in data.provider_ids])
            if data.provider_ids
            else None,
            contact=ContactType(
                email=data.contact.email,
                telephone=data.contact.telephone,
                person=data.contact.person,
            ),
            address=AddressType(
                country=address.country,
                city=address.city,
                postalCode=address.postal_code,
                street=address.street,
                houseNumber=address.house_number,
                floor=address.floor,
                region=address.region,
                timeZone=address.time_zone,
            )
            if address
            else None,
        ),
        createdAt=partner.created_at,
        updatedAt=partner.updated_at,
    )


class MarketplacePartners(ServiceBase):
    """Partner registration and lookup (GeM core service "business partner registration")."""

    @rpc(Unicode, PartnerDataType, Unicode, _returns=PartnerType, _out_variable_name="partner")
    def RegisterPartner(
        ctx: Any, partnerId: str, data: PartnerDataType, password: str
    ) -> PartnerType:
        request = request_of(ctx)
        with request.uow() as uow:
            if request.partner is None:  # self-registration: pending until approved
                partner = uc.self_register_partner(
                    uow, request.vault, partnerId, _data_from(data), password
                )
            else:
                partner = uc.register_partner(
                    uow, request.vault, request.actor, partnerId, _data_from(data), password
                )
            uow.commit()
        return _partner_to(partner)

    @rpc(Unicode, PartnerDataType, _returns=PartnerType, _out_variable_name="partner")
    def UpdatePartner(ctx: Any, partnerId: str, data: PartnerDataType) -> PartnerType:
        request = request_of(ctx)
        with request.uow() as uow:
            partner = uc.update_partner(uow, request.actor, partnerId, _data_from(data))
            uow.commit()
        return _partner_to(partner)

    @rpc(Unicode, _returns=PartnerType, _out_variable_name="partner")
    def ApprovePartner(ctx: Any, partnerId: str) -> PartnerType:
        request = request_of(ctx)
        with request.uow() as uow:
            partner = uc.approve_partner(uow, request.actor, partnerId)
            uow.commit()
        return _partner_to(partner)

    @rpc(Unicode, Unicode, _returns=PartnerType, _out_variable_name="partner")
    def DeactivatePartner(ctx: Any, partnerId: str, reason: str | None) -> PartnerType:
        request = request_of(ctx)
        with request.uow() as uow:
            partner = uc.deactivate_partner(uow, request.actor, partnerId)
            uow.commit()
        request.log.info("partner.deactivated", partner_id=partnerId, reason=reason)
        return _partner_to(partner)

    @rpc(Unicode, Unicode, _returns=AcknowledgementType, _out_variable_name="acknowledgement")
    def RotatePartnerCredentials(ctx: Any, partnerId: str, newPassword: str) -> AcknowledgementType:
        request = request_of(ctx)
        with request.uow() as uow:
            uc.rotate_credentials(uow, request.vault, request.actor, partnerId, newPassword)
            uow.commit()
        return AcknowledgementType(messageId=request.message_id, processedAt=request.now())

    @rpc(Unicode, _returns=PartnerType, _out_variable_name="partner")
    def GetPartner(ctx: Any, partnerId: str) -> PartnerType:
        request = request_of(ctx)
        with request.uow() as uow:
            return _partner_to(uc.get_partner(uow, partnerId))

    @rpc(
        Unicode,
        Unicode,
        PageRequestType,
        _returns=(PartnerType.customize(min_occurs=0, max_occurs=1000), PageInfoType),
        _out_variable_names=("partner", "pageInfo"),
    )
    def ListPartners(
        ctx: Any, role: str | None, status: str | None, paging: PageRequestType | None
    ) -> tuple[list[PartnerType], PageInfoType]:
        request = request_of(ctx)
        page = page_of(paging)
        with request.uow() as uow:
            partners, total = uc.list_partners(
                uow, Role(role) if role else None, PartnerStatus(status) if status else None, page
            )
        return [_partner_to(p) for p in partners], PageInfoType(
            page=page.number, pageSize=page.size, totalCount=total
        )


def endpoint() -> SpyneEndpoint:
    return SpyneEndpoint(
        [
            MarketplacePartners,
            MarketplaceCatalogue,
            MarketplaceContracts,
            MarketplaceBilling,
            MarketplaceSubscriptions,
        ],
        MARKETPLACE_NS,
        "Marketplace",
    )
