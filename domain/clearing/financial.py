"""Financial clearing (DOMAIN.md 4.3): price plans, wholesale amounts, gross and netted lines.

Money rules (xsd/financial_clearing.xsd):

- the wholesale amount of one SDR is computed in Decimal from the price plan valid at the SDR's
  start: ``pricePerSession + pricePerKwh x energy + pricePerMinute x minutes`` (minutes =
  seconds / 60, not rounded), then rounded ONCE, half-up, to the currency's minor unit;
- statement lines and net positions are exact sums of those rounded amounts, so every line can
  be re-added from its items; currencies are never mixed, converted or netted together.

Gross: one line per ordered (debtor, creditor) pair and currency. Netted: per unordered pair and
currency, the difference, owed by whoever still owes after netting (a pair netting to zero has
no line). A party's net position (owed to it minus owed by it) is the same under both
strategies, and the positions of a currency sum to zero: tests check both.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import hashlib
import io
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from domain.clearing.currencies import minor_units
from domain.identifiers import OperatorId, ProviderId
from domain.partners import Partner, Role
from gembus.errors import (
    ClientError,
    ConflictError,
    InvalidPeriodError,
    InvalidValueError,
    NotAuthorizedError,
    NotFoundError,
)

if TYPE_CHECKING:  # domain.ports names the types below
    from domain.marketplace.partners import Page
    from domain.ports import UnitOfWork

ZERO = Decimal(0)


class OverlapError(ClientError):
    fault_code = "Client.Overlap"
    default_message = "the price plan overlaps another plan of the same pair and currency"


class PlanInUseError(ClientError):
    fault_code = "Client.PlanInUse"
    default_message = "the price plan priced an issued statement; end it with a successor"


class Strategy(enum.StrEnum):
    GROSS = "gross"
    NETTED = "netted"


@dataclass(frozen=True)
class Prices:
    """Net unit prices of a plan; at least one is set."""

    per_kwh: Decimal | None = None
    per_minute: Decimal | None = None
    per_session: Decimal | None = None

    def check(self) -> None:
        given = [p for p in (self.per_kwh, self.per_minute, self.per_session) if p is not None]
        if not given:
            raise InvalidValueError("a price plan needs at least one price", field="prices")
        if any(p < 0 for p in given):
            raise InvalidValueError("prices are not negative", field="prices")


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit (ISO 4217)."""
    minor = minor_units(currency)
    if minor is None:
        raise InvalidValueError(f"{currency} is not a currency in use", field="currency")
    return amount.quantize(Decimal(1).scaleb(-minor), rounding=ROUND_HALF_UP)


def wholesale_amount(
    prices: Prices, currency: str, energy_kwh: Decimal | None, start: datetime, end: datetime
) -> Decimal:
    """What one SDR costs its EVSP under ``prices``: unrounded parts, rounded once."""
    seconds = Decimal((end - start).total_seconds())
    amount = (
        (prices.per_session or ZERO)
        + (prices.per_kwh or ZERO) * (energy_kwh or ZERO)
        + (prices.per_minute or ZERO) * seconds / 60  # as the SQL does: multiply, then divide
    )
    return round_money(amount, currency)


@dataclass(frozen=True)
class Window:
    """[valid_from, valid_to); valid_to None is open-ended."""

    valid_from: datetime
    valid_to: datetime | None = None

    def __post_init__(self) -> None:
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise InvalidValueError("validTo must be after validFrom", field="validity")

    def overlaps(self, other: Window) -> bool:
        starts_before_other_ends = other.valid_to is None or self.valid_from < other.valid_to
        ends_after_other_starts = self.valid_to is None or other.valid_from < self.valid_to
        return starts_before_other_ends and ends_after_other_starts

    def contains(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


def place_plan(new: Window, others: Iterable[tuple[str, Window]]) -> dict[str, Window]:
    """Where a new plan of a (operator, provider, service type, currency) may go.

    Returns the windows of ``others`` that must change: an open-ended plan the new one starts
    inside ends at the new validFrom. Any other overlap is Client.Overlap (naming the plan).
    """
    changes: dict[str, Window] = {}
    for plan_id, window in others:
        if not window.overlaps(new):
            continue
        if window.valid_to is None and window.valid_from < new.valid_from:
            changes[plan_id] = Window(window.valid_from, new.valid_from)
            continue
        raise OverlapError(
            f"the validity overlaps price plan {plan_id} ({_span(window)})", field="validity"
        )
    return changes


def _span(window: Window) -> str:
    end = window.valid_to.isoformat() if window.valid_to else "open-ended"
    return f"{window.valid_from.isoformat()} .. {end}"


# ------------------------------------------------------------------------------ statements


@dataclass(frozen=True)
class GrossLine:
    debtor: str
    creditor: str
    currency: str
    amount: Decimal
    sdr_count: int

    @property
    def line_id(self) -> str:
        """Stable across runs and short whatever the partner IDs: the items name it."""
        return line_id("G", self.currency, self.debtor, self.creditor)


@dataclass(frozen=True)
class NetLine:
    payer: str
    payee: str
    currency: str
    net_amount: Decimal
    gross_payer_to_payee: Decimal
    gross_payee_to_payer: Decimal
    sdr_count: int

    @property
    def line_id(self) -> str:
        return line_id("N", self.currency, *sorted((self.payer, self.payee)))


@dataclass(frozen=True)
class NetPosition:
    partner_id: str
    currency: str
    position: Decimal  # owed to the partner minus owed by it


def line_id(kind: str, currency: str, first: str, second: str) -> str:
    digest = hashlib.sha256(f"{currency}|{first}|{second}".encode()).hexdigest()[:16]
    return f"{kind}-{currency}-{digest}"


def net_lines(gross: Iterable[GrossLine]) -> list[NetLine]:
    """Pairwise netting, currency by currency; a pair that nets to zero has no line."""
    directed: dict[tuple[str, str, str], GrossLine] = {
        (g.currency, g.debtor, g.creditor): g for g in gross
    }
    lines = []
    seen: set[tuple[str, str, str]] = set()
    for (currency, debtor, creditor), line in sorted(directed.items()):
        first, second = sorted((debtor, creditor))
        pair = (currency, first, second)
        if pair in seen:
            continue
        seen.add(pair)
        back = directed.get((currency, creditor, debtor))
        there, back_amount = line.amount, back.amount if back else ZERO
        count = line.sdr_count + (back.sdr_count if back else 0)
        if there == back_amount:
            continue
        payer, payee = (debtor, creditor) if there > back_amount else (creditor, debtor)
        high, low = max(there, back_amount), min(there, back_amount)
        lines.append(NetLine(payer, payee, currency, high - low, high, low, count))
    return sorted(lines, key=lambda n: (n.currency, n.line_id))


def net_positions(gross: Iterable[GrossLine]) -> list[NetPosition]:
    """Per partner and currency: owed to it minus owed by it (sums to zero per currency)."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for line in gross:
        totals[(line.currency, line.creditor)] += line.amount
        totals[(line.currency, line.debtor)] -= line.amount
    return [
        NetPosition(partner, currency, amount)
        for (currency, partner), amount in sorted(totals.items())
    ]


# ------------------------------------------------------------------------------ price plans


@dataclass(frozen=True)
class PricePlanData:
    """fc:PricePlanDataType: what the provider's customers' sessions at the operator's EVSEs
    cost the provider (the EVSP)."""

    operator_id: OperatorId
    provider_id: ProviderId
    service_type: str  # rm:RoamingServiceTypeType; "charging" when the request has none
    currency: str
    prices: Prices
    window: Window
    contract_reference: str | None = None


@dataclass(frozen=True)
class PricePlan:
    plan_id: str
    data: PricePlanData
    set_by: str
    created_at: datetime
    updated_at: datetime
    used_in_statement: bool = False


@dataclass(frozen=True)
class PlanFilter:
    operator_key: str | None = None
    provider_key: str | None = None
    currency: str | None = None
    valid_at: datetime | None = None


def may_see(actor: Partner, data: PricePlanData) -> bool:
    """A party to the plan (owning its operator or provider ID) or the marketplace operator."""
    return actor.has_role(Role.MARKETPLACE_OPERATOR) or _party(actor, data)


def _party(actor: Partner, data: PricePlanData) -> bool:
    operators = {o.key for o in actor.data.operator_ids}
    providers = {p.key for p in actor.data.provider_ids}
    return data.operator_id.key in operators or data.provider_id.key in providers


def set_price_plan(
    uow: UnitOfWork, actor: Partner, plan_id: str | None, data: PricePlanData, now: datetime
) -> PricePlan:
    """Create a plan, or replace ``plan_id`` (unless an issued statement used it).

    Either party may set the plan of its pair; both see it. Plans of one (operator, provider,
    service type, currency) never overlap: see :func:`place_plan`.
    """
    if not may_see(actor, data):
        raise NotAuthorizedError(
            "only the operator or the provider of the pair (or the marketplace operator) may "
            "set its price plan",
            field="pricePlan/operatorId",
        )
    data.prices.check()
    round_money(ZERO, data.currency)  # a currency in use, else Client.InvalidValue
    _owner(uow, "operator", data.operator_id.key, "pricePlan/operatorId")
    _owner(uow, "provider", data.provider_id.key, "pricePlan/providerId")
    existing = _replaceable(uow, actor, plan_id) if plan_id is not None else None
    siblings = [
        (p.plan_id, p.data.window)
        for p in uow.clearing.plans_of_pair(
            data.operator_id.key, data.provider_id.key, data.service_type, data.currency
        )
        if p.plan_id != plan_id
    ]
    for sibling_id, window in place_plan(data.window, siblings).items():
        uow.clearing.end_plan(sibling_id, window, now)
    if existing is None:
        plan = PricePlan("PP" + uuid.uuid4().hex[:20].upper(), data, actor.partner_id, now, now)
        uow.clearing.add_plan(plan)
    else:
        plan = dataclasses.replace(existing, data=data, set_by=actor.partner_id, updated_at=now)
        uow.clearing.update_plan(plan)
    return plan


def _replaceable(uow: UnitOfWork, actor: Partner, plan_id: str) -> PricePlan:
    found = uow.clearing.get_plan(plan_id)
    if found is None or not may_see(actor, found.data):
        raise NotFoundError("PricePlan", f"no price plan {plan_id}", field="pricePlanId")
    if found.used_in_statement:
        raise PlanInUseError(
            f"price plan {plan_id} priced an issued statement; set a successor plan instead",
            field="pricePlanId",
        )
    return found


def _owner(uow: UnitOfWork, kind: str, key: str, field: str) -> str:
    owner = uow.partners.owner_of_identifier(kind, key)
    if owner is None:
        raise NotFoundError("Partner", f"no partner owns the {kind} ID {key}", field=field)
    return owner


def list_price_plans(
    uow: UnitOfWork, actor: Partner, plan_filter: PlanFilter, page: Page
) -> tuple[list[PricePlan], int]:
    """The plans the caller is a party to (all, for the marketplace operator)."""
    if actor.has_role(Role.MARKETPLACE_OPERATOR):
        visible: tuple[set[str], set[str]] | None = None
    else:
        visible = (
            {o.key for o in actor.data.operator_ids},
            {p.key for p in actor.data.provider_ids},
        )
    return uow.clearing.list_plans(visible, plan_filter, (page.offset, page.size))


# ------------------------------------------------------------------------- clearing runs

#: A provisional statement is kept this long, so that its items can be read.
PROVISIONAL_KEPT = timedelta(hours=24)
#: Longest period one statement may cover (a year; usually a week or a month).
MAX_PERIOD = timedelta(days=366)


class StatementStatus(enum.StrEnum):
    ISSUED = "issued"
    PROVISIONAL = "provisional"


@dataclass(frozen=True)
class Period:
    """[start, end) on the SDRs' session start."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidPeriodError("the period must end after it starts", field="period")
        if self.end - self.start > MAX_PERIOD:
            raise InvalidPeriodError("a clearing period is at most a year", field="period")

    @classmethod
    def month(cls, text: str) -> Period:
        """``2026-11`` -> November 2026 in UTC."""
        try:
            start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
        except ValueError as exc:
            raise InvalidPeriodError(f"{text!r} is not a month (YYYY-MM)", field="period") from exc
        end = (start + timedelta(days=32)).replace(day=1)
        return cls(start, end)

    def days(self) -> list[Period]:
        """The period cut at UTC midnights: a clearing run computes (and reports) by day."""
        cuts, at = [], self.start
        while at < self.end:
            following = min(
                self.end,
                (at + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0),
            )
            cuts.append(Period(at, following))
            at = following
        return cuts


@dataclass(frozen=True)
class DayTotal:
    """What pricing one day's SDRs gave for one (debtor, creditor, currency, price plan)."""

    debtor: str
    creditor: str
    currency: str
    amount: Decimal
    sdr_count: int
    plan_id: str


@dataclass(frozen=True)
class Statement:
    statement_id: str
    period: Period
    status: StatementStatus
    cut_off: datetime
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    sdr_count: int
    unpriced_count: int
    lines: tuple[GrossLine, ...]


@dataclass(frozen=True)
class StatementItem:
    """One SDR behind a gross line (fc:StatementItemType)."""

    line_id: str
    sdr_id: str
    sdr_version: int
    operator_id: str
    provider_id: str
    debtor: str
    creditor: str
    session_start: datetime
    energy_kwh: Decimal | None
    plan_id: str
    amount: Decimal
    currency: str


def gross_lines(totals: Iterable[DayTotal]) -> tuple[GrossLine, ...]:
    """Exact sums of the rounded item amounts, per (debtor, creditor, currency)."""
    sums: dict[tuple[str, str, str], tuple[Decimal, int]] = {}
    for t in totals:
        amount, count = sums.get((t.debtor, t.creditor, t.currency), (ZERO, 0))
        sums[(t.debtor, t.creditor, t.currency)] = (amount + t.amount, count + t.sdr_count)
    lines = (GrossLine(d, c, cur, a, n) for (d, c, cur), (a, n) in sums.items())
    return tuple(sorted(lines, key=lambda g: (g.currency, g.line_id)))


def run_statement(
    uow: UnitOfWork,
    actor_id: str,
    period: Period,
    cut_off: datetime,
    status: StatementStatus,
    now: datetime,
    progress: Callable[[Period], None] = lambda day: None,
) -> Statement:
    """Price the period's approved SDRs day by day and store the statement.

    Included: SDRs approved by their EVSP, received and approved before ``cut_off``, whose
    session started in the period. Approved is terminal and the cut-off is past, so the items
    behind an issued statement can be re-derived at any later time and give the same sums;
    the plans that priced them can no longer be replaced.
    """
    if status is StatementStatus.ISSUED and uow.clearing.issued_statement(period) is not None:
        raise ConflictError("Statement", "this period's statement is already issued")
    totals: list[DayTotal] = []
    unpriced = 0
    for day in period.days():
        priced, missing = uow.clearing.price_day(day, cut_off)
        totals.extend(priced)
        unpriced += missing
        progress(day)
    lines = gross_lines(totals)
    statement = Statement(
        ("CS-" if status is StatementStatus.ISSUED else "CP-") + uuid.uuid4().hex[:20].upper(),
        period,
        status,
        cut_off,
        now,
        actor_id,
        now + PROVISIONAL_KEPT if status is StatementStatus.PROVISIONAL else None,
        sum(line.sdr_count for line in lines),
        unpriced,
        lines,
    )
    uow.clearing.add_statement(statement)
    if status is StatementStatus.ISSUED:
        uow.clearing.mark_plans_used({t.plan_id for t in totals})
    return statement


def visible_lines(
    actor: Partner, lines: Iterable[GrossLine], currency: str | None
) -> list[GrossLine]:
    """A party sees the lines it is debtor or creditor of; the marketplace operator all."""
    everyone = actor.has_role(Role.MARKETPLACE_OPERATOR)
    return [
        line
        for line in lines
        if (currency is None or line.currency == currency)
        and (everyone or actor.partner_id in (line.debtor, line.creditor))
    ]


def statement_for(uow: UnitOfWork, actor: Partner, period: Period, now: datetime) -> Statement:
    """The issued statement of exactly this period, else a provisional one computed now."""
    issued = uow.clearing.issued_statement(period)
    if issued is not None:
        return issued
    return run_statement(uow, actor.partner_id, period, now, StatementStatus.PROVISIONAL, now)


def readable_statement(
    uow: UnitOfWork, actor: Partner, statement_id: str, now: datetime
) -> Statement:
    found = uow.clearing.get_statement(statement_id)
    if found is None or (found.expires_at is not None and found.expires_at <= now):
        raise NotFoundError("Statement", f"no statement {statement_id}", field="statementId")
    if not visible_lines(actor, found.lines, None) and not actor.has_role(
        Role.MARKETPLACE_OPERATOR
    ):
        raise NotFoundError("Statement", f"no statement {statement_id}", field="statementId")
    return found


def statement_csv(statement: Statement, lines: Sequence[GrossLine], strategy: Strategy) -> str:
    """The statement as CSV: one row per line, amounts in the currency's minor unit."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["statementId", statement.statement_id, "status", statement.status.value])
    writer.writerow(
        ["period", statement.period.start.isoformat(), statement.period.end.isoformat()]
    )
    writer.writerow(["cutOff", statement.cut_off.isoformat(), "strategy", strategy.value])
    if strategy is Strategy.GROSS:
        writer.writerow(["lineId", "currency", "debtor", "creditor", "amount", "sdrCount"])
        for g in lines:
            writer.writerow([g.line_id, g.currency, g.debtor, g.creditor, g.amount, g.sdr_count])
    else:
        writer.writerow(
            [
                "lineId",
                "currency",
                "payer",
                "payee",
                "netAmount",
                "grossPayerToPayee",
                "grossPayeeToPayer",
                "sdrCount",
            ]
        )
        for n in net_lines(lines):
            writer.writerow(
                [
                    n.line_id,
                    n.currency,
                    n.payer,
                    n.payee,
                    n.net_amount,
                    n.gross_payer_to_payee,
                    n.gross_payee_to_payer,
                    n.sdr_count,
                ]
            )
    return out.getvalue()
