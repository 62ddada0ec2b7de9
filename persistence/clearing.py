"""Financial clearing storage: price plans, clearing statements, and pricing the SDRs.

Pricing one day of SDRs is one SQL aggregate on PostgreSQL (join each approved SDR with the
plan valid at its session start, compute the rounded wholesale amount, sum per debtor,
creditor, currency and plan): a statement over millions of SDRs never leaves the database.
SQLite prices the same rows in Python with domain.clearing.financial.wholesale_amount; the
integration tests run both against the same hand-computed figures.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from domain.clearing.currencies import MINOR_UNITS
from domain.clearing.financial import (
    DayTotal,
    GrossLine,
    Period,
    PlanFilter,
    PricePlan,
    PricePlanData,
    Prices,
    Statement,
    StatementItem,
    StatementStatus,
    Window,
    round_money,
    wholesale_amount,
)
from domain.identifiers import OperatorId, ProviderId
from persistence.tables import ClearingLineRow, ClearingStatementRow, PricePlanRow, SdrRow

#: The currency's minor unit as SQL: round(x, <this>) is half-up for the non-negative amounts.
_MINOR_SQL = (
    "CASE s.currency "
    + " ".join(f"WHEN '{c}' THEN {m}" for c, m in sorted(MINOR_UNITS.items()) if m != 2)
    + " ELSE 2 END"
)
_SELECTED = (
    "s.status = 'approved' AND s.session_start >= :start AND s.session_start < :end "
    "AND s.received_at < :cut_off AND s.status_changed_at < :cut_off"
)
_PLAN_JOIN = (
    "price_plan p ON p.operator_key = s.operator_key AND p.provider_key = s.provider_key "
    "AND p.service_type = s.service_type AND p.currency = s.currency "
    "AND p.valid_from <= s.session_start AND (p.valid_to IS NULL OR s.session_start < p.valid_to)"
)
_AMOUNT = (
    "round(coalesce(p.per_session, 0) + coalesce(p.per_kwh, 0) * s.energy_kwh "
    "+ coalesce(p.per_minute, 0) * extract(epoch FROM s.session_end - s.session_start) / 60, "
    f"{_MINOR_SQL})"
)
#: For this transaction only. The planner sorts both sides for a merge join on the four plan
#: keys, which measured 1.8x slower than hashing the few hundred plans (bench/clearing_bench.py,
#: EXPLAIN ANALYZE); and 4 MB of work_mem sent those sorts to disk.
_PLANNER = (text("SET LOCAL work_mem = '64MB'"), text("SET LOCAL enable_mergejoin = off"))
# Both statements are assembled from the constants above only; values travel as parameters.
_PRICE_DAY = text(
    f"SELECT s.provider_partner_id, s.operator_partner_id, s.currency, p.plan_id, "  # noqa: S608
    f"sum({_AMOUNT}), count(*) FROM sdr s LEFT JOIN {_PLAN_JOIN} WHERE {_SELECTED} "
    "GROUP BY s.provider_partner_id, s.operator_partner_id, s.currency, p.plan_id"
)
_ITEMS = text(
    f"SELECT s.sdr_id, s.version, s.operator_wire, s.provider_wire, s.session_start, "  # noqa: S608
    f"s.energy_kwh, p.plan_id, {_AMOUNT} FROM sdr s JOIN {_PLAN_JOIN} WHERE {_SELECTED} "
    "AND s.provider_partner_id = :debtor AND s.operator_partner_id = :creditor "
    "AND s.currency = :currency ORDER BY s.sdr_id LIMIT :limit OFFSET :offset"
)


class SqlClearingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ price plans
    def add_plan(self, plan: PricePlan) -> None:
        row = PricePlanRow(plan_id=plan.plan_id, created_at=plan.created_at)
        _write(row, plan)
        self.session.add(row)
        self.session.flush()

    def update_plan(self, plan: PricePlan) -> None:
        row = self._row(plan.plan_id)
        _write(row, plan)
        self.session.flush()

    def end_plan(self, plan_id: str, window: Window, at: datetime) -> None:
        row = self._row(plan_id)
        row.valid_to = window.valid_to
        row.updated_at = at
        self.session.flush()

    def get_plan(self, plan_id: str) -> PricePlan | None:
        row = self.session.scalar(select(PricePlanRow).where(PricePlanRow.plan_id == plan_id))
        return _plan(row) if row is not None else None

    def plans_of_pair(
        self, operator_key: str, provider_key: str, service_type: str, currency: str
    ) -> list[PricePlan]:
        rows = self.session.scalars(
            select(PricePlanRow)
            .where(
                PricePlanRow.operator_key == operator_key,
                PricePlanRow.provider_key == provider_key,
                PricePlanRow.service_type == service_type,
                PricePlanRow.currency == currency,
            )
            .order_by(PricePlanRow.valid_from)
            .with_for_update()  # two concurrent SetPricePlan of a pair cannot both place
        )
        return [_plan(r) for r in rows]

    def list_plans(
        self,
        visible: tuple[set[str], set[str]] | None,
        plan_filter: PlanFilter,
        page: tuple[int, int],
    ) -> tuple[list[PricePlan], int]:
        query = select(PricePlanRow)
        if visible is not None:
            operators, providers = visible
            query = query.where(
                or_(
                    PricePlanRow.operator_key.in_(operators or {""}),
                    PricePlanRow.provider_key.in_(providers or {""}),
                )
            )
        query = _filtered(query, plan_filter)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(
            query.order_by(
                PricePlanRow.operator_key, PricePlanRow.provider_key, PricePlanRow.valid_from
            )
            .offset(page[0])
            .limit(page[1])
        )
        return [_plan(r) for r in rows], total

    def mark_plans_used(self, plan_ids: Collection[str]) -> None:
        if plan_ids:
            self.session.execute(
                update(PricePlanRow)
                .where(PricePlanRow.plan_id.in_(sorted(plan_ids)))
                .values(used_in_statement=True)
            )

    # ---------------------------------------------------------------- statements
    def price_day(self, day: Period, cut_off: datetime) -> tuple[list[DayTotal], int]:
        """Totals of the day's priced SDRs, and how many found no valid plan."""
        if self.session.get_bind().dialect.name != "postgresql":
            return self._price_in_python(day, cut_off)
        bounds = {"start": day.start, "end": day.end, "cut_off": cut_off}
        for setting in _PLANNER:
            self.session.execute(setting)
        totals, unpriced = [], 0
        for debtor, creditor, currency, plan_id, amount, count in self.session.execute(
            _PRICE_DAY, bounds
        ):
            if plan_id is None:
                unpriced += count
            else:
                totals.append(DayTotal(debtor, creditor, currency, Decimal(amount), count, plan_id))
        return totals, unpriced

    def _price_in_python(self, day: Period, cut_off: datetime) -> tuple[list[DayTotal], int]:
        sums: dict[tuple[str, str, str, str], tuple[Decimal, int]] = {}
        unpriced = 0
        for sdr, plan in self._selected(day, cut_off):
            if plan is None:
                unpriced += 1
                continue
            key = (sdr.provider_partner_id, sdr.operator_partner_id, sdr.currency, plan.plan_id)
            amount, count = sums.get(key, (Decimal(0), 0))
            sums[key] = (amount + _price(sdr, plan), count + 1)
        return [DayTotal(d, c, cur, a, n, p) for (d, c, cur, p), (a, n) in sums.items()], unpriced

    def _selected(
        self, period: Period, cut_off: datetime, line: GrossLine | None = None
    ) -> list[tuple[SdrRow, PricePlanRow | None]]:
        s, p = SdrRow, PricePlanRow
        query = (
            select(s, p)
            .outerjoin(
                p,
                and_(
                    p.operator_key == s.operator_key,
                    p.provider_key == s.provider_key,
                    p.service_type == s.service_type,
                    p.currency == s.currency,
                    p.valid_from <= s.session_start,
                    or_(p.valid_to.is_(None), s.session_start < p.valid_to),
                ),
            )
            .where(
                s.status == "approved",
                s.session_start >= period.start,
                s.session_start < period.end,
                s.received_at < cut_off,
                s.status_changed_at < cut_off,
            )
            .order_by(s.sdr_id)
        )
        if line is not None:
            query = query.where(
                s.provider_partner_id == line.debtor,
                s.operator_partner_id == line.creditor,
                s.currency == line.currency,
            )
        return [(row[0], row[1]) for row in self.session.execute(query)]

    def add_statement(self, statement: Statement) -> None:
        self.session.add(
            ClearingStatementRow(
                statement_id=statement.statement_id,
                period_start=statement.period.start,
                period_end=statement.period.end,
                status=statement.status.value,
                cut_off=statement.cut_off,
                created_at=statement.created_at,
                created_by=statement.created_by,
                expires_at=statement.expires_at,
                sdr_count=statement.sdr_count,
                unpriced_count=statement.unpriced_count,
            )
        )
        self.session.add_all(
            ClearingLineRow(
                statement_id=statement.statement_id,
                currency=line.currency,
                debtor=line.debtor,
                creditor=line.creditor,
                amount=line.amount,
                sdr_count=line.sdr_count,
            )
            for line in statement.lines
        )
        self.session.flush()

    def issued_statement(self, period: Period) -> Statement | None:
        row = self.session.scalar(
            select(ClearingStatementRow).where(
                ClearingStatementRow.status == StatementStatus.ISSUED.value,
                ClearingStatementRow.period_start == period.start,
                ClearingStatementRow.period_end == period.end,
            )
        )
        return self._statement(row) if row is not None else None

    def get_statement(self, statement_id: str) -> Statement | None:
        row = self.session.scalar(
            select(ClearingStatementRow).where(ClearingStatementRow.statement_id == statement_id)
        )
        return self._statement(row) if row is not None else None

    def purge_provisional(self, now: datetime) -> int:
        """Drop provisional statements past their 24 hours."""
        expired = select(ClearingStatementRow.statement_id).where(
            ClearingStatementRow.expires_at < now
        )
        ids = list(self.session.scalars(expired))
        if ids:
            self.session.query(ClearingLineRow).filter(
                ClearingLineRow.statement_id.in_(ids)
            ).delete(synchronize_session=False)
            self.session.query(ClearingStatementRow).filter(
                ClearingStatementRow.statement_id.in_(ids)
            ).delete(synchronize_session=False)
        return len(ids)

    def items(
        self, statement: Statement, line: GrossLine, offset: int, limit: int
    ) -> list[StatementItem]:
        """The SDRs behind ``line``, re-derived (the cut-off fixes them), by sdrId."""
        if self.session.get_bind().dialect.name != "postgresql":
            selected = self._selected(statement.period, statement.cut_off, line)
            return [
                _item(
                    line,
                    sdr.sdr_id,
                    sdr.version,
                    sdr.operator_wire,
                    sdr.provider_wire,
                    sdr.session_start,
                    sdr.energy_kwh,
                    plan.plan_id,
                    _price(sdr, plan),
                )
                for sdr, plan in selected[offset : offset + limit]
                if plan is not None
            ]
        bounds: dict[str, Any] = {
            "start": statement.period.start,
            "end": statement.period.end,
            "cut_off": statement.cut_off,
            "debtor": line.debtor,
            "creditor": line.creditor,
            "currency": line.currency,
            "limit": limit,
            "offset": offset,
        }
        return [_item(line, *row) for row in self.session.execute(_ITEMS, bounds)]

    def _statement(self, row: ClearingStatementRow) -> Statement:
        lines = self.session.scalars(
            select(ClearingLineRow).where(ClearingLineRow.statement_id == row.statement_id)
        )
        gross = sorted(
            (  # stored with 6 decimals; the sums of minor-unit amounts are exact in it
                GrossLine(
                    r.debtor, r.creditor, r.currency, round_money(r.amount, r.currency), r.sdr_count
                )
                for r in lines
            ),
            key=lambda g: (g.currency, g.line_id),
        )
        return Statement(
            row.statement_id,
            Period(row.period_start, row.period_end),
            StatementStatus(row.status),
            row.cut_off,
            row.created_at,
            row.created_by,
            row.expires_at,
            row.sdr_count,
            row.unpriced_count,
            tuple(gross),
        )

    def _row(self, plan_id: str) -> PricePlanRow:
        row = self.session.scalar(select(PricePlanRow).where(PricePlanRow.plan_id == plan_id))
        if row is None:
            raise LookupError(plan_id)
        return row


def _filtered(query: Select[PricePlanRow], f: PlanFilter) -> Select[PricePlanRow]:
    if f.operator_key is not None:
        query = query.where(PricePlanRow.operator_key == f.operator_key)
    if f.provider_key is not None:
        query = query.where(PricePlanRow.provider_key == f.provider_key)
    if f.currency is not None:
        query = query.where(PricePlanRow.currency == f.currency)
    if f.valid_at is not None:
        query = query.where(
            PricePlanRow.valid_from <= f.valid_at,
            or_(PricePlanRow.valid_to.is_(None), PricePlanRow.valid_to > f.valid_at),
        )
    return query


def _write(row: PricePlanRow, plan: PricePlan) -> None:
    data = plan.data
    row.operator_id, row.operator_key = data.operator_id.wire, data.operator_id.key
    row.provider_id, row.provider_key = data.provider_id.wire, data.provider_id.key
    row.service_type, row.currency = data.service_type, data.currency
    row.per_kwh = data.prices.per_kwh
    row.per_minute = data.prices.per_minute
    row.per_session = data.prices.per_session
    row.valid_from, row.valid_to = data.window.valid_from, data.window.valid_to
    row.contract_reference = data.contract_reference
    row.set_by, row.updated_at = plan.set_by, plan.updated_at
    row.used_in_statement = plan.used_in_statement


def _plan(row: PricePlanRow) -> PricePlan:
    data = PricePlanData(
        OperatorId.parse(row.operator_id),
        ProviderId.parse(row.provider_id),
        row.service_type,
        row.currency,
        Prices(row.per_kwh, row.per_minute, row.per_session),
        Window(row.valid_from, row.valid_to),
        row.contract_reference,
    )
    return PricePlan(
        row.plan_id, data, row.set_by, row.created_at, row.updated_at, row.used_in_statement
    )


def _price(sdr: SdrRow, plan: PricePlanRow) -> Decimal:
    prices = Prices(plan.per_kwh, plan.per_minute, plan.per_session)
    return wholesale_amount(
        prices, sdr.currency, sdr.energy_kwh, sdr.session_start, sdr.session_end
    )


def _item(
    line: GrossLine,
    sdr_id: str,
    version: int,
    operator_wire: str,
    provider_wire: str,
    session_start: datetime,
    energy: Decimal | None,
    plan_id: str,
    amount: Decimal,
) -> StatementItem:
    return StatementItem(
        line.line_id,
        sdr_id,
        version,
        operator_wire,
        provider_wire,
        line.debtor,
        line.creditor,
        session_start,
        Decimal(energy) if energy is not None else None,
        plan_id,
        Decimal(amount),
        line.currency,
    )
