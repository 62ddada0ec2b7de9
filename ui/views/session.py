"""Signing in and out."""

from __future__ import annotations

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ui import auth
from ui.forms import Form

#: One message for every refusal: it must not tell which of ID or password was wrong, nor
#: whether the partner exists or was deactivated.
LOGIN_REFUSED = "The partner ID or password is not correct, or the account is not active."
LOGIN_PENDING = (
    "Your registration is waiting for approval by the marketplace operator. "
    "You can sign in as soon as it is approved."
)

log = structlog.get_logger("gembus.ui")


def login() -> ResponseReturnValue:
    """GET shows the form; POST checks the password and starts a fresh session."""
    next_url = auth.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", form=Form(), next_url=next_url)
    form = Form.from_post(request.form)
    partner_id = form.get("partnerId")
    with auth.gembus().uow() as uow:
        outcome = auth.check_password(uow, partner_id, request.form.get("password", ""))
    log.info("ui.login", partner_id=partner_id, outcome=outcome.value)
    if outcome is not auth.LoginOutcome.SIGNED_IN:
        pending = outcome is auth.LoginOutcome.PENDING
        form.error("_form", LOGIN_PENDING if pending else LOGIN_REFUSED)
        return render_template("login.html", form=form, next_url=next_url)
    auth.sign_in(partner_id)
    return redirect(next_url or url_for("ui.dashboard"))


def logout() -> ResponseReturnValue:
    """GET asks (a link must not sign anyone out); the POSTed form ends the session."""
    if request.method == "GET":
        return render_template("logout.html")
    auth.sign_out()
    flash("You have signed out.", "success")
    return redirect(url_for("ui.login"))
