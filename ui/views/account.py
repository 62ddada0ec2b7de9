"""A partner's own data and its password (the UsernameToken password of its SOAP calls)."""

from __future__ import annotations

import structlog
from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from domain.marketplace import partners as uc
from domain.partners import Partner
from gembus.errors import ClientError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth
from ui.forms import Form, check_password_pair

log = structlog.get_logger("gembus.ui")


@auth.signed_in
def account(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    return render_template("account.html", me=me, form=Form())


@auth.signed_in
def change_password(uow: SqlUnitOfWork, me: Partner) -> ResponseReturnValue:
    """Rotate the credentials after re-checking the current password.

    The new password replaces the SOAP UsernameToken password too; other browser sessions of
    this partner end, this one continues.
    """
    form = Form()
    password = check_password_pair(form, request.form, "newPassword")
    current = request.form.get("currentPassword", "")
    outcome = auth.check_password(uow, me.partner_id, current)
    if outcome is not auth.LoginOutcome.SIGNED_IN:
        form.error("currentPassword", "The current password is not correct.")
    if not form.valid:
        return render_template("account.html", me=me, form=form), 422
    try:
        uc.rotate_credentials(uow, auth.gembus().vault, me, me.partner_id, password)
        uow.commit()
    except ClientError as error:
        form.add_domain_error(error)
        return render_template("account.html", me=me, form=form), 422
    auth.renew_sign_in()
    log.info("ui.credentials_rotated", partner_id=me.partner_id)
    flash("Your password has been changed. Use the new one for SOAP calls too.", "success")
    return redirect(url_for("ui.account"))
