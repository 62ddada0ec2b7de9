"""My monthly billing statement, on the page and as a CSV download for the accounts team."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from flask import Response, render_template, request
from flask.typing import ResponseReturnValue

from domain.marketplace.usage import billing_statement
from domain.partners import Partner
from gembus.errors import ClientError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth
from ui.views.market import legal_names

MONTH = re.compile(r"\d{4}-\d{2}")


def _month() -> str:
    """?month=YYYY-MM, the current UTC month when absent."""
    raw = request.args.get("month", "").strip()
    return raw or f"{datetime.now(UTC):%Y-%m}"


def _shift(month: str, by: int) -> str | None:
    """The month ``by`` months away, for the previous/next links (None past the present)."""
    if not MONTH.fullmatch(month):
        return None
    year, number = int(month[:4]), int(month[5:]) + by
    year, number = year + (number - 1) // 12, (number - 1) % 12 + 1
    if not 1 <= year <= 9999 or date(year, number, 1) > datetime.now(UTC).date():
        return None
    return f"{year:04d}-{number:02d}"


@auth.signed_in
def billing(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Lines and per-currency totals; a month that has not ended is provisional."""
    month = _month()
    error = None
    statement = None
    try:
        statement = billing_statement(uow, me, me.partner_id, month)
    except ClientError as refused:
        error = refused.message
    counterparts = [line.counterpart for line in statement.lines] if statement else []
    page = render_template(
        "my/billing.html",
        month=month,
        statement=statement,
        error=error,
        names=legal_names(uow, counterparts),
        previous=_shift(month, -1),
        following=_shift(month, 1),
    )
    return page, 422 if error else 200


@auth.signed_in
def billing_csv(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """The same statement as CSV, downloaded as a file named after partner and month."""
    month = _month()
    try:
        statement = billing_statement(uow, me, me.partner_id, month)
    except ClientError as refused:
        return Response(f"month: {refused.message}\n", 422, mimetype="text/plain")
    name = f"gembus-statement-{me.partner_id}-{statement.month}.csv"
    return Response(
        statement.to_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
