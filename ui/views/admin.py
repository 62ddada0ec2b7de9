"""The marketplace operator's partner administration: review, approve, deactivate."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import partners as uc
from domain.marketplace.model import LifecycleState
from domain.partners import Partner, PartnerStatus, Role
from domain.pubsub import DeliveryStatus
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


OUTBOX_PAGE_SIZE = 25
REDRIVEN_ONE = "Outbox row {entry_id} is pending again; the worker delivers it with a fresh budget."
REDRIVEN_ALL = "{count} dead {rows} pending again; the worker delivers them with a fresh budget."
NOT_REDRIVEN = "Outbox row {entry_id} is neither dead nor pending: nothing to retry."


@auth.signed_in
@auth.operator_only
def outbox(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """The publish/subscribe outbox, newest first, filtered by status (dead = dead letters).

    The same query as ``gembus outbox list``; each row names its subscriber partner through
    its subscription (gone once the partner unsubscribed: then the subscription ID is shown).
    """
    status = _status(request.args.get("status"))
    filters = {"status": status.value} if status else {}
    number = request.args.get("page", "1")
    page = int(number) if number.isdecimal() and int(number) >= 1 else 1
    paged = uc.Page(page, OUTBOX_PAGE_SIZE)
    found, total = uow.outbox.entries(status, (paged.offset, paged.size))
    subscribers: dict[str, str | None] = {}
    for subscription_id in {e.subscription_id for e in found}:
        subscription = uow.outbox.get_subscription(subscription_id)
        subscribers[subscription_id] = subscription.partner_id if subscription else None
    return render_template(
        "admin/outbox.html",
        entries=found,
        subscribers=subscribers,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / OUTBOX_PAGE_SIZE)),
        filters=filters,
        statuses=list(DeliveryStatus),
    )


def _status(raw: str | None) -> DeliveryStatus | None:
    return DeliveryStatus(raw) if raw in {s.value for s in DeliveryStatus} else None


@auth.signed_in
@auth.operator_only
def retry_outbox(uow: SqlUnitOfWork, me: Partner, entry_id: int) -> ResponseReturnValue:
    """Re-drive one row (as ``gembus outbox retry ID``): pending now, attempts back to 0."""
    count = uow.outbox.redrive(entry_id, datetime.now(UTC))
    uow.commit()
    if count:
        log.info("ui.outbox_redrive", entry_id=entry_id, by=me.partner_id)
        flash(REDRIVEN_ONE.format(entry_id=entry_id), "success")
    else:
        flash(NOT_REDRIVEN.format(entry_id=entry_id), "error")
    return redirect(auth.safe_next(request.form.get("back")) or url_for("ui.admin_outbox"))


@auth.signed_in
@auth.operator_only
def retry_dead(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Re-drive every dead letter (as ``gembus outbox retry --all-dead``)."""
    count = uow.outbox.redrive(None, datetime.now(UTC))
    uow.commit()
    log.info("ui.outbox_redrive_dead", count=count, by=me.partner_id)
    rows = "row is" if count == 1 else "rows are"
    flash(REDRIVEN_ALL.format(count=count, rows=rows), "success" if count else "info")
    return redirect(auth.safe_next(request.form.get("back")) or url_for("ui.admin_outbox"))
