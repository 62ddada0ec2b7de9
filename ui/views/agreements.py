"""Roaming agreements (EVSE operator ID <-> EV service provider ID) I am party to."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import contracts as cc
from domain.marketplace.partners import Page
from domain.partners import Partner
from gembus.errors import ClientError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth
from ui.market_forms import MarketForm, agreement_form, reason_field
from ui.views.market import commit, flash_refusal, legal_names, not_found_unless_client

log = structlog.get_logger("gembus.ui")


@auth.signed_in
def my_agreements(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    return _page(uow, me, _prefilled(me))


def _prefilled(me: Partner) -> MarketForm:
    """The form starts with my own IDs: an operator records agreements for its operator ID,
    an EVSP for its provider ID."""
    values = {}
    if me.data.operator_ids:
        values["operatorId"] = me.data.operator_ids[0].wire
    if me.data.provider_ids:
        values["providerId"] = me.data.provider_ids[0].wire
    return MarketForm(values)


def _page(uow: SqlUnitOfWork, me: Partner, form: MarketForm) -> ResponseReturnValue:
    agreements, total = cc.list_roaming_agreements(
        uow, me, operator_id=None, provider_id=None, status=None, page=Page(1, 500)
    )
    agreements.sort(key=lambda a: a.created_at, reverse=True)
    parties = [p for a in agreements for p in (a.operator_partner_id, a.provider_partner_id)]
    page = render_template(
        "my/agreements.html",
        agreements=agreements,
        total=total,
        names=legal_names(uow, parties),
        form=form,
        now=datetime.now(UTC),
    )
    return page, 200 if form.valid else 422


@auth.signed_in
def create(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Record an agreement; who owns each ID and overlapping periods are the domain's rules."""
    form, validity = agreement_form(request.form)
    if validity is None:
        return _page(uow, me, form)
    try:
        agreement = cc.create_roaming_agreement(
            uow, me, form.get("operatorId"), form.get("providerId"), validity
        )
        commit(uow)
    except ClientError as error:
        form.add_market_error(error.field, error.message)
        return _page(uow, me, form)
    log.info("ui.agreement_created", agreement_id=agreement.agreement_id, by=me.partner_id)
    flash(
        f"Roaming agreement {agreement.operator_id.wire} ↔ {agreement.provider_id.wire} "
        "is recorded.",
        "success",
    )
    return redirect(url_for("ui.my_agreements"))


@auth.signed_in
def terminate(uow: SqlUnitOfWork, me: Partner, agreement_id: str) -> ResponseReturnValue:
    form, reason = reason_field(request.form)
    if not form.valid:
        flash(f"Reason: {form.errors['reason']}", "error")
        return redirect(url_for("ui.my_agreements"))
    try:
        ended = cc.terminate_roaming_agreement(uow, me, agreement_id, None, reason)
        commit(uow)
    except ClientError as error:
        not_found_unless_client(error)
        flash_refusal(error)
        return redirect(url_for("ui.my_agreements"))
    log.info("ui.agreement_terminated", agreement_id=agreement_id, by=me.partner_id)
    flash(
        f"Roaming agreement {ended.operator_id.wire} ↔ {ended.provider_id.wire} is terminated.",
        "success",
    )
    return redirect(url_for("ui.my_agreements"))
