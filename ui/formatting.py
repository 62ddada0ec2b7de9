"""Template filters: money, dates and labels written the way a buyer reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from flask import Flask

from domain.marketplace.model import Quota, ServiceCategory
from ui.market_forms import CATEGORY_LABELS

LINE_TYPES = {
    "monthlyFee": "Monthly fee",
    "callCharge": "Calls",
    "quotaOverrun": "Calls over quota",
}


def money(amount: Decimal | None, currency: str = "") -> str:
    """At least two decimals, more only when the price has them (0.0025 EUR per call)."""
    if amount is None:
        return "—"
    exponent = amount.normalize().as_tuple().exponent
    decimals = max(2, -exponent if isinstance(exponent, int) else 2)
    return f"{amount:,.{decimals}f} {currency}".strip()


def day(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
    return f"{value:%d %b %Y}"


def moment(value: datetime | None) -> str:
    if value is None:
        return "—"
    value = value.astimezone(UTC) if value.tzinfo else value
    return f"{value:%d %b %Y, %H:%M} UTC"


def category(value: ServiceCategory) -> str:
    return CATEGORY_LABELS.get(value, value.value)


def quota(value: Quota | None) -> str:
    """'10,000 calls/day, 200,000/month; over quota 0.01' or 'No quota'."""
    if value is None:
        return "No quota"
    limits = [
        f"{n:,} calls/{unit}"
        for n, unit in ((value.per_day, "day"), (value.per_month, "month"))
        if n
    ]
    text = ", ".join(limits) or "No limit"
    return text + ("; calls over quota refused" if value.overrun_price is None else "")


def install(app: Flask) -> None:
    app.jinja_env.filters.update(
        money=money,
        day=day,
        moment=moment,
        category=category,
        quota=quota,
        line_type=lambda kind: LINE_TYPES.get(kind, kind),
    )
