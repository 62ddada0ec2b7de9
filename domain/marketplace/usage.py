"""Usage reports and billing statements from the calls metered under service contracts.

Amounts are Decimal, each line rounded half-up to the currency's minor unit; currencies are
never mixed. A month's statement is provisional until the month has ended.
"""

from __future__ import annotations

import calendar
import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from domain.clearing.currencies import minor_units
from domain.marketplace.contracts import load_contract
from domain.marketplace.model import AgreementStatus, Quota, ServiceContract, UsageCall
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from gembus.errors import InvalidPeriodError, NotAuthorizedError, NotFoundError

MAX_REPORT_DAYS = 366


def over_quota(uow: UnitOfWork, contract_id: str, quota: Quota | None, at: datetime) -> bool:
    """Whether a call at ``at`` would exceed the contract's daily or monthly quota.

    The one quota rule: the gateway refuses such a call (or bills the overrun price) and the
    local-call meter flags it.
    """
    if quota is None:
        return False
    day = datetime.combine(at.astimezone(UTC).date(), datetime.min.time(), UTC)
    if quota.per_day is not None and (
        uow.marketplace.count_calls(contract_id, day, day + timedelta(days=1)) >= quota.per_day
    ):
        return True
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return quota.per_month is not None and (
        uow.marketplace.count_calls(contract_id, month, next_month) >= quota.per_month
    )


@dataclass(frozen=True)
class UsageFigures:
    calls: int
    faults: int
    over_quota: int
    mean_latency_ms: Decimal | None
    p95_latency_ms: Decimal | None


@dataclass(frozen=True)
class UsageReport:
    contract: ServiceContract
    start: datetime
    end: datetime
    total: UsageFigures
    days: tuple[tuple[date, UsageFigures], ...]
    generated_at: datetime


def figures(calls: list[UsageCall]) -> UsageFigures:
    """Counts plus mean and nearest-rank p95 latency of a set of calls."""
    latencies = sorted(c.latency_ms for c in calls if c.latency_ms is not None)
    p95 = latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)] if latencies else None
    mean = sum(latencies) / len(latencies) if latencies else None
    return UsageFigures(
        len(calls),
        sum(1 for c in calls if c.fault_code),
        sum(1 for c in calls if c.over_quota),
        _ms(mean),
        _ms(p95),
    )


def _ms(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(round(value, 3)))


def usage_report(
    uow: UnitOfWork, actor: Partner, contract_id: str, start: datetime, end: datetime
) -> UsageReport:
    """Whole UTC days of usage; only the contract's parties (and the operator) may read it."""
    contract = load_contract(uow, actor, contract_id)
    start_day = datetime.combine(start.astimezone(UTC).date(), datetime.min.time(), UTC)
    end_day = datetime.combine(
        (end.astimezone(UTC) - timedelta(microseconds=1)).date(), datetime.min.time(), UTC
    ) + timedelta(days=1)
    if end <= start:
        raise InvalidPeriodError("the period must end after it starts", field="period/end")
    if (end_day - start_day).days > MAX_REPORT_DAYS:
        raise InvalidPeriodError(f"a report covers at most {MAX_REPORT_DAYS} days", field="period")
    calls = uow.marketplace.calls(contract_id, start_day, end_day)
    per_day: dict[date, list[UsageCall]] = defaultdict(list)
    for call in calls:
        per_day[call.at.astimezone(UTC).date()].append(call)
    # one row per day of the period, days without calls included (xsd/marketplace.xsd)
    all_days = (start_day.date() + timedelta(days=n) for n in range((end_day - start_day).days))
    days = tuple((day, figures(per_day[day])) for day in all_days)
    return UsageReport(contract, start_day, end_day, figures(calls), days, datetime.now(UTC))


@dataclass(frozen=True)
class BillingLine:
    number: int
    contract: ServiceContract
    service_name: str
    role: str  # "requester" (payable) or "provider" (receivable)
    counterpart: str
    line_type: str  # callCharge | monthlyFee | quotaOverrun
    quantity: int
    unit_price: Decimal
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    payable: Decimal
    receivable: Decimal

    @property
    def net(self) -> Decimal:
        return self.receivable - self.payable


@dataclass(frozen=True)
class BillingStatement:
    statement_id: str
    partner_id: str
    month: str  # YYYY-MM
    final: bool
    lines: tuple[BillingLine, ...]
    totals: tuple[CurrencyTotal, ...]
    generated_at: datetime

    def to_csv(self) -> str:
        """The statement as CSV (one row a line, then one row a currency total)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "line",
                "serviceContractId",
                "serviceId",
                "serviceName",
                "role",
                "counterpartPartnerId",
                "lineType",
                "quantity",
                "unitPrice",
                "amount",
                "currency",
            ]
        )
        for line in self.lines:
            writer.writerow(
                [
                    line.number,
                    line.contract.contract_id,
                    line.contract.service_id,
                    line.service_name,
                    line.role,
                    line.counterpart,
                    line.line_type,
                    line.quantity,
                    line.unit_price,
                    line.amount,
                    line.currency,
                ]
            )
        for total in self.totals:
            writer.writerow(["total", "", "", "", "", "", "net", "", "", total.net, total.currency])
        return out.getvalue()


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's ISO 4217 minor unit (2 for a code not in use: the contract's
    terms only require three letters)."""
    minor = minor_units(currency)
    minor = 2 if minor is None else minor
    return amount.quantize(Decimal(1).scaleb(-minor), rounding=ROUND_HALF_UP)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        year, number = (int(p) for p in month.split("-")[:2])
        start = datetime(year, number, 1, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidPeriodError(f"{month!r} is not a month (YYYY-MM)", field="month") from exc
    days = calendar.monthrange(year, number)[1]
    return start, start + timedelta(days=days)


def billing_statement(
    uow: UnitOfWork, actor: Partner, partner_id: str, month: str, now: datetime | None = None
) -> BillingStatement:
    """Calls x price + monthly fees + quota overruns of every contract live in the month."""
    if actor.partner_id != partner_id and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError("a partner sees only its own statement", field="partnerId")
    if uow.partners.get(partner_id) is None:
        raise NotFoundError("Partner", f"no partner {partner_id}", field="partnerId")
    now = now or datetime.now(UTC)
    start, end = month_bounds(month)
    if start > now:
        raise InvalidPeriodError(f"{month} has not begun", field="month")
    contracts = uow.marketplace.contracts_of(
        partner_id, as_requester=True, as_provider=True, service_id=None, counterpart=None
    )
    lines: list[BillingLine] = []
    for contract in contracts:
        if not _live_in(contract, start, end):
            continue
        service = uow.marketplace.get_service(contract.service_id)
        name = service.data.name if service else contract.service_id
        calls = uow.marketplace.calls(contract.contract_id, start, end)
        lines += _contract_lines(contract, partner_id, name, calls, len(lines))
    return BillingStatement(
        f"bs-{partner_id}-{month}", partner_id, month, now >= end, tuple(lines), _totals(lines), now
    )


def _live_in(contract: ServiceContract, start: datetime, end: datetime) -> bool:
    """The contract was in force at some moment of [start, end)."""
    begins = contract.validity.valid_from
    ends = min(filter(None, (contract.validity.valid_to, contract.terminated_at)), default=None)
    return (
        begins < end
        and (ends is None or ends > start)
        and contract.status_at(begins) is not AgreementStatus.TERMINATED
    )


def _contract_lines(
    contract: ServiceContract,
    partner_id: str,
    service_name: str,
    calls: list[UsageCall],
    numbered: int,
) -> Iterable[BillingLine]:
    terms = contract.terms
    role = "requester" if contract.requester_id == partner_id else "provider"
    counterpart = contract.provider_id if role == "requester" else contract.requester_id
    over = sum(1 for c in calls if c.over_quota)
    items: list[tuple[str, int, Decimal]] = []
    if terms.monthly_fee is not None:
        items.append(("monthlyFee", 1, terms.monthly_fee))
    if terms.price_per_call is not None and len(calls) - over:
        items.append(("callCharge", len(calls) - over, terms.price_per_call))
    overrun = terms.quota.overrun_price if terms.quota else None
    if over and overrun is not None:
        items.append(("quotaOverrun", over, overrun))
    for offset, (kind, quantity, price) in enumerate(items, 1):
        yield BillingLine(
            numbered + offset,
            contract,
            service_name,
            role,
            counterpart,
            kind,
            quantity,
            price,
            round_money(price * quantity, terms.currency),
            terms.currency,
        )


def _totals(lines: list[BillingLine]) -> tuple[CurrencyTotal, ...]:
    payable: dict[str, Decimal] = defaultdict(Decimal)
    receivable: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        (payable if line.role == "requester" else receivable)[line.currency] += line.amount
    currencies = sorted(set(payable) | set(receivable))
    return tuple(CurrencyTotal(c, payable[c], receivable[c]) for c in currencies)
