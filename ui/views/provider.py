"""A provider's side of the catalogue: its services in every state, registering one (its
endpoint's WSDL is checked against the canonical family), its lifecycle, and its offerings.

The lifecycle and deregister actions serve the operator's service list too: the domain lets
the marketplace operator act on any provider's service, and the form says where to return.
"""

from __future__ import annotations

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import catalogue as uc
from domain.marketplace.catalogue import ContractMismatchError
from domain.marketplace.model import LifecycleState, OfferingStatus
from domain.marketplace.partners import Page
from domain.partners import Partner
from gembus.errors import ClientError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth
from ui.market_forms import (
    CATEGORY_LABELS,
    MarketForm,
    interface_choices,
    offering_form,
    reason_field,
    service_form,
)
from ui.views.catalogue import refuse_unless_provider
from ui.views.market import (
    Paging,
    back,
    commit,
    flash_refusal,
    not_found_unless_client,
    page_number,
)

PAGE_SIZE = 20
log = structlog.get_logger("gembus.ui")

#: What each lifecycle button is called and what it tells the provider afterwards.
STATE_ACTIONS = {
    LifecycleState.PUBLISHED: ("Publish", "is published: partners find it in the catalogue."),
    LifecycleState.DEPRECATED: ("Deprecate", "is deprecated: no new contracts; existing ones run."),
    LifecycleState.RETIRED: ("Retire", "is retired."),
}


@auth.signed_in
def my_services(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Every service of mine, drafts and retired ones included, with its open offerings.

    The catalogue use case lists one state at a time; a provider may see all of its own
    services in any state (get_service's rule), so the list reads them in one query.
    """
    page = page_number()
    services, total = uow.marketplace.browse(
        category=None,
        family=None,
        version=None,
        provider_id=me.partner_id,
        text=None,
        states=list(LifecycleState),
        page=((page - 1) * PAGE_SIZE, PAGE_SIZE),
    )
    open_counts = {
        s.service_id: uc.list_offerings(
            uow,
            service_id=s.service_id,
            provider_id=None,
            status=OfferingStatus.OPEN,
            page=Page(1, 1),
        )[1]
        for s in services
    }
    return render_template(
        "my/services.html",
        services=services,
        open_counts=open_counts,
        paging=Paging.of(page, total, PAGE_SIZE),
        actions=STATE_ACTIONS,
    )


@auth.signed_in
def register_service(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """GET shows the form; POST checks the fields, then the endpoint's WSDL (the inspector
    fetches it), and stores a draft only if it serves the canonical contract."""
    if request.method == "GET":
        return _service_form(MarketForm())
    form, data = service_form(request.form)
    if data is None:
        return _service_form(form)
    services = auth.gembus().services
    assert services is not None, "gembus.bootstrap always wires the inspector"
    try:
        created = uc.register_service(uow, services.inspector, me, None, data)
        commit(uow)
    except ContractMismatchError as error:
        form.add_contract_mismatch(error.message)
        return _service_form(form)
    except ClientError as error:
        form.add_market_error(error.field, error.message)
        return _service_form(form)
    log.info("ui.service_registered", service_id=created.service_id, by=me.partner_id)
    flash(
        f"{data.name} is registered as a draft: its endpoint serves the canonical "
        f"{data.interface.family} v{data.interface.version} contract. Publish it when ready.",
        "success",
    )
    return redirect(url_for("ui.service", service_id=created.service_id))


def _service_form(form: MarketForm) -> ResponseReturnValue:
    page = render_template(
        "my/register_service.html",
        form=form,
        categories=[(c.value, label) for c, label in CATEGORY_LABELS.items()],
        interfaces=[(i.value, f"{i.label} — {i.namespace}") for i in interface_choices()],
    )
    return page, 200 if form.valid else 422


@auth.signed_in
def change_state(uow: SqlUnitOfWork, me: Partner, service_id: str) -> ResponseReturnValue:
    """One lifecycle step (publish, deprecate, retire), by the provider or the operator."""
    target = request.form.get("target", "")
    done = url_for("ui.service", service_id=service_id)
    if target not in set(LifecycleState):
        flash("Lifecycle: choose publish, deprecate or retire.", "error")
        return redirect(back(done))
    try:
        changed = uc.change_lifecycle(uow, me, service_id, LifecycleState(target))
        commit(uow)
    except ClientError as error:
        not_found_unless_client(error)
        flash_refusal(error)
        return redirect(back(done))
    log.info("ui.service_state", service_id=service_id, state=target, by=me.partner_id)
    flash(f"{changed.data.name} {STATE_ACTIONS[changed.state][1]}", "success")
    return redirect(back(done))


@auth.signed_in
def deregister(uow: SqlUnitOfWork, me: Partner, service_id: str) -> ResponseReturnValue:
    """Withdraw the service at once: offerings withdrawn, contracts terminated, retired."""
    form, reason = reason_field(request.form)
    done = url_for("ui.service", service_id=service_id)
    if not form.valid:
        flash(f"Reason: {form.errors['reason']}", "error")
        return redirect(back(done))
    try:
        retired, offerings, contracts = uc.deregister_service(uow, me, service_id, None, reason)
        commit(uow)
    except ClientError as error:
        not_found_unless_client(error)
        flash_refusal(error)
        return redirect(back(done))
    log.info("ui.service_deregistered", service_id=service_id, by=me.partner_id)
    flash(
        f"{retired.data.name} is deregistered: {offerings} offering(s) withdrawn, "
        f"{contracts} contract(s) terminated.",
        "success",
    )
    return redirect(back(done))


@auth.signed_in
def new_offering(uow: SqlUnitOfWork, me: Partner, service_id: str) -> ResponseReturnValue:
    """GET shows the terms form; POST creates the offering through the domain's rules."""
    try:
        found = uc.get_service(uow, me, service_id)
    except ClientError as error:
        not_found_unless_client(error)
        raise
    refuse_unless_provider(me, found)
    if request.method == "GET":
        return render_template("my/new_offering.html", service=found, form=MarketForm())
    form, offered = offering_form(request.form)
    if offered is not None:
        try:
            offering = uc.create_offering(
                uow,
                me,
                service_id,
                offered.name,
                offered.description,
                offered.terms,
                offered.validity,
            )
            commit(uow)
        except ClientError as error:
            form.add_market_error(error.field, error.message)
        else:
            log.info("ui.offering_created", offering_id=offering.offering_id)
            flash(f"Offering “{offering.name}” is open for acceptance.", "success")
            return redirect(url_for("ui.service", service_id=service_id))
    return render_template("my/new_offering.html", service=found, form=form), 422


@auth.signed_in
def withdraw(uow: SqlUnitOfWork, me: Partner, offering_id: str) -> ResponseReturnValue:
    """No new contracts under the offering; contracts already signed keep their terms."""
    try:
        offering = uc.load_offering(uow, offering_id)
        uc.withdraw_offering(uow, me, offering_id)
        commit(uow)
    except ClientError as error:
        not_found_unless_client(error)
        flash_refusal(error)
        return redirect(back(url_for("ui.my_services")))
    flash(f"Offering “{offering.name}” is withdrawn; signed contracts keep their terms.", "success")
    return redirect(url_for("ui.service", service_id=offering.service_id))
