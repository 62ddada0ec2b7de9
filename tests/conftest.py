"""Fixtures shared by every tier: the database URLs and a built gembus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support.databases import fresh_postgres_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every integration test runs on both databases gembus supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gembus.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
