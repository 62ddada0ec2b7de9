"""Marketplace forms: services, offerings, contracts and roaming agreements.

As in ui.forms, the browser skips the XSD validation the SOAP path applies, so the contract's
simple-type rules (xsd/marketplace.xsd, xsd/common/types.xsd) are checked here first; every
business rule is left to the domain use case, whose error is then shown next to its input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache

from werkzeug.datastructures import MultiDict

from bus.contracts import all_contracts
from domain.marketplace.model import (
    InterfaceRef,
    Quota,
    ServiceCategory,
    ServiceData,
    Terms,
    Validity,
)
from ui.forms import Form

#: cmn:HttpUrlType, cmn:CurrencyCodeType.
HTTP_URL = re.compile(r"https?://\S+")
CURRENCY = re.compile(r"[A-Z]{3}")
#: Lengths: HttpUrlType, NonEmptyString255, NonEmptyString64, Text2000, NonEmptyString64.
URL_LENGTH, NAME_LENGTH, OFFERING_NAME_LENGTH, TEXT_LENGTH, REFERENCE_LENGTH = (
    2000,
    255,
    64,
    2000,
    64,
)
#: cmn:AmountType: xs:decimal with at most 18 digits, 4 after the point.
AMOUNT_DIGITS, AMOUNT_FRACTION = 18, 4

CATEGORY_LABELS = {
    ServiceCategory.CORE: "Core",
    ServiceCategory.CLEARING_HOUSE: "Clearing house",
    ServiceCategory.BASIC_END_USER: "Basic end-user",
    ServiceCategory.VALUE_ADDED: "Value-added",
}


@dataclass(frozen=True)
class InterfaceChoice:
    """One canonical WSDL family a service may claim, as offered in the register form."""

    family: str
    version: int
    namespace: str

    @property
    def value(self) -> str:
        return f"{self.family}:{self.version}"

    @property
    def label(self) -> str:
        return f"{self.family} v{self.version}"


@cache
def interface_choices() -> tuple[InterfaceChoice, ...]:
    """The (family, version) pairs gembus holds a canonical contract for, as the marketplace and
    the inspector name them: wsdl/reservation_v2.wsdl is family reservation, version 2."""
    return tuple(
        InterfaceChoice(contract.family_name, contract.version, contract.target_namespace)
        for _, contract in sorted(all_contracts().items())
    )


#: Domain field paths of the marketplace use cases -> the form inputs that caused them.
MARKET_FIELDS = {
    "data/name": "name",
    "data/category": "category",
    "data/serviceInterface": "interface",
    "data/serviceInterface/family": "interface",
    "data/endpointUrl": "endpointUrl",
    "data/description": "description",
    "terms": "pricePerCall",
    "terms/currency": "currency",
    "terms/callQuota": "quotaPerDay",
    "validity": "validFrom",
    "validity/validFrom": "validFrom",
    "validity/validTo": "validTo",
    "operatorId": "operatorId",
    "providerId": "providerId",
    "requesterReference": "reference",
}


class MarketForm(Form):
    """A Form whose domain errors are placed with the marketplace field mapping, plus the
    itemised details of a long error (the differences of a WSDL that does not match)."""

    def __init__(
        self,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        chosen: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(values or {}, errors or {}, chosen or {})
        self.details: dict[str, list[str]] = {}

    def add_contract_mismatch(self, message: str) -> None:
        """'<url> does not serve the canonical <family> vN contract: a; b; c' becomes the
        sentence next to the endpoint URL and a list of differences to unfold."""
        head, found, rest = message.partition(" contract: ")
        if not found:
            self.error("endpointUrl", message)
            return
        self.error("endpointUrl", f"{head} contract.")
        self.details["endpointUrl"] = [_difference(item) for item in rest.split("; ")]

    def add_market_error(self, field_path: str | None, message: str) -> None:
        bare = re.sub(r"\[\d+\]", "", field_path or "")
        while bare and bare not in MARKET_FIELDS:
            bare = bare.rpartition("/")[0]
        self.error(MARKET_FIELDS.get(bare, "_form"), message)


def _difference(item: str, longest: int = 180) -> str:
    """'/bindings: <canonical> != <served>' with each side cut to a readable length, so the
    start of both (which usually shows the mismatch, e.g. the binding names) stays visible."""
    path, found, values = item.partition(": ")
    canonical, differs, served = values.partition(" != ")
    if not (found and differs):
        return item if len(item) <= 2 * longest else item[: 2 * longest] + " …"

    def cut(text: str) -> str:
        return text if len(text) <= longest else text[:longest] + " …"

    return f"{path}: expected {cut(canonical)} but the endpoint serves {cut(served)}"


def market_form(posted: MultiDict[str, str]) -> MarketForm:
    return MarketForm(Form.from_post(posted).values)


# ------------------------------------------------------------------------- services


def service_form(posted: MultiDict[str, str]) -> tuple[MarketForm, ServiceData | None]:
    """The register-a-service form; ServiceData only when every contract rule holds."""
    form = market_form(posted)
    _text(form, "name", NAME_LENGTH, required=True)
    category = _category(form)
    interface = _interface(form)
    url = form.get("endpointUrl")
    if not HTTP_URL.fullmatch(url) or len(url) > URL_LENGTH:
        form.error(
            "endpointUrl",
            "Enter the http:// or https:// address of the SOAP endpoint."
            if url
            else "This field is required.",
        )
    _text(form, "description", TEXT_LENGTH)
    if not form.valid or category is None or interface is None:
        return form, None
    data = ServiceData(form.get("name"), category, interface, url, form.optional("description"))
    return form, data


def _category(form: MarketForm) -> ServiceCategory | None:
    try:
        return ServiceCategory(form.get("category"))
    except ValueError:
        form.error("category", "Choose a category.")
        return None


def _interface(form: MarketForm) -> InterfaceRef | None:
    chosen = {c.value: c for c in interface_choices()}.get(form.get("interface"))
    if chosen is None:
        form.error("interface", "Choose the WSDL family your endpoint implements.")
        return None
    return InterfaceRef(chosen.family, chosen.version)


# ------------------------------------------------------------------------- offerings


@dataclass(frozen=True)
class OfferingInput:
    name: str
    description: str | None
    terms: Terms
    validity: Validity


def offering_form(posted: MultiDict[str, str]) -> tuple[MarketForm, OfferingInput | None]:
    """Terms and validity of a new offering, typed; whether they are complete and consistent
    (a price or a fee, a quota with a limit) is the domain's rule."""
    form = market_form(posted)
    form.values["currency"] = form.get("currency").upper()
    _text(form, "offeringName", OFFERING_NAME_LENGTH, required=True)
    _text(form, "offeringDescription", TEXT_LENGTH)
    price, fee, overrun = (_amount(form, n) for n in ("pricePerCall", "monthlyFee", "overrun"))
    per_day, per_month = _count(form, "quotaPerDay"), _count(form, "quotaPerMonth")
    if not CURRENCY.fullmatch(form.get("currency")):
        form.error("currency", "Enter the three-letter ISO 4217 code, e.g. EUR.")
    validity = validity_fields(form, default_from=datetime.now(UTC))
    if not form.valid or validity is None:
        return form, None
    quota = None
    if any(v is not None for v in (per_day, per_month, overrun)):
        quota = Quota(per_day, per_month, overrun)
    terms = Terms(form.get("currency"), price, fee, quota)
    found = OfferingInput(
        form.get("offeringName"), form.optional("offeringDescription"), terms, validity
    )
    return form, found


def _amount(form: MarketForm, name: str) -> Decimal | None:
    text = form.get(name).replace(",", ".")
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        form.error(name, "Enter an amount such as 0.0025.")
        return None
    exponent = amount.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > AMOUNT_FRACTION or len(amount.as_tuple().digits) > AMOUNT_DIGITS:
        form.error(name, f"Use at most {AMOUNT_FRACTION} decimal places.")
        return None
    if amount < 0:
        form.error(name, "Prices cannot be negative.")
        return None
    return amount


def _count(form: MarketForm, name: str) -> int | None:
    text = form.get(name)
    if not text:
        return None
    if not text.isdecimal() or int(text) < 1:
        form.error(name, "Enter a whole number of calls, at least 1.")
        return None
    return int(text)


# ------------------------------------------------------------------------- validity


def validity_fields(form: Form, *, default_from: datetime | None) -> Validity | None:
    """validFrom/validTo date inputs as a UTC half-open window (a day starts at 00:00 UTC).

    An empty "from" means ``default_from`` (now); an empty "to" means open-ended.
    """
    start = _day(form, "validFrom")
    end = _day(form, "validTo")
    if start is None and not form.get("validFrom") and default_from is not None:
        start = default_from
    elif start is None and not form.get("validFrom"):
        form.error("validFrom", "This field is required.")
    if start is None or (end is None and form.get("validTo")):
        return None
    return Validity(start, end)


def _day(form: Form, name: str) -> datetime | None:
    text = form.get(name)
    if not text:
        return None
    try:
        return datetime.combine(date.fromisoformat(text), time.min, UTC)
    except ValueError:
        form.error(name, "Enter a date as YYYY-MM-DD.")
        return None


# ------------------------------------------------------------------------- contracts, agreements


def reference_field(posted: MultiDict[str, str]) -> tuple[MarketForm, str | None]:
    """The requester's own reference (e.g. a purchase order number) for a new contract."""
    form = market_form(posted)
    _text(form, "reference", REFERENCE_LENGTH)
    return form, form.optional("reference")


def reason_field(posted: MultiDict[str, str]) -> tuple[MarketForm, str | None]:
    form = market_form(posted)
    _text(form, "reason", TEXT_LENGTH)
    return form, form.optional("reason")


def agreement_form(posted: MultiDict[str, str]) -> tuple[MarketForm, Validity | None]:
    """Operator ID, provider ID and validity; the IDs' syntax and owners are the domain's."""
    form = market_form(posted)
    form.values["operatorId"] = form.get("operatorId").upper()
    form.values["providerId"] = form.get("providerId").upper()
    for name in ("operatorId", "providerId"):
        if not form.get(name):
            form.error(name, "This field is required.")
    validity = validity_fields(form, default_from=datetime.now(UTC))
    return form, validity if form.valid else None


def _text(form: Form, name: str, longest: int, *, required: bool = False) -> None:
    if required and not form.get(name):
        form.error(name, "This field is required.")
    elif len(form.get(name)) > longest:
        form.error(name, f"Use at most {longest} characters.")
