"""spyne models mirroring xsd/marketplace.xsd and the common types it uses.

Field order follows the XSD sequences (``_type_info`` lists keep it). Inbound messages are
already validated against the canonical XSD before spyne sees them, so the models carry no
patterns of their own; outbound documents are validated in the tests.
"""

from __future__ import annotations

from spyne import ComplexModel, DateTime, Integer, Unicode

MARKETPLACE_NS = "urn:gembus:marketplace:v1"
COMMON_NS = "urn:gembus:common:v1"


class AddressType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("country", Unicode(min_occurs=1)),
        ("city", Unicode(min_occurs=1)),
        ("postalCode", Unicode),
        ("street", Unicode),
        ("houseNumber", Unicode),
        ("floor", Unicode),
        ("region", Unicode),
        ("timeZone", Unicode),
    ]


class PageRequestType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [("page", Integer), ("pageSize", Integer)]


class PageInfoType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("page", Integer(min_occurs=1)),
        ("pageSize", Integer(min_occurs=1)),
        ("totalCount", Integer(min_occurs=1)),
    ]


class AcknowledgementType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [("messageId", Unicode(min_occurs=1)), ("processedAt", DateTime(min_occurs=1))]


class RoleListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("role", Unicode(min_occurs=1, max_occurs=5))]


class OperatorIdListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("operatorId", Unicode(min_occurs=1, max_occurs=100))]


class ProviderIdListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("providerId", Unicode(min_occurs=1, max_occurs=100))]


class ContactType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("email", Unicode(min_occurs=1)),
        ("telephone", Unicode),
        ("person", Unicode),
    ]


class PartnerDataType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("legalName", Unicode(min_occurs=1)),
        ("roles", RoleListType.customize(min_occurs=1)),
        ("operatorIds", OperatorIdListType),
        ("providerIds", ProviderIdListType),
        ("contact", ContactType.customize(min_occurs=1)),
        ("address", AddressType),
    ]


class PartnerType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("partnerId", Unicode(min_occurs=1)),
        ("status", Unicode(min_occurs=1)),
        ("data", PartnerDataType.customize(min_occurs=1)),
        ("createdAt", DateTime(min_occurs=1)),
        ("updatedAt", DateTime(min_occurs=1)),
    ]
