"""A gembus built on the tier's database, emptied and loaded with the demo partners."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from gembus.bootstrap import Gembus, build
from gembus.demo import load
from gembus.settings import Settings
from persistence.migrate import upgrade

#: Child tables first: the PostgreSQL database is shared by the whole session.
TABLES = (
    "reservation",
    "evse_pull",
    "evse_upload",
    "evse_operator",
    "evse_status",
    "evse_document",
    "evse",
    "authorization_decision",
    "authorization_settings",
    "customer_contract_token",
    "customer_contract",
    "customer_contract_upload",
    "customer_contract_provider",
    "sdr_version",
    "sdr_delivery",
    "sdr",
    "clearing_line",
    "clearing_statement",
    "price_plan",
    "route_policy",
    "usage_call",
    "service_contract",
    "offering",
    "service",
    "roaming_agreement",
    "change_counter",
    "partner_identifier",
    "partner_role",
    "wsse_nonce",
    "partner",
)


@pytest.fixture
def gembus(database_url: str) -> Iterator[Gembus]:
    yield from built_gembus(database_url)


def built_gembus(database_url: str) -> Iterator[Gembus]:
    """The ``gembus`` fixture's body, for tests that need one database only."""
    built = build(
        Settings(
            database_url=database_url,
            secret_key=Fernet.generate_key().decode(),
            log_level="WARNING",
        )
    )
    upgrade(built.engine)
    with built.engine.begin() as connection:
        for table in TABLES:
            connection.exec_driver_sql(f"DELETE FROM {table}")
    load(built.uow, built.vault)
    yield built
    built.engine.dispose()
