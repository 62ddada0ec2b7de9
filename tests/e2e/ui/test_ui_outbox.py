"""The operator's outbox page in a real Chromium: a dead letter is listed, retried, pending again.

The dead row is made as the relay would leave it: a subscription (over SOAP), an event
published through the domain's publish() into the live server's database, then the row marked
dead with an error, as after its last refused attempt. No worker runs against the live server,
so a re-driven row stays pending for the test to see.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, text

from domain.identifiers import EvseId
from domain.pubsub import EvseStatusChanged, Topic, operator_of, publish
from persistence.engine import make_engine, make_session_factory
from persistence.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import LiveServer
from tests.e2e.ui.test_ui_partners import ADMIN, OPERATOR, sign_in
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

EVSP = ("tnm-mobility", "demo-evsp-password")
REFUSED = "Client: the subscriber refused the notification"
Screenshot = Callable[[Page, str], Path]


@pytest.fixture
def database(live_server: LiveServer) -> Iterator[Engine]:
    engine = make_engine(live_server.env["GEMBUS_DATABASE_URL"])
    yield engine
    engine.dispose()


@pytest.fixture
def subscription(live_server: LiveServer) -> Iterator[tuple[str, str]]:
    """A tnm-mobility subscription to DE*ICE status changes at a port nothing listens on."""
    evsp = client(live_server.base_url, "marketplace", *EVSP)
    url = f"http://127.0.0.1:9/notify/{secrets.token_hex(4)}"
    created = evsp.Subscribe(
        topic="EvseStatusChanged",
        endpointUrl=url,
        filter={"operatorIds": {"operatorId": ["DE*ICE"]}},
    )
    yield str(created.subscriptionId), url
    evsp.Unsubscribe(subscriptionId=created.subscriptionId)


def dead_letter(engine: Engine, subscription_id: str) -> int:
    """Publish one EvseStatusChanged event and mark this subscription's delivery dead."""
    evse = EvseId.parse("DE*ICE*E1*4")
    event = EvseStatusChanged(evse, operator_of(evse), "available", "occupied")
    with SqlUnitOfWork(make_session_factory(engine)) as uow:
        deliveries = publish(uow, Topic.EVSE_STATUS_CHANGED, event)
        uow.commit()
    [key] = [d.idempotency_key for d in deliveries if d.subscription_id == subscription_id]
    return mark_dead(engine, key)


def mark_dead(engine: Engine, key: str) -> int:
    with engine.begin() as connection:
        return int(
            connection.execute(
                text(
                    "UPDATE outbox SET status = 'dead', attempts = 8, last_error = :error "
                    "WHERE idempotency_key = :key RETURNING id"
                ),
                {"key": key, "error": REFUSED},
            ).scalar_one()
        )


def status_of(engine: Engine, row_id: int) -> tuple[str, int]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT status, attempts FROM outbox WHERE id = :id"), {"id": row_id}
        ).one()
    return str(row[0]), int(row[1])


def test_the_operator_retries_a_dead_letter(
    page: Page, database: Engine, subscription: tuple[str, str], screenshot: Screenshot
) -> None:
    subscription_id, url = subscription
    row_id = dead_letter(database, subscription_id)

    sign_in(page, *ADMIN)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
    page.get_by_label("Status").select_option("dead")
    page.get_by_role("button", name="Apply").click()
    row = page.locator(f'tr[data-outbox="{row_id}"]')
    expect(row).to_contain_text("Dead")
    expect(row).to_contain_text("tnm-mobility")
    expect(row).to_contain_text(url)
    expect(row).to_contain_text("EvseStatusChanged")
    expect(row).to_contain_text(REFUSED)
    screenshot(page, "admin-outbox-dead")

    row.get_by_role("button", name="Retry").click()
    expect(page.locator(".flash--success")).to_contain_text(f"Outbox row {row_id} is pending again")
    expect(page.locator(f'tr[data-outbox="{row_id}"]')).to_have_count(0)  # no longer dead
    assert status_of(database, row_id) == ("pending", 0)
    page.get_by_label("Status").select_option("pending")
    page.get_by_role("button", name="Apply").click()
    pending = page.locator(f'tr[data-outbox="{row_id}"]')
    expect(pending).to_contain_text("Pending")
    expect(pending.get_by_role("button", name="Retry")).to_have_count(0)
    screenshot(page, "admin-outbox-pending")

    with database.connect() as connection:
        key = connection.execute(
            text("SELECT idempotency_key FROM outbox WHERE id = :id"), {"id": row_id}
        ).scalar_one()
    mark_dead(database, key)
    page.goto("/ui/admin/outbox?status=dead")
    page.get_by_role("button", name="Retry all dead").click()
    expect(page.locator(".flash--success")).to_contain_text("pending again")
    assert status_of(database, row_id) == ("pending", 0)


def test_a_non_operator_gets_403_on_the_outbox(page: Page) -> None:
    sign_in(page, *OPERATOR)
    expect(page.get_by_role("link", name="Outbox", exact=True)).to_have_count(0)
    response = page.goto("/ui/admin/outbox")
    assert response is not None and response.status == 403
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    for action in ("/ui/admin/outbox/retry-dead", "/ui/admin/outbox/1/retry"):
        refused = page.request.post(action, form={"csrf_token": token or ""})
        assert refused.status == 403
