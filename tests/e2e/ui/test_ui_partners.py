"""The Business Services web UI in a real Chromium: sign-in, self-registration and approval,
the operator-only pages, CSRF, and every route of the route table.

Runs against the session's live gunicorn (PostgreSQL, demo partners). Partners created here
get unique IDs, and no demo partner is changed: other e2e tests sign their SOAP calls with them.
"""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, expect

from domain.partners import Partner, PartnerStatus
from persistence.engine import make_engine, make_session_factory
from persistence.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import LiveServer
from ui.routes import ROUTES, URL_PREFIX, Route

pytestmark = pytest.mark.e2e

ADMIN = ("gembus-admin", "demo-admin-password")
OPERATOR = ("ice-charging", "demo-operator-password")
GENERIC_REFUSAL = "The partner ID or password is not correct"
Screenshot = Callable[[Page, str], Path]
Contexts = Callable[..., BrowserContext]


@pytest.fixture(scope="module")
def stored(live_server: LiveServer) -> Iterator[Callable[[str], Partner | None]]:
    """Read a partner straight from the server's database, bypassing the UI."""
    engine = make_engine(live_server.env["GEMBUS_DATABASE_URL"])
    factory = make_session_factory(engine)

    def get(partner_id: str) -> Partner | None:
        with SqlUnitOfWork(factory) as uow:
            return uow.partners.get(partner_id)

    yield get
    engine.dispose()


def ends_with(path: str) -> re.Pattern[str]:
    return re.compile(re.escape(path) + "$")


def sign_in(page: Page, partner_id: str, password: str) -> None:
    page.goto("/ui/login")
    page.get_by_label("Partner ID").fill(partner_id)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def unique_operator_id() -> str:
    return "IT*" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(3))


def fill_registration(page: Page, partner_id: str, operator_ids: str, password: str) -> None:
    page.get_by_label("Partner ID").fill(partner_id)
    page.get_by_label("Legal name").fill(f"{partner_id.title()} S.r.l.")
    page.get_by_label("EVSE operator").check()
    page.get_by_label("Operator IDs").fill(operator_ids)
    page.get_by_label("E-mail").fill(f"ops@{partner_id}.example")
    page.get_by_label("Telephone").fill("+39 06 1234567")
    page.get_by_label("Street and number").fill("Via Nazionale 1")
    page.get_by_label("City").fill("Roma")
    page.get_by_label("Country").fill("IT")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password").fill(password)
    page.get_by_role("button", name="Submit application").click()


def register_pending(page: Page, partner_id: str, password: str) -> None:
    page.goto("/ui/register")
    fill_registration(page, partner_id, unique_operator_id(), password)
    expect(page.get_by_role("heading", name="Pending approval")).to_be_visible()


def approve(page: Page, partner_id: str) -> None:
    """As the signed-in operator, approve one pending partner from the filtered list."""
    page.goto("/ui/admin/partners?status=pending")
    page.locator(f'tr[data-partner="{partner_id}"]').get_by_role("button", name="Approve").click()
    expect(page.locator(".flash--success")).to_contain_text(f"{partner_id} is approved")


def test_admin_signs_in_and_sees_the_dashboard(page: Page, screenshot: Screenshot) -> None:
    page.goto("/ui/")
    expect(page).to_have_url(ends_with("/ui/login?next=/ui/"))
    screenshot(page, "login")
    sign_in(page, *ADMIN)
    expect(page.get_by_role("heading", name="Welcome, gembus Marketplace Operator")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(
        [
            "Dashboard",
            "Catalogue",
            "My services",
            "Contracts",
            "Roaming",
            "Billing",
            "Partners",
            "All services",
            "Outbox",
        ]
    )
    screenshot(page, "dashboard-operator")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "dashboard-operator-mobile")


def test_session_cookie_is_httponly_lax_and_scoped_to_ui(
    new_context: Contexts, live_server: LiveServer
) -> None:
    context = new_context()
    sign_in(context.new_page(), *ADMIN)
    (cookie,) = [c for c in context.cookies() if c["name"] == "gembus_ui"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/ui"
    assert not cookie["secure"]  # plain http here; https requests get Secure
    assert 7.9 * 3600 < cookie["expires"] - time.time() <= 8 * 3600


@pytest.mark.parametrize(
    ("partner_id", "password"),
    [("gembus-admin", "not-the-password"), ("no-such-partner", "demo-admin-password")],
)
def test_a_failed_sign_in_shows_one_generic_message(
    page: Page, screenshot: Screenshot, partner_id: str, password: str
) -> None:
    sign_in(page, partner_id, password)
    expect(page.locator("#form-error")).to_have_text(
        "The partner ID or password is not correct, or the account is not active."
    )
    expect(page).to_have_url(ends_with("/ui/login"))
    expect(page.get_by_label("Password")).to_have_value("")
    screenshot(page, "login-refused")


def test_self_registration_waits_for_approval_then_signs_in(
    new_context: Contexts, screenshot: Screenshot, stored: Callable[[str], Partner | None]
) -> None:
    partner_id = f"enel-x-{secrets.token_hex(3)}"
    password = "a-long-enough-password"
    applicant = new_context().new_page()

    applicant.goto("/ui/register")
    screenshot(applicant, "register")
    fill_registration(applicant, partner_id, f"{unique_operator_id()}, IT*", password)
    error = applicant.locator("#e-operatorIds")
    expect(error).to_contain_text("'IT*': does not match the operator ID pattern")
    expect(applicant.get_by_label("Operator IDs")).to_have_attribute("aria-invalid", "true")
    expect(applicant.get_by_label("Legal name")).to_have_value(f"{partner_id.title()} S.r.l.")
    screenshot(applicant, "register-error")
    assert stored(partner_id) is None

    operator_id = unique_operator_id()
    fill_registration(applicant, partner_id, operator_id, password)
    expect(applicant.get_by_role("heading", name="Pending approval")).to_be_visible()
    expect(applicant.locator(".facts")).to_contain_text(operator_id)
    screenshot(applicant, "registered")
    partner = stored(partner_id)
    assert partner is not None and partner.status is PartnerStatus.PENDING

    sign_in(applicant, partner_id, password)
    expect(applicant.locator("#form-error")).to_contain_text("waiting for approval")
    expect(applicant).to_have_url(ends_with("/ui/login"))

    admin = new_context().new_page()
    sign_in(admin, *ADMIN)
    approve(admin, partner_id)
    admin.goto("/ui/admin/partners")
    screenshot(admin, "admin-partners")

    sign_in(applicant, partner_id, password)
    expect(
        applicant.get_by_role("heading", name=f"Welcome, {partner_id.title()} S.r.l.")
    ).to_be_visible()
    expect(applicant.get_by_role("link", name="Partners", exact=True)).to_have_count(0)


def test_admin_filters_and_deactivates_a_partner(
    new_context: Contexts, stored: Callable[[str], Partner | None]
) -> None:
    partner_id = f"leaving-{secrets.token_hex(3)}"
    register_pending(new_context().new_page(), partner_id, "a-long-enough-password")
    admin = new_context().new_page()
    sign_in(admin, *ADMIN)

    admin.goto("/ui/admin/partners")
    admin.get_by_label("Role").select_option("Dso")
    admin.get_by_role("button", name="Apply").click()
    expect(admin.locator("tbody tr")).to_have_count(1)
    expect(admin.locator("tbody tr")).to_contain_text("enel-dso")

    admin.goto("/ui/admin/partners?status=pending")
    row = admin.locator(f'tr[data-partner="{partner_id}"]')
    row.get_by_role("button", name="Deactivate").click()
    expect(admin.locator(".flash--success")).to_contain_text(f"{partner_id} is deactivated")
    expect(admin).to_have_url(ends_with("/ui/admin/partners?status=pending"))
    partner = stored(partner_id)
    assert partner is not None and partner.status is PartnerStatus.DEACTIVATED


def test_a_partner_changes_its_password(new_context: Contexts, screenshot: Screenshot) -> None:
    partner_id = f"rotor-{secrets.token_hex(3)}"
    old, new = "the-first-password", "the-second-password"
    register_pending(new_context().new_page(), partner_id, old)
    admin = new_context().new_page()
    sign_in(admin, *ADMIN)
    approve(admin, partner_id)

    page = new_context().new_page()
    sign_in(page, partner_id, old)
    page.get_by_role("banner").get_by_role("link", name=partner_id).click()
    page.get_by_label("Current password").fill("wrong-password-here")
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Repeat new password").fill(new)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#e-currentPassword")).to_have_text("The current password is not correct.")
    screenshot(page, "account-error")
    page.get_by_label("Current password").fill(old)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Repeat new password").fill(new)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".flash--success")).to_contain_text("Your password has been changed")
    screenshot(page, "account")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, partner_id, old)
    expect(page.locator("#form-error")).to_contain_text(GENERIC_REFUSAL)
    sign_in(page, partner_id, new)
    expect(page.get_by_role("heading", name="Welcome", exact=False)).to_be_visible()


def test_a_non_operator_gets_403_on_the_admin_page(page: Page, screenshot: Screenshot) -> None:
    sign_in(page, *OPERATOR)
    expect(page.get_by_role("link", name="Partners", exact=True)).to_have_count(0)
    response = page.goto("/ui/admin/partners")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Access denied")).to_be_visible()
    screenshot(page, "forbidden")
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    refused = page.request.post(
        "/ui/admin/partners/enel-dso/deactivate", form={"csrf_token": token or ""}
    )
    assert refused.status == 403


def test_a_post_without_the_csrf_token_is_refused(page: Page, live_server: LiveServer) -> None:
    sign_in(page, *ADMIN)
    # the browser's own cookies: signed in, but the form lacks (or fakes) the token
    for form in ({}, {"csrf_token": "forged"}):
        refused = page.request.post("/ui/logout", form=form)
        assert refused.status == 400
        assert "not sent from this site" in refused.text()
    page.goto("/ui/")
    expect(page.get_by_role("heading", name="Welcome", exact=False)).to_be_visible()

    anonymous = requests.post(
        f"{live_server.base_url}/ui/login",
        data={"partnerId": ADMIN[0], "password": ADMIN[1]},
        allow_redirects=False,
        timeout=10,
    )
    assert anonymous.status_code == 400


@pytest.mark.parametrize("route", [r for r in ROUTES if "GET" in r.methods], ids=lambda r: r.rule)
def test_every_page_of_the_route_table_answers_an_anonymous_visitor(
    live_server: LiveServer, route: Route
) -> None:
    """Signed-in pages send anonymous visitors to the sign-in page; public pages answer."""
    answer = requests.get(
        f"{live_server.base_url}{URL_PREFIX}{route.rule}", allow_redirects=False, timeout=10
    )
    if route.signed_in:
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith(f"/ui/login?next={URL_PREFIX}")
    else:
        assert answer.status_code == 200
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
