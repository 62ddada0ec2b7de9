"""The marketplace pages in a real Chromium, driven as partners would drive them.

A provider registers a service whose endpoint is the live server's own evse_search endpoint
(registration fetches that WSDL and finds it canonical), publishes it and offers it; a
requester finds it, accepts the offering and sees the contract. Real SOAP calls under the demo
contract fill the usage chart; the billing page and its CSV show the demo monthly fee.

Services and agreements created here carry a random tag; the demo contract and the demo
roaming agreement are never ended (other e2e tests validate against them).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import REPO
from tests.e2e.conftest import LiveServer
from tests.e2e.ui.test_ui_partners import ADMIN, OPERATOR, ends_with, sign_in
from tests.support.soap import envelope, wsse_header

pytestmark = pytest.mark.e2e

REQUESTER = ("tnm-mobility", "demo-evsp-password")
THIRD_PARTY = ("bmw-emobility", "demo-evsp2-password")
SEARCH_EVSE = REPO / "tests" / "fixtures" / "requests" / "evse_search" / "SearchEvse.xml"
Screenshot = Callable[[Page, str], Path]
Contexts = Callable[..., BrowserContext]


def signed_in(new_context: Contexts, partner: tuple[str, str]) -> Page:
    page = new_context().new_page()
    sign_in(page, *partner)
    expect(page.get_by_role("heading", name="Welcome", exact=False)).to_be_visible()
    return page


def register_service(page: Page, name: str, interface: str, endpoint: str) -> None:
    """Fill and send the register-a-service form from the My services page."""
    page.goto("/ui/my/services")
    page.get_by_role("link", name="Register a service").first.click()
    page.get_by_label("Service name").fill(name)
    page.get_by_label("Category").select_option("BasicEndUser")
    page.get_by_label("Interface").select_option(interface)
    page.get_by_label("Description").fill(f"{name}: live charge point search across Germany.")
    page.get_by_label("Endpoint URL").fill(endpoint)
    page.get_by_role("button", name="Check contract and register").click()


def registered_draft(page: Page, live_server: LiveServer, name: str) -> str:
    """Register a matching evse_search service; returns its ID (from the detail page's URL)."""
    register_service(page, name, "evse_search:1", f"{live_server.base_url}/services/evse_search")
    expect(page.locator(".flash--success")).to_contain_text("is registered as a draft")
    expect(page).to_have_url(re.compile(r"/ui/services/svc-[0-9a-f]+$"))
    return page.url.rsplit("/", 1)[1]


def create_offering(page: Page, name: str, *, price: str = "0.0025", fee: str = "25.00") -> None:
    page.get_by_role("link", name="Create offering").first.click()
    page.get_by_label("Offering name").fill(name)
    page.get_by_label(re.compile(r"^Price per call( optional)?$")).fill(price)
    page.get_by_label("Monthly fee").fill(fee)
    page.get_by_label("Currency").fill("eur")
    page.get_by_label("Calls per day").fill("5000")
    page.get_by_role("button", name="Create offering").click()


def search_evse(live_server: LiveServer, partner: tuple[str, str]) -> requests.Response:
    """One SearchEvse call with a fresh UsernameToken: gembus meters it under the caller's
    contract for evse_search. The address group is empty on purpose: the answer is the
    Client.InvalidCriteria fault, so each call counts as a fault too."""
    body = SEARCH_EVSE.read_text().split("?>", 1)[1]
    body = re.sub(r"<s:address>.*?</s:address>", "<s:address/>", body, flags=re.S)
    return requests.post(
        f"{live_server.base_url}/services/evse_search",
        data=envelope(body, wsse_header(*partner)),
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '"urn:gembus:evse-search:v1/SearchEvse"',
        },
        timeout=10,
    )


def demo_contract_url(page: Page) -> str:
    """The requester's demo contract for gembus's Search EVSE (created by `gembus demo load`)."""
    page.goto("/ui/my/contracts?role=requester")
    link = page.get_by_role("link", name="Search EVSE", exact=True)
    href = link.get_attribute("href")
    assert href is not None
    return href


def number(page: Page, selector: str) -> int:
    return int((page.locator(selector).text_content() or "0").replace(",", ""))


def test_the_full_buy_flow(
    new_context: Contexts, live_server: LiveServer, screenshot: Screenshot
) -> None:
    tag = secrets.token_hex(3)
    name = f"Berlin EVSE Finder {tag}"
    provider = signed_in(new_context, OPERATOR)

    service_id = registered_draft(provider, live_server, name)
    expect(provider.get_by_role("heading", name=name)).to_contain_text("Draft")
    provider.get_by_role("button", name="Publish").click()
    expect(provider.locator(".flash--success")).to_contain_text(f"{name} is published")
    create_offering(provider, "Fleet")
    expect(provider.locator(".flash--success")).to_contain_text("“Fleet” is open for acceptance")
    expect(provider.locator("[data-offering]")).to_contain_text("0.0025 EUR")
    provider.goto("/ui/my/services")
    row = provider.locator(f'tr[data-service="{service_id}"]')
    expect(row).to_contain_text("Published")
    screenshot(provider, "my-services")

    requester = signed_in(new_context, REQUESTER)
    requester.get_by_role("navigation", name="Main").get_by_role("link", name="Catalogue").click()
    screenshot(requester, "catalogue")
    requester.get_by_label("Search").fill(tag.upper())
    requester.get_by_role("button", name="Search").click()
    expect(requester.locator("#services > li")).to_have_count(1)
    expect(requester.locator("#services")).to_contain_text("ICE Charging GmbH")
    requester.get_by_role("link", name=name).click()
    expect(requester).to_have_url(ends_with(f"/ui/services/{service_id}"))
    offer = requester.locator("[data-offering]")
    expect(offer).to_contain_text("25.00 EUR")
    screenshot(requester, "service-detail")
    offer.get_by_label("Your reference").fill(f"PO-{tag}")
    offer.get_by_role("button", name="Accept").click()

    expect(requester).to_have_url(re.compile(r"/ui/contracts/sc-[0-9a-f]+$"))
    expect(requester.locator(".flash--success")).to_contain_text("is in force")
    expect(requester.get_by_role("heading", name=name)).to_contain_text("Active")
    contract_id = requester.url.rsplit("/", 1)[1]
    requester.get_by_role("navigation", name="Main").get_by_role("link", name="Contracts").click()
    mine = requester.locator(f'tr[data-contract="{contract_id}"]')
    expect(mine).to_contain_text(name)
    expect(mine).to_contain_text("Bought")
    expect(mine).to_contain_text(f"ref. PO-{tag}")

    provider.goto("/ui/my/contracts?role=provider")
    sold = provider.locator(f'tr[data-contract="{contract_id}"]')
    expect(sold).to_contain_text("Sold")
    expect(sold).to_contain_text("The New Motion B.V.")


def test_soap_calls_under_the_demo_contract_fill_the_usage_chart_and_the_bill(
    new_context: Contexts, live_server: LiveServer, screenshot: Screenshot
) -> None:
    requester = signed_in(new_context, REQUESTER)
    requester.goto(demo_contract_url(requester))
    calls_before, faults_before = number(requester, "#kpi-calls"), number(requester, "#kpi-faults")

    for _ in range(4):
        answer = search_evse(live_server, REQUESTER)
        assert answer.status_code == 500 and "Client.InvalidCriteria" in answer.text

    requester.reload()
    assert number(requester, "#kpi-calls") == calls_before + 4
    assert number(requester, "#kpi-faults") == faults_before + 4
    chart = requester.locator("#usage-chart svg")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.chart__fault")).not_to_have_count(0)
    expect(chart.locator(".chart__latency circle")).not_to_have_count(0)
    expect(requester.locator("#usage-chart .legend")).to_contain_text("p95 latency")
    today = requester.locator("#usage-table tbody tr").filter(
        has_text=f"{datetime.now(UTC):%d %b %Y}"
    )
    expect(today.locator("td").nth(0)).to_have_text(str(calls_before + 4))
    expect(today.locator("td").nth(1)).to_have_text(str(faults_before + 4))
    screenshot(requester, "contract-usage")

    requester.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    month = f"{datetime.now(UTC):%Y-%m}"
    expect(requester.get_by_role("heading", name=f"Statement {month}")).to_contain_text(
        "Provisional"
    )
    fee = requester.locator('tr[data-line-type="monthlyFee"]').filter(
        has_text="Roaming authorization"
    )
    expect(fee).to_contain_text("50.00 EUR")
    expect(
        requester.locator('tr[data-line-type="callCharge"]').filter(has_text="Search EVSE")
    ).to_be_visible()
    screenshot(requester, "billing")

    with requester.expect_download() as download:
        requester.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"gembus-statement-tnm-mobility-{month}.csv"
    text = Path(download.value.path()).read_text()
    assert text.startswith("line,serviceContractId,serviceId,serviceName,role,")
    assert ",Roaming authorization,requester,gembus-admin,monthlyFee,1,50.00,50.00,EUR" in text
    assert ",Search EVSE,requester,gembus-admin,callCharge," in text
    answer = requester.request.get(f"/ui/my/billing.csv?month={month}")
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith("attachment;")


def test_a_bad_billing_month_names_the_field(new_context: Contexts) -> None:
    page = signed_in(new_context, REQUESTER)
    response = page.goto("/ui/my/billing?month=2999-01")
    assert response is not None and response.status == 422
    expect(page.locator("#form-error")).to_have_text("Month: 2999-01 has not begun")
    assert page.request.get("/ui/my/billing.csv?month=13-2024").status == 422


def test_a_third_partner_cannot_open_someone_elses_contract(
    new_context: Contexts, live_server: LiveServer
) -> None:
    contract_url = demo_contract_url(signed_in(new_context, REQUESTER))
    outsider = signed_in(new_context, THIRD_PARTY)
    response = outsider.goto(contract_url)
    assert response is not None and response.status == 404
    expect(outsider.get_by_role("heading", name="Page not found")).to_be_visible()
    token = outsider.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
    refused = outsider.request.post(f"{contract_url}/terminate", form={"csrf_token": token})
    assert refused.status == 404

    admin = signed_in(new_context, ADMIN)  # the operator sees every contract
    assert (resp := admin.goto(contract_url)) is not None and resp.status == 200


def test_a_wsdl_mismatch_is_shown_next_to_the_endpoint_url(
    new_context: Contexts, live_server: LiveServer, screenshot: Screenshot
) -> None:
    name = f"Not a marketplace {secrets.token_hex(3)}"
    page = signed_in(new_context, OPERATOR)
    register_service(page, name, "marketplace:1", f"{live_server.base_url}/services/evse_search")
    error = page.locator("#e-endpointUrl")
    expect(error).to_contain_text("does not serve the canonical marketplace v1 contract")
    differences = page.locator("#endpoint-differences")
    differences.get_by_text("Show how the served WSDL differs").click()
    expect(differences.locator("li").first).to_contain_text("bindings")
    expect(differences).to_contain_text("EvseSearchSoap11Binding")
    expect(page.get_by_label("Endpoint URL")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Service name")).to_have_value(name)
    expect(page.get_by_label("Interface")).to_have_value("marketplace:1")
    screenshot(page, "register-service-mismatch")
    page.goto("/ui/my/services")
    expect(page.get_by_text(name)).to_have_count(0)


def test_offering_rules_are_the_domains(
    new_context: Contexts, live_server: LiveServer, screenshot: Screenshot
) -> None:
    """A deprecated service cannot be offered (form error); an offering prepared on a draft
    cannot be accepted until the service is published (flash naming the offering)."""
    provider = signed_in(new_context, OPERATOR)
    service_id = registered_draft(provider, live_server, f"Draft search {secrets.token_hex(3)}")
    create_offering(provider, "Early bird")
    expect(provider.locator(".flash--success")).to_contain_text("open for acceptance")
    offering_id = provider.locator("[data-offering]").get_attribute("data-offering")

    requester = signed_in(new_context, REQUESTER)
    assert (hidden := requester.goto(f"/ui/services/{service_id}")) is not None
    assert hidden.status == 404
    token = requester.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
    refused = requester.request.post(
        f"/ui/offerings/{offering_id}/accept", form={"csrf_token": token}, max_redirects=0
    )
    assert refused.status == 302 and refused.headers["location"] == "/ui/catalogue"
    requester.goto("/ui/catalogue")
    expect(requester.locator(".flash--error")).to_have_text(
        f"Offering: service {service_id} is draft"
    )

    provider.get_by_role("button", name="Publish").click()
    provider.get_by_role("button", name="Deprecate").click()
    expect(provider.locator(".flash--success")).to_contain_text("is deprecated")
    expect(provider.get_by_role("link", name="Create offering")).to_have_count(0)
    provider.goto(f"/ui/services/{service_id}/offerings/new")
    provider.get_by_label("Offering name").fill("Too late")
    provider.get_by_label("Monthly fee").fill("10")
    provider.get_by_label("Currency").fill("EUR")
    provider.get_by_role("button", name="Create offering").click()
    expect(provider.locator("#form-error")).to_have_text("a deprecated service cannot be offered")
    provider.get_by_label("Monthly fee").fill("-1")
    provider.get_by_role("button", name="Create offering").click()
    expect(provider.locator("#e-monthlyFee")).to_have_text("Prices cannot be negative.")
    screenshot(provider, "offering-refused")


def test_roaming_agreements_are_recorded_and_terminated(
    new_context: Contexts, screenshot: Screenshot
) -> None:
    page = signed_in(new_context, REQUESTER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Roaming").click()
    expect(page.locator("#agreements")).to_contain_text("DE*ICE")
    expect(page.get_by_label("EV service provider ID")).to_have_value("NL-TNM")

    page.get_by_label("EVSE operator ID").fill("FR*ZZZ")
    page.get_by_role("button", name="Record agreement").click()
    expect(page.locator("#e-operatorId")).to_contain_text("no partner owns operator ID FR*ZZZ")

    page.get_by_label("EVSE operator ID").fill("de*bmw")
    page.get_by_label("Valid from").fill("2031-01-01")
    page.get_by_label("Valid until").fill("2030-01-01")
    page.get_by_role("button", name="Record agreement").click()
    expect(page.locator("#e-validTo")).to_have_text("validTo must be after validFrom")

    page.get_by_label("Valid until").fill("2032-01-01")
    page.get_by_role("button", name="Record agreement").click()
    expect(page.locator(".flash--success")).to_contain_text("DE*BMW ↔ NL-TNM is recorded")
    row = page.locator("#agreements tbody tr").filter(has_text="DE*BMW")
    expect(row).to_contain_text("Pending")
    screenshot(page, "agreements")
    row.get_by_role("button", name="Terminate").click()
    expect(page.locator(".flash--success")).to_contain_text("is terminated")
    expect(page.locator("#agreements tbody tr").filter(has_text="DE*BMW")).to_contain_text(
        "Terminated"
    )


def test_the_operator_manages_every_service(
    new_context: Contexts, live_server: LiveServer, screenshot: Screenshot
) -> None:
    provider = signed_in(new_context, OPERATOR)
    draft_name = f"Operator review {secrets.token_hex(3)}"
    draft_id = registered_draft(provider, live_server, draft_name)

    admin = signed_in(new_context, ADMIN)
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="All services").click()
    row = admin.locator(f'tr[data-service="{draft_id}"]')
    expect(row).to_contain_text("Draft")
    expect(row).to_contain_text("ICE Charging GmbH")
    screenshot(admin, "admin-services")

    admin.get_by_label("State").select_option("draft")
    admin.get_by_role("button", name="Apply").click()
    expect(admin.locator("tbody tr").filter(has_text="Published")).to_have_count(0)
    row.get_by_role("button", name="Deregister").click()
    expect(admin.locator(".flash--success")).to_contain_text(f"{draft_name} is deregistered")
    expect(admin).to_have_url(ends_with("state=draft"))
    admin.goto("/ui/admin/services?state=retired")
    expect(admin.locator(f'tr[data-service="{draft_id}"]')).to_contain_text("Retired")

    refused = provider.goto("/ui/admin/services")
    assert refused is not None and refused.status == 403
