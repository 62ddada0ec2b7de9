"""Usage reports and billing statements from metered calls, on PostgreSQL and SQLite."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bus.metering import UsageMeter
from domain.marketplace import usage
from domain.marketplace.model import Quota
from gembus.bootstrap import Gembus
from gembus.errors import NotAuthorizedError, NotFoundError
from tests.support.marketplace import contract, partner, published_offering


def test_metering_flags_calls_over_the_daily_quota_and_billing_charges_them(gembus: Gembus) -> None:
    admin, tnm = partner(gembus.uow, "gembus-admin"), partner(gembus.uow, "tnm-mobility")
    offering = published_offering(
        gembus.uow,
        admin,
        price="0.013",
        fee="100.00",
        quota=Quota(per_day=3, overrun_price=Decimal("0.02")),
    )
    signed = contract(gembus.uow, tnm, offering)
    assert gembus.services is not None
    meter = UsageMeter(gembus.services.validator, gembus.uow, "gembus-admin")
    now = datetime.now(UTC)
    for i, fault in enumerate([None, None, "Client.SchemaValidation", None, None]):
        assert (
            meter.record("tnm-mobility", "evse_search", "SearchEvse", fault, 10.0 + i, now)
            == signed.contract_id
        )
    assert (
        meter.record("navi-search", "evse_search", "SearchEvse", None, 1.0, now) is None
    )  # no contract
    assert meter.record("tnm-mobility", "sdr", "SubmitSdrs", None, 1.0, now) is None  # other family

    # the whole UTC day of the calls: the report lists every day its range touches
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with gembus.uow() as uow:
        report = usage.usage_report(uow, tnm, signed.contract_id, day, day + timedelta(days=1))
    assert (report.total.calls, report.total.faults, report.total.over_quota) == (5, 1, 2)
    assert report.total.mean_latency_ms == Decimal(
        "12.0"
    ) and report.total.p95_latency_ms == Decimal("14.0")
    assert [day for day, _ in report.days] == [now.date()]

    month = now.strftime("%Y-%m")
    with gembus.uow() as uow:
        mine = usage.billing_statement(uow, tnm, "tnm-mobility", month)
        theirs = usage.billing_statement(uow, admin, "gembus-admin", month)
    lines = {(line.line_type, line.quantity, line.unit_price, line.amount) for line in mine.lines}
    assert lines == {
        ("monthlyFee", 1, Decimal("100.00"), Decimal("100.00")),
        ("callCharge", 3, Decimal("0.013"), Decimal("0.04")),  # 0.039 rounded half-up
        ("quotaOverrun", 2, Decimal("0.02"), Decimal("0.04")),
    }
    (total,) = mine.totals
    assert (total.currency, total.payable, total.receivable, total.net) == (
        "EUR",
        Decimal("100.08"),
        0,
        Decimal("-100.08"),
    )
    assert theirs.totals[0].receivable == Decimal("100.08") and all(
        line.role == "provider" for line in theirs.lines
    )
    rows = list(csv.reader(io.StringIO(mine.to_csv())))
    assert rows[0][0] == "line" and rows[-1][-2:] == ["-100.08", "EUR"] and len(rows) == 5
    assert not mine.final


def test_only_parties_read_usage_and_only_the_partner_its_statement(gembus: Gembus) -> None:
    admin, tnm, bmw = (
        partner(gembus.uow, p) for p in ("gembus-admin", "tnm-mobility", "bmw-emobility")
    )
    signed = contract(gembus.uow, tnm, published_offering(gembus.uow, admin))
    now = datetime.now(UTC)
    with gembus.uow() as uow:
        with pytest.raises(NotFoundError):
            usage.usage_report(uow, bmw, signed.contract_id, now - timedelta(days=1), now)
        with pytest.raises(NotAuthorizedError):
            usage.billing_statement(uow, bmw, "tnm-mobility", now.strftime("%Y-%m"))
        with pytest.raises(usage.InvalidPeriodError):
            usage.usage_report(uow, tnm, signed.contract_id, now, now - timedelta(days=1))
        past = usage.billing_statement(uow, tnm, "tnm-mobility", "2019-01")
    assert past.lines == () and past.final
