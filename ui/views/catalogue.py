"""The catalogue: find services, read one with its open offerings, accept an offering."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import catalogue as uc
from domain.marketplace import contracts as cc
from domain.marketplace.model import (
    LifecycleState,
    Offering,
    OfferingStatus,
    Service,
    ServiceCategory,
)
from domain.marketplace.partners import Page
from domain.partners import Partner, Role
from gembus.errors import ClientError, InvalidPagingError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth
from ui.market_forms import CATEGORY_LABELS, interface_choices, reference_field
from ui.views.market import (
    Paging,
    commit,
    flash_refusal,
    legal_names,
    not_found_unless_client,
    page_number,
)

PAGE_SIZE = 10
log = structlog.get_logger("gembus.ui")


def _filters() -> dict[str, Any]:
    """The catalogue's query string, only the known filters, trimmed."""
    names = ("category", "family", "provider", "q")
    return {n: request.args.get(n, "").strip() for n in names if request.args.get(n, "").strip()}


@auth.signed_in
def catalogue(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Published and deprecated services, filtered and paged, each with its cheapest terms."""
    filters = _filters()
    category = filters.get("category")
    page = page_number()
    try:
        services, total = uc.browse_catalogue(
            uow,
            me,
            category=ServiceCategory(category) if category in set(ServiceCategory) else None,
            family=filters.get("family"),
            provider_id=filters.get("provider"),
            text=filters.get("q"),
            page=Page(page, PAGE_SIZE),
        )
    except InvalidPagingError:
        return redirect(url_for("ui.catalogue", **filters))
    everything, _ = uc.browse_catalogue(uow, me, page=Page(1, 1000))
    providers = legal_names(uow, [s.provider_id for s in everything] + [me.partner_id])
    offerings = {s.service_id: open_offerings(uow, s.service_id) for s in services}
    return render_template(
        "catalogue.html",
        services=services,
        offerings=offerings,
        providers=providers,
        paging=Paging.of(page, total, PAGE_SIZE),
        filters=filters,
        categories=CATEGORY_LABELS,
        families=sorted({c.family for c in interface_choices()}),
    )


def open_offerings(uow: SqlUnitOfWork, service_id: str) -> list[Offering]:
    """The offerings a requester can accept today or later (not withdrawn, not expired)."""
    found, _ = uc.list_offerings(
        uow, service_id=service_id, provider_id=None, status=OfferingStatus.OPEN, page=Page(1, 100)
    )
    now = datetime.now(UTC)
    return [o for o in found if o.status_at(now) is OfferingStatus.OPEN]


@auth.signed_in
def service(uow: SqlUnitOfWork, me: Partner, service_id: str) -> ResponseReturnValue:
    return render_service(uow, me, service_id)


def render_service(
    uow: SqlUnitOfWork, me: Partner, service_id: str, status: int = 200
) -> ResponseReturnValue:
    """The service's facts, its offerings (all of them for its provider) and my contracts."""
    try:
        found = uc.get_service(uow, me, service_id)
    except ClientError as error:
        not_found_unless_client(error)
        raise
    mine = found.provider_id == me.partner_id
    if mine:
        offerings, _ = uc.list_offerings(
            uow, service_id=service_id, provider_id=None, status=None, page=Page(1, 100)
        )
    else:
        offerings = open_offerings(uow, service_id)
    contracts, _ = cc.list_my_contracts(
        uow,
        me,
        role="provider" if mine else "requester",
        status=None,
        service_id=service_id,
        counterpart=None,
        page=Page(1, 20),
    )
    return render_template(
        "service.html",
        service=found,
        offerings=offerings,
        contracts=contracts,
        mine=mine,
        can_manage=mine or me.has_role(Role.MARKETPLACE_OPERATOR),
        provider=legal_names(uow, [found.provider_id])[found.provider_id],
        provider_partner=uow.partners.get(found.provider_id),
        acceptable=found.state is LifecycleState.PUBLISHED and not mine,
        now=datetime.now(UTC),
        next_states=_next_states(found),
    ), status


def _next_states(found: Service) -> list[LifecycleState]:
    return list(found.state.next_states())


@auth.signed_in
def accept(uow: SqlUnitOfWork, me: Partner, offering_id: str) -> ResponseReturnValue:
    """Accept an offering as it stands: the contract copies its terms and starts now."""
    try:
        offering = uc.load_offering(uow, offering_id)
    except ClientError as error:
        not_found_unless_client(error)
        raise
    form, reference = reference_field(request.form)
    if not form.valid:
        flash(f"Your reference: {form.errors['reference']}", "error")
        return redirect(_offering_page(uow, me, offering))
    try:
        contract = cc.accept_offering(uow, me, offering_id, None, reference)
        commit(uow)
    except ClientError as error:
        flash_refusal(error)
        return redirect(_offering_page(uow, me, offering))
    log.info("ui.offering_accepted", offering_id=offering_id, contract_id=contract.contract_id)
    flash(f"Contract {contract.contract_id} is in force. The terms below are binding.", "success")
    return redirect(url_for("ui.contract", contract_id=contract.contract_id))


def _offering_page(uow: SqlUnitOfWork, me: Partner, offering: Offering) -> str:
    """Back to the offering's service after a refusal, or to the catalogue when that service
    is a draft the requester may not see (it would be a 404 page)."""
    try:
        uc.get_service(uow, me, offering.service_id)
    except ClientError:
        return url_for("ui.catalogue")
    return url_for("ui.service", service_id=offering.service_id)


def refuse_unless_provider(me: Partner, found: Service) -> None:
    """Offer forms are for the service's provider; others see the usual 403 page."""
    if found.provider_id != me.partner_id:
        abort(403, description="Only the service's provider may offer it.")
