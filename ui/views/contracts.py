"""Service contracts: the list of mine (bought and sold), one contract with its usage chart,
and terminating it. Only the two parties and the operator ever see a contract; anyone else
gets the same 404 as for a contract that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import contracts as cc
from domain.marketplace.model import AgreementStatus, ServiceContract
from domain.marketplace.partners import Page
from domain.marketplace.usage import usage_report
from domain.partners import Partner
from gembus.errors import ClientError, InvalidPagingError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth
from ui.chart import usage_chart
from ui.market_forms import reason_field
from ui.views.market import (
    Paging,
    commit,
    flash_refusal,
    legal_names,
    not_found_unless_client,
    page_number,
)

PAGE_SIZE = 20
#: The contract page charts this many days, today included.
USAGE_DAYS = 30
ROLES = {"requester": "Bought (I am the requester)", "provider": "Sold (I am the provider)"}
log = structlog.get_logger("gembus.ui")


def _choice(raw: str | None, allowed: set[str]) -> str | None:
    return raw if raw in allowed else None


@auth.signed_in
def my_contracts(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """My contracts on either side, newest first, filtered by side and current status."""
    role = _choice(request.args.get("role"), set(ROLES))
    status = _choice(request.args.get("status"), {s.value for s in AgreementStatus})
    filters: dict[str, Any] = {k: v for k, v in (("role", role), ("status", status)) if v}
    page = page_number()
    try:
        contracts, total = cc.list_my_contracts(
            uow,
            me,
            role=role,
            status=AgreementStatus(status) if status else None,
            service_id=None,
            counterpart=None,
            page=Page(page, PAGE_SIZE),
        )
    except InvalidPagingError:
        return redirect(url_for("ui.my_contracts", **filters))
    if page > 1 and not contracts:
        return redirect(url_for("ui.my_contracts", **filters))
    return render_template(
        "my/contracts.html",
        contracts=contracts,
        services=_service_names(uow, contracts),
        names=legal_names(uow, [p for c in contracts for p in (c.provider_id, c.requester_id)]),
        paging=Paging.of(page, total, PAGE_SIZE),
        filters=filters,
        roles=ROLES,
        statuses=list(AgreementStatus),
        now=datetime.now(UTC),
    )


def _service_names(uow: SqlUnitOfWork, contracts: list[ServiceContract]) -> dict[str, str]:
    names = {}
    for service_id in {c.service_id for c in contracts}:
        found = uow.marketplace.get_service(service_id)
        names[service_id] = found.data.name if found else service_id
    return names


@auth.signed_in
def contract(uow: SqlUnitOfWork, me: Partner, contract_id: str) -> ResponseReturnValue:
    """Terms, validity, status and the last USAGE_DAYS days of metered calls, charted."""
    now = datetime.now(UTC)
    first_day = (now - timedelta(days=USAGE_DAYS - 1)).date()
    start = datetime.combine(first_day, datetime.min.time(), UTC)
    try:
        report = usage_report(uow, me, contract_id, start, now)
    except ClientError as error:
        not_found_unless_client(error)
        raise
    found = report.contract
    service = uow.marketplace.get_service(found.service_id)
    offering = uow.marketplace.get_offering(found.offering_id)
    return render_template(
        "contract.html",
        contract=found,
        report=report,
        chart=usage_chart(report.days),
        service=service,
        offering=offering,
        names=legal_names(uow, [found.provider_id, found.requester_id]),
        status=found.status_at(now),
        now=now,
        bought=found.requester_id == me.partner_id,
    )


@auth.signed_in
def terminate(uow: SqlUnitOfWork, me: Partner, contract_id: str) -> ResponseReturnValue:
    """End the contract now; calls after this moment are no longer covered by it."""
    form, reason = reason_field(request.form)
    done = url_for("ui.contract", contract_id=contract_id)
    if not form.valid:
        flash(f"Reason: {form.errors['reason']}", "error")
        return redirect(done)
    try:
        cc.terminate_contract(uow, me, contract_id, None, reason)
        commit(uow)
    except ClientError as error:
        not_found_unless_client(error)
        flash_refusal(error)
        return redirect(done)
    log.info("ui.contract_terminated", contract_id=contract_id, by=me.partner_id)
    flash(f"Contract {contract_id} is terminated as of now.", "success")
    return redirect(done)
