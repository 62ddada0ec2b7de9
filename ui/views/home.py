"""The dashboard: where a partner lands after signing in."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from domain.marketplace import partners as uc
from domain.partners import Partner, PartnerStatus, Role
from persistence.unit_of_work import SqlUnitOfWork
from ui.auth import signed_in


@signed_in
def dashboard(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """The partner's standing, its SOAP integration details and, for the operator, the queue."""
    pending = None
    if me.has_role(Role.MARKETPLACE_OPERATOR):
        _, pending = uc.list_partners(uow, None, PartnerStatus.PENDING, uc.Page(1, 1))
    base = request.host_url.rstrip("/")
    return render_template("dashboard.html", me=me, pending=pending, base_url=base)
