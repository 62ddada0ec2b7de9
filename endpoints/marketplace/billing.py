"""Marketplace service family: usage reports and monthly billing statements (SOAP and CSV).

Thin on purpose: decode, one unit of work, encode. Rules and arithmetic live in
domain/marketplace/usage.py. ``billing_csv`` is the same statement as CSV, for a plain HTTP
route mounted by gembus/web.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from spyne import DateTime, ServiceBase, Unicode, rpc

from domain.marketplace import usage as uc
from domain.partners import Partner
from domain.ports import UnitOfWork
from endpoints.marketplace.catalogue import request_of, utc
from endpoints.marketplace.messages import (
    BillingLineListType,
    BillingLineType,
    CurrencyTotalListType,
    CurrencyTotalType,
    DailyUsageListType,
    DailyUsageType,
    MoneyType,
    TimePeriodType,
    UsageFiguresType,
)
from gembus.errors import InvalidPeriodError

#: xs:gYearMonth: year, month, optional time zone (which a UTC calendar month ignores).
_G_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})(?:Z|[+-]\d{2}:\d{2})?")


def month_of(text: str) -> str:
    """The YYYY-MM of an xs:gYearMonth ("2013-02", "2013-02Z", "2013-02+01:00")."""
    match = _G_YEAR_MONTH.fullmatch(text.strip())
    if match is None:
        raise InvalidPeriodError(f"{text!r} is not a month (YYYY-MM)", field="month")
    return f"{match.group(1)}-{match.group(2)}"


def _figures_to(figures: uc.UsageFigures) -> UsageFiguresType:
    return UsageFiguresType(
        calls=figures.calls,
        faults=figures.faults,
        overQuotaCalls=figures.over_quota,
        meanLatencyMs=figures.mean_latency_ms,
        p95LatencyMs=figures.p95_latency_ms,
    )


def _line_to(line: uc.BillingLine) -> BillingLineType:
    return BillingLineType(
        lineNumber=line.number,
        serviceContractId=line.contract.contract_id,
        serviceId=line.contract.service_id,
        serviceName=line.service_name,
        role=line.role,
        counterpartPartnerId=line.counterpart,
        lineType=line.line_type,
        quantity=line.quantity,
        unitPrice=line.unit_price,
        amount=MoneyType(amount=line.amount, currency=line.currency),
        requesterReference=line.contract.requester_reference,
    )


def _total_to(total: uc.CurrencyTotal) -> CurrencyTotalType:
    return CurrencyTotalType(
        currency=total.currency,
        payable=total.payable,
        receivable=total.receivable,
        net=total.net,
    )


def billing_csv(
    uow_factory: Callable[[], UnitOfWork], actor: Partner, partner_id: str, month: str
) -> str:
    """The monthly billing statement of ``partner_id`` as CSV (BillingStatement.to_csv).

    Same rules as GetBillingStatement: the partner itself or the marketplace operator;
    ``month`` is an xs:gYearMonth. Raises the same gembus errors (NotAuthorized,
    InvalidPeriod, ...) for the caller to turn into an HTTP answer.
    """
    with uow_factory() as uow:
        statement = uc.billing_statement(uow, actor, partner_id, month_of(month))
    return statement.to_csv()


class MarketplaceBilling(ServiceBase):
    """Usage of service contracts and monthly service billing statements."""

    @rpc(
        Unicode,
        TimePeriodType,
        _returns=(
            Unicode(min_occurs=1),
            Unicode(min_occurs=1),
            TimePeriodType.customize(min_occurs=1),
            UsageFiguresType.customize(min_occurs=1),
            DailyUsageListType,
            DateTime(min_occurs=1),
        ),
        _out_variable_names=(
            "serviceContractId",
            "serviceId",
            "period",
            "total",
            "days",
            "generatedAt",
        ),
    )
    def GetUsageReport(
        ctx: Any, serviceContractId: str, period: TimePeriodType
    ) -> tuple[str, str, TimePeriodType, UsageFiguresType, DailyUsageListType | None, datetime]:
        request = request_of(ctx)
        with request.uow() as uow:
            report = uc.usage_report(
                uow, request.actor, serviceContractId, utc(period.start), utc(period.end)
            )
        days = [DailyUsageType(date=day, usage=_figures_to(f)) for day, f in report.days]
        return (
            report.contract.contract_id,
            report.contract.service_id,
            TimePeriodType(start=report.start, end=report.end),
            _figures_to(report.total),
            DailyUsageListType(day=days) if days else None,
            report.generated_at,
        )

    @rpc(
        Unicode,
        Unicode,
        _returns=(
            Unicode(min_occurs=1),
            Unicode(min_occurs=1),
            Unicode(min_occurs=1),
            Unicode(min_occurs=1),
            BillingLineListType,
            CurrencyTotalListType,
            DateTime(min_occurs=1),
        ),
        _out_variable_names=(
            "statementId",
            "partnerId",
            "month",
            "status",
            "lines",
            "totals",
            "generatedAt",
        ),
    )
    def GetBillingStatement(
        ctx: Any, partnerId: str, month: str
    ) -> tuple[
        str,
        str,
        str,
        str,
        BillingLineListType | None,
        CurrencyTotalListType | None,
        datetime,
    ]:
        request = request_of(ctx)
        with request.uow() as uow:
            statement = uc.billing_statement(uow, request.actor, partnerId, month_of(month))
        return (
            statement.statement_id,
            statement.partner_id,
            statement.month,
            "final" if statement.final else "provisional",
            BillingLineListType(line=[_line_to(line) for line in statement.lines])
            if statement.lines
            else None,
            CurrencyTotalListType(total=[_total_to(t) for t in statement.totals])
            if statement.totals
            else None,
            statement.generated_at,
        )
