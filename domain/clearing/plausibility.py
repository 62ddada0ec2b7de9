"""Plausibility of a submitted SDR: the gembus rules of DOMAIN.md 8.2 (OCHP leaves them open).

Every rule is a small function ``(record, facts) -> issues`` and :func:`check` runs them all,
so a record comes back with *every* rule it broke (sdr:PlausibilityIssueType), not only the
first. Rules that need the registry (who owns the contract's provider ID, is there a roaming
agreement) read what the caller looked up into :class:`Facts`; the rules themselves never
touch a database, which keeps each of them a unit test away.

Money is compared in ``Decimal`` after rounding half-up to the currency's minor unit; a
difference above one minor unit (per period, for the total) is implausible.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from domain.clearing.currencies import minor_units
from domain.clearing.sdr import BillingItem, ChargingPeriod, SdrStatus, SdrSubmission, ServiceType
from domain.identifiers import ContractId, EvseId, InvalidIdentifier

#: Clock difference tolerated before a timestamp counts as "in the future".
CLOCK_SKEW = timedelta(minutes=5)
#: sdr:SubmitResultType allows at most 50 issues per record.
MAX_ISSUES = 50


class Rule(enum.StrEnum):
    """sdr:PlausibilityRuleType."""

    SDR_ID_PREFIX_MISMATCH = "SDR_ID_PREFIX_MISMATCH"
    EVSE_UNKNOWN = "EVSE_UNKNOWN"
    EVSE_NOT_SENDERS = "EVSE_NOT_SENDERS"
    CONTRACT_ID_INVALID = "CONTRACT_ID_INVALID"
    CONTRACT_PROVIDER_UNKNOWN = "CONTRACT_PROVIDER_UNKNOWN"
    NO_ROAMING_AGREEMENT = "NO_ROAMING_AGREEMENT"
    END_BEFORE_START = "END_BEFORE_START"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    DURATION_MISMATCH = "DURATION_MISMATCH"
    PERIOD_OUTSIDE_SESSION = "PERIOD_OUTSIDE_SESSION"
    COST_MISMATCH = "COST_MISMATCH"
    TOTAL_COST_MISMATCH = "TOTAL_COST_MISMATCH"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    NEGATIVE_ENERGY = "NEGATIVE_ENERGY"
    NEGATIVE_VALUE = "NEGATIVE_VALUE"
    INVALID_MULTIPLIER = "INVALID_MULTIPLIER"
    SERVICE_TYPE_MISMATCH = "SERVICE_TYPE_MISMATCH"
    STATUS_NOT_SUBMITTABLE = "STATUS_NOT_SUBMITTABLE"
    EMPTY_ELEMENT = "EMPTY_ELEMENT"


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule, with the path of the offending field inside the record."""

    rule: Rule
    field: str | None
    message: str


@dataclass(slots=True)
class Facts:
    """What the rules know beyond the record; looked up once per batch by the use case.

    ``contract`` is None when the contract ID did not parse (``contract_error`` says why);
    ``provider_owner`` is the partner owning the contract's provider ID, None if nobody does;
    ``agreement_error`` is None when a roaming agreement is valid at the session start.
    """

    operator_key: str
    now: datetime
    contract: ContractId | None = None
    contract_error: str | None = None
    provider_owner: str | None = None
    agreement_error: str | None = None


Check = Callable[[SdrSubmission, Facts], Iterator[Issue]]

SUBMITTABLE = frozenset({SdrStatus.NEW, SdrStatus.REVISED, SdrStatus.REJECTED})

#: One-off items: a period may start and end at the same instant.
ONE_OFF = frozenset({BillingItem.SERVICE_FEE, BillingItem.RESERVATION})

#: Which billing items fit which serviceType (absent serviceType = charging).
ITEMS_OF: dict[ServiceType, frozenset[str]] = {
    ServiceType.CHARGING: frozenset(BillingItem),
    ServiceType.PARKING: frozenset({BillingItem.PARKING_TIME, BillingItem.SERVICE_FEE}),
    ServiceType.RESERVATION: frozenset(
        {BillingItem.RESERVATION, BillingItem.RESERVATION_TIME, BillingItem.SERVICE_FEE}
    ),
    ServiceType.VALUE_ADDED_SERVICE: frozenset({BillingItem.SERVICE_FEE, BillingItem.USAGE_TIME}),
}


def check(record: SdrSubmission, facts: Facts) -> list[Issue]:
    """Every rule the record breaks (at most MAX_ISSUES); empty means plausible."""
    issues: list[Issue] = []
    for rule in RULES:
        issues.extend(rule(record, facts))
    return issues[:MAX_ISSUES]


def parse_contract(contract_id: str) -> tuple[ContractId | None, str | None]:
    """The contract ID, or None with the reason (a wrong check digit, an unmapped form)."""
    try:
        return ContractId.parse(contract_id), None
    except InvalidIdentifier as exc:
        return None, str(exc)


# ------------------------------------------------------------------------ identity and route


def sdr_id_prefix(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """The sdrId starts with the submitting operator's ID key (unique CH-wide, DOMAIN.md 7.4)."""
    if not record.sdr_id.startswith(facts.operator_key):
        yield Issue(
            Rule.SDR_ID_PREFIX_MISMATCH,
            "sdrId",
            f"sdrId {record.sdr_id} does not start with the operator ID key {facts.operator_key}",
        )


def submittable_status(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """Operators send new, revised or rejected; every other status is the clearing house's."""
    if record.status not in SUBMITTABLE:
        yield Issue(
            Rule.STATUS_NOT_SUBMITTABLE,
            "status",
            f"status {record.status} is set by the clearing house; send new, revised or rejected",
        )


def evse_of_sender(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """The EVSE's operator prefix is the submitting operator's (OICP 018)."""
    try:
        evse = EvseId.parse(record.evse_id)
    except InvalidIdentifier as exc:
        yield Issue(Rule.EVSE_UNKNOWN, "evseId", str(exc))
        return
    if evse.operator_key != facts.operator_key:
        yield Issue(
            Rule.EVSE_NOT_SENDERS,
            "evseId",
            f"EVSE {record.evse_id} belongs to operator {evse.operator_key}, "
            f"not {facts.operator_key}",
        )


def contract_and_provider(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """The contract ID is valid, its EVSP is registered and roams with the operator."""
    if facts.contract is None:
        yield Issue(Rule.CONTRACT_ID_INVALID, "contractId", facts.contract_error or "invalid")
        return
    if facts.provider_owner is None:
        yield Issue(
            Rule.CONTRACT_PROVIDER_UNKNOWN,
            "contractId",
            f"no EVSP on the marketplace owns provider ID {facts.contract.provider_key}",
        )
        return
    if facts.agreement_error is not None:
        yield Issue(Rule.NO_ROAMING_AGREEMENT, "contractId", facts.agreement_error)


# ------------------------------------------------------------------------------------ time


def session_times(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """The session ends after it starts, and neither end lies in the future."""
    if record.end <= record.start:
        yield Issue(
            Rule.END_BEFORE_START,
            "endDateTime",
            f"the session ends {record.end_text or record.end.isoformat()}, "
            f"not after its start {record.start_text or record.start.isoformat()}",
        )
    latest = facts.now + CLOCK_SKEW
    for name, value in (("startDateTime", record.start), ("endDateTime", record.end)):
        if value > latest:
            yield Issue(Rule.FUTURE_TIMESTAMP, name, f"{name} {value.isoformat()} is in the future")


def duration(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """``duration`` (hhh:mm:ss), when sent, equals endDateTime - startDateTime to the second."""
    if record.duration is None:
        return
    hours, minutes, seconds = (int(part) for part in record.duration.split(":"))
    stated = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    actual = record.end - record.start
    if stated != actual:
        yield Issue(
            Rule.DURATION_MISMATCH,
            "duration",
            f"duration {record.duration} but the session lasts {_hhhmmss(actual)}",
        )


def periods_inside_session(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """Every period ends after it starts and lies inside startDateTime..endDateTime."""
    for n, period in enumerate(record.periods, 1):
        path = f"chargingPeriods/chargingPeriod[{n}]"
        zero_ok = period.billing_item in ONE_OFF
        if period.end < period.start or (period.end == period.start and not zero_ok):
            yield Issue(
                Rule.END_BEFORE_START,
                f"{path}/endDateTime",
                "the period does not end after it starts",
            )
        if period.start < record.start:
            yield Issue(
                Rule.PERIOD_OUTSIDE_SESSION,
                f"{path}/startDateTime",
                f"Period starts {_text(period.start, period.start_text)}, before the session "
                f"start {_text(record.start, record.start_text)}.",
            )
        if period.end > record.end:
            yield Issue(
                Rule.PERIOD_OUTSIDE_SESSION,
                f"{path}/endDateTime",
                f"Period ends {_text(period.end, period.end_text)}, after the session end "
                f"{_text(record.end, record.end_text)}.",
            )


# ----------------------------------------------------------------------------------- money


def currency(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    if minor_units(record.currency) is None:
        yield Issue(
            Rule.UNKNOWN_CURRENCY, "currency", f"{record.currency} is not an ISO 4217 currency"
        )


def period_costs(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """periodCost = billingValue x itemPrice, within one minor unit."""
    unit = _minor_unit(record.currency)
    for n, period in enumerate(record.periods, 1):
        if period.period_cost is None:
            continue
        expected = period.billing_value * period.item_price
        if abs(_round(expected, unit) - _round(period.period_cost, unit)) > unit:
            yield Issue(
                Rule.COST_MISMATCH,
                f"chargingPeriods/chargingPeriod[{n}]/periodCost",
                f"periodCost {period.period_cost} but {period.billing_value} x "
                f"{period.item_price} = {_round(expected, unit)}",
            )


def total_cost(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """totalCost = the sum of the period costs, within one minor unit per period."""
    if record.total_cost is None:
        return
    unit = _minor_unit(record.currency)
    expected = sum((_cost(p) for p in record.periods), Decimal(0))
    if abs(_round(expected, unit) - _round(record.total_cost, unit)) > unit * len(record.periods):
        yield Issue(
            Rule.TOTAL_COST_MISMATCH,
            "totalCost",
            f"totalCost {record.total_cost} but the periods sum to {_round(expected, unit)}",
        )


def signs(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """Energy is never negative; nor are other quantities, prices or costs."""
    for n, period in enumerate(record.periods, 1):
        path = f"chargingPeriods/chargingPeriod[{n}]"
        if period.billing_value < 0:
            rule = Rule.NEGATIVE_ENERGY if period.billing_item == BillingItem.ENERGY else None
            yield Issue(
                rule or Rule.NEGATIVE_VALUE,
                f"{path}/billingValue",
                f"{period.billing_item} billingValue {period.billing_value} is negative",
            )
        for name, value in (("itemPrice", period.item_price), ("periodCost", period.period_cost)):
            if value is not None and value < 0:
                yield Issue(Rule.NEGATIVE_VALUE, f"{path}/{name}", f"{name} {value} is negative")
    if record.total_cost is not None and record.total_cost < 0:
        yield Issue(Rule.NEGATIVE_VALUE, "totalCost", f"totalCost {record.total_cost} is negative")


def multipliers(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """serviceFee and reservation are one-off: billingValue is the multiplier 1.0."""
    for n, period in enumerate(record.periods, 1):
        if period.billing_item in ONE_OFF and period.billing_value != 1:
            yield Issue(
                Rule.INVALID_MULTIPLIER,
                f"chargingPeriods/chargingPeriod[{n}]/billingValue",
                f"{period.billing_item} needs billingValue 1.0, not {period.billing_value}",
            )


def service_type_items(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """A parking SDR bills no energy, a reservation no parking, and so on."""
    kind = ServiceType(record.service_type or ServiceType.CHARGING)
    allowed = ITEMS_OF[kind]
    for n, period in enumerate(record.periods, 1):
        if period.billing_item not in allowed:
            yield Issue(
                Rule.SERVICE_TYPE_MISMATCH,
                f"chargingPeriods/chargingPeriod[{n}]/billingItem",
                f"a {kind.value} SDR cannot bill {period.billing_item}",
            )


def no_blank_elements(record: SdrSubmission, facts: Facts) -> Iterator[Issue]:
    """OCHP: every field is either valid or omitted; a blank element is neither."""
    for path in record.blank_fields:
        yield Issue(Rule.EMPTY_ELEMENT, path, "the element is blank; omit it instead")


#: The order issues are reported in.
RULES: tuple[Check, ...] = (
    sdr_id_prefix,
    submittable_status,
    evse_of_sender,
    contract_and_provider,
    session_times,
    duration,
    periods_inside_session,
    currency,
    period_costs,
    total_cost,
    signs,
    multipliers,
    service_type_items,
    no_blank_elements,
)


# --------------------------------------------------------------------------------- helpers


def _minor_unit(code: str) -> Decimal:
    """One minor unit of the currency (0.01 for EUR); cents when the currency is unknown."""
    digits = minor_units(code)
    return Decimal(1).scaleb(-(2 if digits is None else digits))


def _round(value: Decimal, unit: Decimal) -> Decimal:
    return value.quantize(unit, rounding=ROUND_HALF_UP)


def _cost(period: ChargingPeriod) -> Decimal:
    if period.period_cost is not None:
        return period.period_cost
    return period.billing_value * period.item_price


def _text(value: datetime, text: str) -> str:
    return text or value.isoformat()


def _hhhmmss(value: timedelta) -> str:
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    return f"{sign}{total // 3600:03d}:{total % 3600 // 60:02d}:{total % 60:02d}"
