"""The route table and the navigation, as data (STYLE.md §4).

Adding a page: write the handler in ui/views/<area>.py (decorated with ``auth.signed_in``
unless it is public), its template in ui/templates/, one ``Route`` line here and, if it
belongs in the header, one ``NavItem``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, g, request
from flask.typing import ResponseReturnValue

from domain.partners import Partner, Role
from ui.views import (
    account,
    admin,
    agreements,
    billing,
    catalogue,
    contracts,
    home,
    provider,
    registration,
    session,
)

URL_PREFIX = "/ui"


@dataclass(frozen=True)
class Route:
    rule: str
    endpoint: str
    view: Callable[..., ResponseReturnValue]
    methods: tuple[str, ...] = ("GET",)
    #: False for the pages anyone may open; every other page redirects to the sign-in.
    signed_in: bool = True


ROUTES = (
    Route("/", "dashboard", home.dashboard),
    Route("/login", "login", session.login, ("GET", "POST"), signed_in=False),
    Route("/logout", "logout", session.logout, ("GET", "POST"), signed_in=False),
    Route("/register", "register", registration.register, ("GET", "POST"), signed_in=False),
    Route("/account", "account", account.account),
    Route("/account/password", "change_password", account.change_password, ("POST",)),
    Route("/admin/partners", "admin_partners", admin.partners),
    Route("/admin/partners/<partner_id>/approve", "approve_partner", admin.approve, ("POST",)),
    Route(
        "/admin/partners/<partner_id>/deactivate", "deactivate_partner", admin.deactivate, ("POST",)
    ),
    Route("/admin/services", "admin_services", admin.services),
    Route("/admin/outbox", "admin_outbox", admin.outbox),
    Route("/admin/outbox/<int:entry_id>/retry", "retry_outbox", admin.retry_outbox, ("POST",)),
    Route("/admin/outbox/retry-dead", "retry_dead_outbox", admin.retry_dead, ("POST",)),
    # the marketplace: buying
    Route("/catalogue", "catalogue", catalogue.catalogue),
    Route("/services/<service_id>", "service", catalogue.service),
    Route("/offerings/<offering_id>/accept", "accept_offering", catalogue.accept, ("POST",)),
    # selling
    Route("/my/services", "my_services", provider.my_services),
    Route("/my/services/new", "register_service", provider.register_service, ("GET", "POST")),
    Route(
        "/services/<service_id>/lifecycle", "service_lifecycle", provider.change_state, ("POST",)
    ),
    Route(
        "/services/<service_id>/deregister", "deregister_service", provider.deregister, ("POST",)
    ),
    Route(
        "/services/<service_id>/offerings/new",
        "new_offering",
        provider.new_offering,
        ("GET", "POST"),
    ),
    Route("/offerings/<offering_id>/withdraw", "withdraw_offering", provider.withdraw, ("POST",)),
    # contracts, agreements, money
    Route("/my/contracts", "my_contracts", contracts.my_contracts),
    Route("/contracts/<contract_id>", "contract", contracts.contract),
    Route(
        "/contracts/<contract_id>/terminate", "terminate_contract", contracts.terminate, ("POST",)
    ),
    Route("/my/agreements", "my_agreements", agreements.my_agreements),
    Route("/my/agreements/new", "create_agreement", agreements.create, ("POST",)),
    Route(
        "/agreements/<agreement_id>/terminate",
        "terminate_agreement",
        agreements.terminate,
        ("POST",),
    ),
    Route("/my/billing", "billing", billing.billing),
    Route("/my/billing.csv", "billing_csv", billing.billing_csv),
)


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    #: Only partners with this role see the item (the page itself enforces it too).
    role: Role | None = None
    #: Other pages that belong to this item's section (highlighted as "current" too).
    also: tuple[str, ...] = ()

    def is_current(self, endpoint: str | None) -> bool:
        return endpoint == self.endpoint or endpoint in self.also

    def visible_to(self, partner: Partner) -> bool:
        return self.role is None or partner.has_role(self.role)


NAVIGATION = (
    NavItem("ui.dashboard", "Dashboard"),
    NavItem("ui.catalogue", "Catalogue", also=("ui.service",)),
    NavItem("ui.my_services", "My services", also=("ui.register_service", "ui.new_offering")),
    NavItem("ui.my_contracts", "Contracts", also=("ui.contract",)),
    NavItem("ui.my_agreements", "Roaming"),
    NavItem("ui.billing", "Billing"),
    NavItem("ui.admin_partners", "Partners", Role.MARKETPLACE_OPERATOR),
    NavItem("ui.admin_services", "All services", Role.MARKETPLACE_OPERATOR),
    NavItem("ui.admin_outbox", "Outbox", Role.MARKETPLACE_OPERATOR),
    # the account is the partner ID at the header's right (ui/templates/base.html)
)


def blueprint() -> Blueprint:
    """Every route of ROUTES under /ui."""
    ui = Blueprint("ui", __name__, url_prefix=URL_PREFIX)
    for route in ROUTES:
        ui.add_url_rule(route.rule, route.endpoint, route.view, methods=list(route.methods))
    return ui


def navigation() -> dict[str, Any]:
    """Template context: the signed-in partner (set by auth.signed_in) and its menu."""
    me: Partner | None = g.get("partner")
    items = [item for item in NAVIGATION if me is not None and item.visible_to(me)]
    return {
        "me": me,
        "nav": items,
        "current_endpoint": request.endpoint,
    }
