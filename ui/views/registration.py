"""Self-registration: a partner applies, the marketplace operator approves it later."""

from __future__ import annotations

import structlog
from flask import render_template, request
from flask.typing import ResponseReturnValue

from domain.marketplace import partners as uc
from gembus.errors import ClientError
from ui import auth
from ui.forms import SELF_REGISTRATION_ROLES, Form, partner_data, registration_form

log = structlog.get_logger("gembus.ui")


def register() -> ResponseReturnValue:
    """The contract's checks first, then the domain's; nothing is stored unless all pass."""
    if request.method == "GET":
        return _page(Form())
    form, password = registration_form(request.form)
    if not form.valid:
        return _page(form)
    gembus = auth.gembus()
    try:
        with gembus.uow() as uow:
            partner = uc.self_register_partner(
                uow, gembus.vault, form.get("partnerId"), partner_data(form), password
            )
            uow.commit()
    except ClientError as error:
        form.add_domain_error(error)
        return _page(form)
    log.info("ui.self_registered", partner_id=partner.partner_id)
    return render_template("registered.html", partner=partner)


def _page(form: Form) -> ResponseReturnValue:
    status = 200 if form.valid else 422
    return render_template("register.html", form=form, roles=SELF_REGISTRATION_ROLES), status
