"""spyne models mirroring xsd/marketplace.xsd and the common types it uses.

Field order follows the XSD sequences (``_type_info`` lists keep it). Inbound messages are
already validated against the canonical XSD before spyne sees them, so the models carry no
patterns of their own; outbound documents are validated in the tests.
"""

from __future__ import annotations

from spyne import ComplexModel, Date, DateTime, Integer, Unicode
from spyne import Decimal as SpyneDecimal

MARKETPLACE_NS = "urn:gembus:marketplace:v1"
COMMON_NS = "urn:gembus:common:v1"
BROKERAGE_NS = "urn:gembus:brokerage:v1"


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


# ----------------------------------------------------------------------------------------------
# Services, offerings, contracts, roaming agreements, usage and billing.
# xs:decimal is written in plain notation ("{:f}"): str(Decimal) may use an exponent ("1E+1"),
# which is not an xs:decimal lexical form.

Amount = SpyneDecimal(str_format="{:f}")


class ValidityType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [("validFrom", DateTime(min_occurs=1)), ("validTo", DateTime)]


class TimePeriodType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [("start", DateTime(min_occurs=1)), ("end", DateTime(min_occurs=1))]


class MoneyType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [("amount", Amount(min_occurs=1)), ("currency", Unicode(min_occurs=1))]


class InterfaceRefType(ComplexModel):
    __namespace__ = BROKERAGE_NS
    _type_info = [("family", Unicode(min_occurs=1)), ("version", Integer(min_occurs=1))]


class FamilyFilterType(ComplexModel):
    __namespace__ = BROKERAGE_NS
    _type_info = [("family", Unicode(min_occurs=1)), ("version", Integer)]


class ServiceDataType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("name", Unicode(min_occurs=1)),
        ("category", Unicode(min_occurs=1)),
        ("serviceInterface", InterfaceRefType.customize(min_occurs=1)),
        ("endpointUrl", Unicode(min_occurs=1)),
        ("description", Unicode),
    ]


class ServiceType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("serviceId", Unicode(min_occurs=1)),
        ("providerPartnerId", Unicode(min_occurs=1)),
        ("state", Unicode(min_occurs=1)),
        ("data", ServiceDataType.customize(min_occurs=1)),
        ("createdAt", DateTime(min_occurs=1)),
        ("updatedAt", DateTime(min_occurs=1)),
    ]


class CallQuotaType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("perDay", Integer),
        ("perMonth", Integer),
        ("overrunPricePerCall", Amount),
    ]


class OfferingTermsType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("pricePerCall", Amount),
        ("monthlyFee", Amount),
        ("currency", Unicode(min_occurs=1)),
        ("callQuota", CallQuotaType),
    ]


class OfferingType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("offeringId", Unicode(min_occurs=1)),
        ("serviceId", Unicode(min_occurs=1)),
        ("providerPartnerId", Unicode(min_occurs=1)),
        ("name", Unicode(min_occurs=1)),
        ("description", Unicode),
        ("terms", OfferingTermsType.customize(min_occurs=1)),
        ("validity", ValidityType.customize(min_occurs=1)),
        ("status", Unicode(min_occurs=1)),
        ("createdAt", DateTime(min_occurs=1)),
    ]


class ServiceContractType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("serviceContractId", Unicode(min_occurs=1)),
        ("offeringId", Unicode(min_occurs=1)),
        ("serviceId", Unicode(min_occurs=1)),
        ("serviceName", Unicode(min_occurs=1)),
        ("serviceInterface", InterfaceRefType.customize(min_occurs=1)),
        ("providerPartnerId", Unicode(min_occurs=1)),
        ("requesterPartnerId", Unicode(min_occurs=1)),
        ("terms", OfferingTermsType.customize(min_occurs=1)),
        ("validity", ValidityType.customize(min_occurs=1)),
        ("status", Unicode(min_occurs=1)),
        ("requesterReference", Unicode),
        ("acceptedAt", DateTime(min_occurs=1)),
        ("terminatedAt", DateTime),
        ("terminatedBy", Unicode),
        ("terminationReason", Unicode),
    ]


class RoamingAgreementType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("roamingAgreementId", Unicode(min_occurs=1)),
        ("operatorId", Unicode(min_occurs=1)),
        ("operatorPartnerId", Unicode(min_occurs=1)),
        ("providerId", Unicode(min_occurs=1)),
        ("providerPartnerId", Unicode(min_occurs=1)),
        ("validity", ValidityType.customize(min_occurs=1)),
        ("status", Unicode(min_occurs=1)),
        ("createdAt", DateTime(min_occurs=1)),
        ("createdBy", Unicode(min_occurs=1)),
        ("terminatedAt", DateTime),
        ("terminatedBy", Unicode),
        ("terminationReason", Unicode),
    ]


class UsageFiguresType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("calls", Integer(min_occurs=1)),
        ("faults", Integer(min_occurs=1)),
        ("overQuotaCalls", Integer(min_occurs=1)),
        ("meanLatencyMs", Amount),
        ("p95LatencyMs", Amount),
    ]


class DailyUsageType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("date", Date(min_occurs=1)),
        ("usage", UsageFiguresType.customize(min_occurs=1)),
    ]


class DailyUsageListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("day", DailyUsageType.customize(min_occurs=1, max_occurs=366))]


class BillingLineType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("lineNumber", Integer(min_occurs=1)),
        ("serviceContractId", Unicode(min_occurs=1)),
        ("serviceId", Unicode(min_occurs=1)),
        ("serviceName", Unicode(min_occurs=1)),
        ("role", Unicode(min_occurs=1)),
        ("counterpartPartnerId", Unicode(min_occurs=1)),
        ("lineType", Unicode(min_occurs=1)),
        ("quantity", Integer(min_occurs=1)),
        ("unitPrice", Amount(min_occurs=1)),
        ("amount", MoneyType.customize(min_occurs=1)),
        ("requesterReference", Unicode),
    ]


class BillingLineListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("line", BillingLineType.customize(min_occurs=1, max_occurs=10000))]


class CurrencyTotalType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [
        ("currency", Unicode(min_occurs=1)),
        ("payable", Amount(min_occurs=1)),
        ("receivable", Amount(min_occurs=1)),
        ("net", Amount(min_occurs=1)),
    ]


class CurrencyTotalListType(ComplexModel):
    __namespace__ = MARKETPLACE_NS
    _type_info = [("total", CurrencyTotalType.customize(min_occurs=1, max_occurs=50))]
