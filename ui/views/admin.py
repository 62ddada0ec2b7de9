"""The marketplace operator's partner administration: review, approve, deactivate."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import partners as uc
from domain.marketplace.model import LifecycleState
from domain.partners import Partner, PartnerStatus, Role
from gembus.errors import ClientError, InvalidPagingError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth

PAGE_SIZE = 20
APPROVED = "{partner_id} is approved and can sign in now."
DEACTIVATED = "{partner_id} is deactivated; its web sign-in and SOAP credentials stop working."
log = structlog.get_logger("gembus.ui")


def _choice(enum_type: type[PartnerStatus] | type[Role], raw: str | None) -> str | None:
    """A filter value from the query string, or None for "all" and anything unknown."""
    return raw if raw in {member.value for member in enum_type} else None


@auth.signed_in
@auth.operator_only
def partners(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """All partners, filtered by status and role, PAGE_SIZE per page, ordered by ID."""
    status = _choice(PartnerStatus, request.args.get("status"))
    role = _choice(Role, request.args.get("role"))
    number = request.args.get("page", "1")
    page = int(number) if number.isdecimal() and int(number) >= 1 else 1
    filters: dict[str, Any] = {"status": status, "role": role}
    try:
        found, total = uc.list_partners(
            uow,
            Role(role) if role else None,
            PartnerStatus(status) if status else None,
            uc.Page(page, PAGE_SIZE),
        )
    except InvalidPagingError:
        return redirect(url_for("ui.admin_partners", **filters))
    return render_template(
        "admin/partners.html",
        me=me,
        partners=found,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        filters=filters,
        statuses=list(PartnerStatus),
        roles=list(Role),
    )


UseCase = Callable[[SqlUnitOfWork, Partner, str], Partner]


def _act(
    uow: SqlUnitOfWork, me: Partner, partner_id: str, use_case: UseCase, done: str
) -> ResponseReturnValue:
    """Run one status use case, report it as a flash message, return to the list as it was."""
    try:
        changed = use_case(uow, me, partner_id)
        uow.commit()
    except ClientError as error:
        flash(error.message, "error")
    else:
        status = changed.status.value
        log.info("ui.partner_status", partner_id=partner_id, status=status, by=me.partner_id)
        flash(done.format(partner_id=partner_id), "success")
    back = auth.safe_next(request.form.get("back"))
    return redirect(back or url_for("ui.admin_partners"))


@auth.signed_in
@auth.operator_only
def approve(uow: SqlUnitOfWork, me: Partner, partner_id: str) -> ResponseReturnValue:
    return _act(uow, me, partner_id, uc.approve_partner, APPROVED)


@auth.signed_in
@auth.operator_only
def deactivate(uow: SqlUnitOfWork, me: Partner, partner_id: str) -> ResponseReturnValue:
    return _act(uow, me, partner_id, uc.deactivate_partner, DEACTIVATED)


SERVICE_PAGE_SIZE = 25


@auth.signed_in
@auth.operator_only
def services(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Every service of every provider, in any state, filtered by state and free text.

    browse_catalogue lists one state at a time (its SOAP operation's contract); the operator
    may see every state (get_service's rule), so "all states" reads the repository at once.
    """
    state = request.args.get("state", "")
    text = request.args.get("q", "").strip()
    states = [LifecycleState(state)] if state in set(LifecycleState) else list(LifecycleState)
    filters = {k: v for k, v in (("state", state if len(states) == 1 else ""), ("q", text)) if v}
    number = request.args.get("page", "1")
    page = int(number) if number.isdecimal() and int(number) >= 1 else 1
    found, total = uow.marketplace.browse(
        category=None,
        family=None,
        version=None,
        provider_id=None,
        text=text or None,
        states=states,
        page=((page - 1) * SERVICE_PAGE_SIZE, SERVICE_PAGE_SIZE),
    )
    names = {}
    for provider_id in {s.provider_id for s in found}:
        partner = uow.partners.get(provider_id)
        names[provider_id] = partner.data.legal_name if partner else provider_id
    return render_template(
        "admin/services.html",
        services=found,
        names=names,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / SERVICE_PAGE_SIZE)),
        filters=filters,
        states=list(LifecycleState),
    )
