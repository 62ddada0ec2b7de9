"""Repositories, unit of work, migrations and the nonce store on PostgreSQL and SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, inspect

import persistence.engine as engine_module
from domain.identifiers import OperatorId, ProviderId
from domain.marketplace import partners as uc
from domain.partners import Address, Contact, PartnerData, PartnerStatus, Role
from gembus.errors import ConflictError, NotFoundError, UnavailableError
from gembus.identity import SqlIdentityStore
from gembus.secrets import Vault
from persistence.engine import make_engine, make_session_factory
from persistence.fastpath import fast_engine
from persistence.migrate import upgrade
from persistence.unit_of_work import SqlUnitOfWork

pytestmark = pytest.mark.postgres


def _migrated(url: str) -> Iterator[Engine]:
    """A migrated engine; the session-wide PostgreSQL database is emptied afterwards."""
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for table in ("partner_identifier", "partner_role", "wsse_nonce", "partner"):
                connection.exec_driver_sql(f"DELETE FROM {table}")
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    yield from _migrated(database_url)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    yield from _migrated(postgres_url)


@pytest.fixture
def vault() -> Vault:
    return Vault(Fernet.generate_key().decode())


def _uow(engine: Engine) -> SqlUnitOfWork:
    return SqlUnitOfWork(make_session_factory(engine))


def _data(operator: str = "DE*ICE", provider: str | None = None) -> PartnerData:
    roles = (Role.EVSE_OPERATOR,) + ((Role.EVSP,) if provider else ())
    return PartnerData(
        "ICE Charging GmbH",
        roles,
        Contact("ops@ice.example", "+49 30 1234"),
        (OperatorId.parse(operator),),
        (ProviderId.parse(provider),) if provider else (),
        Address("DE", "Berlin", "10115", "Invalidenstr.", "1"),
    )


def test_migrations_create_every_table_and_are_idempotent(engine: Engine) -> None:
    upgrade(engine)
    assert {
        "partner",
        "partner_role",
        "partner_identifier",
        "wsse_nonce",
        "alembic_version",
    } <= set(inspect(engine).get_table_names())


def test_partner_round_trip_keeps_wire_forms_and_timezones(engine: Engine, vault: Vault) -> None:
    with _uow(engine) as uow:
        created = uc.register_partner(
            uow, vault, uc.SYSTEM_ACTOR, "ice", _data("de*ice", "DE-ICE"), "password-123456"
        )
        uow.commit()
    with _uow(engine) as uow:
        loaded = uow.partners.get("ice")
    assert loaded is not None
    assert [o.wire for o in loaded.data.operator_ids] == ["de*ice"]
    assert [p.key for p in loaded.data.provider_ids] == ["DEICE"]
    assert loaded.data.address == _data().address
    assert loaded.created_at == created.created_at and loaded.created_at.tzinfo is not None
    assert loaded.status is PartnerStatus.ACTIVE


def test_unit_of_work_rolls_back_unless_committed(engine: Engine, vault: Vault) -> None:
    with _uow(engine) as uow:
        uc.register_partner(uow, vault, uc.SYSTEM_ACTOR, "ghost", _data(), "password-123456")
    with _uow(engine) as uow, pytest.raises(NotFoundError):
        uc.get_partner(uow, "ghost")


def test_identifier_keys_are_unique_across_partners(engine: Engine, vault: Vault) -> None:
    with _uow(engine) as uow:
        uc.register_partner(
            uow, vault, uc.SYSTEM_ACTOR, "first", _data("DE*ICE"), "password-123456"
        )
        uow.commit()
    with _uow(engine) as uow, pytest.raises(ConflictError) as raised:
        uc.register_partner(
            uow, vault, uc.SYSTEM_ACTOR, "second", _data("DEICE"), "password-123456"
        )
    assert raised.value.field == "data/operatorIds/operatorId[1]"


def test_concurrent_registrations_of_one_id_leave_exactly_one_partner(
    pg_engine: Engine, vault: Vault
) -> None:
    """Two transactions race for one operator ID: exactly one wins, the other gets a fault.

    PostgreSQL only: SQLite serialises writers, so there is no race to lose there.
    """
    engine = pg_engine
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def register(partner_id: str) -> None:
        barrier.wait(timeout=10)
        try:
            with _uow(engine) as uow:
                uc.register_partner(
                    uow, vault, uc.SYSTEM_ACTOR, partner_id, _data("IT*RCE"), "password-123456"
                )
                uow.commit()
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=register, args=(p,)) for p in ("race-a", "race-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "ok"]
    with _uow(engine) as uow:
        owner = uow.partners.owner_of_identifier("operator", "ITRCE")
        assert owner in ("race-a", "race-b")
        loser = "race-b" if owner == "race-a" else "race-a"
        assert uow.partners.get(loser) is None
        deactivated = uc.deactivate_partner(uow, uc.SYSTEM_ACTOR, owner)
        uow.commit()
    assert deactivated.data.operator_ids[0].key == "ITRCE"  # an update keeps the unique key


def test_list_filters_pages_and_counts(engine: Engine, vault: Vault) -> None:
    with _uow(engine) as uow:
        for i in range(5):
            uc.register_partner(
                uow, vault, uc.SYSTEM_ACTOR, f"op-{i}", _data(f"DE*OP{i}"), "password-123456"
            )
        uc.register_partner(
            uow,
            vault,
            uc.SYSTEM_ACTOR,
            "evsp-x",
            PartnerData(
                "EVSP", (Role.EVSP,), Contact("e@x.example"), (), (ProviderId.parse("NL-TNM"),)
            ),
            "password-123456",
        )
        uow.commit()
    with _uow(engine) as uow:
        page, total = uc.list_partners(uow, Role.EVSE_OPERATOR, None, uc.Page(2, 2))
        evsps, evsp_total = uc.list_partners(uow, Role.EVSP, PartnerStatus.ACTIVE, uc.Page())
    assert total == 5 and [p.partner_id for p in page] == ["op-2", "op-3"]
    assert evsp_total == 1 and evsps[0].partner_id == "evsp-x"


def _identity(engine: Engine, vault: Vault) -> SqlIdentityStore:
    return SqlIdentityStore(make_session_factory(engine), fast_engine(engine), vault)


def test_nonces_are_refused_the_second_time_by_any_worker(engine: Engine, vault: Vault) -> None:
    """Two stores stand for two gunicorn workers: the table, not process memory, decides."""
    worker_a, worker_b = _identity(engine, vault), _identity(engine, vault)
    expires = datetime.now(UTC) + timedelta(minutes=10)
    assert worker_a.consume("ice", "bm9uY2U=", expires, 0).fresh is True
    assert worker_b.consume("ice", "bm9uY2U=", expires, 0).fresh is False
    assert worker_b.consume("tnm", "bm9uY2U=", expires, 0).fresh is True


def test_expired_nonces_are_purged(engine: Engine, vault: Vault) -> None:
    store = _identity(engine, vault)
    store.consume("ice", "old", datetime.now(UTC) - timedelta(minutes=1), 0)
    store._calls = SqlIdentityStore.PURGE_EVERY  # the next call purges
    store.consume("ice", "new", datetime.now(UTC) + timedelta(minutes=1), 0)
    assert store.consume("ice", "old", datetime.now(UTC) + timedelta(minutes=1), 0).fresh is True


def test_cached_credentials_are_current_after_any_partner_change(
    engine: Engine, vault: Vault
) -> None:
    with _uow(engine) as uow:
        uc.register_partner(uow, vault, uc.SYSTEM_ACTOR, "ice", _data(), "first-password-1")
        uow.commit()
    store = _identity(engine, vault)
    cached = store.credential_for("ice")
    assert cached is not None and cached.password == "first-password-1"
    expires = datetime.now(UTC) + timedelta(minutes=10)
    assert store.consume("ice", "n1", expires, cached.version).current
    with _uow(engine) as uow:
        uc.rotate_credentials(uow, vault, uc.SYSTEM_ACTOR, "ice", "second-password-2")
        uow.commit()
    assert not store.consume("ice", "n2", expires, cached.version).current
    fresh = store.credential_for("ice")
    assert (
        fresh is not None
        and fresh.password == "second-password-2"
        and fresh.version > cached.version
    )


def test_credentials_are_sealed_and_rotated(engine: Engine, vault: Vault) -> None:
    with _uow(engine) as uow:
        uc.register_partner(uow, vault, uc.SYSTEM_ACTOR, "ice", _data(), "first-password-1")
        uow.commit()
    with _uow(engine) as uow:
        uc.rotate_credentials(uow, vault, uc.SYSTEM_ACTOR, "ice", "second-password-2")
        uow.commit()
    with _uow(engine) as uow:
        found = uow.partners.sealed_credential("ice")
    assert found is not None
    password_hash, sealed, _ = found
    assert "second-password-2" not in sealed and vault.open(sealed) == "second-password-2"
    assert vault.verify(password_hash, "second-password-2") and not vault.verify(
        password_hash, "first-password-1"
    )


def _kill_pooled_backends(engine: Engine) -> None:
    """Terminate every other backend of this database, as a server restart would."""
    admin = make_engine(engine.url.render_as_string(hide_password=False))
    with admin.begin() as connection:
        connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    admin.dispose()


def _partner_count(engine: Engine) -> int:
    with _uow(engine) as uow:
        return uow.partners.list(role=None, status=None, offset=0, limit=10)[1]


def test_an_idle_pooled_connection_that_died_is_replaced_before_use(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _partner_count(pg_engine) == 0  # one pooled connection, now idle
    _kill_pooled_backends(pg_engine)
    monkeypatch.setattr(engine_module, "IDLE_PING_S", 0.0)
    assert _partner_count(pg_engine) == 0  # pinged, replaced, used: no fault


def test_a_hot_connection_is_not_pinged_and_a_broken_one_fails_once(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _partner_count(pg_engine) == 0
    _kill_pooled_backends(pg_engine)
    monkeypatch.setattr(engine_module, "IDLE_PING_S", 3600.0)
    with pytest.raises(UnavailableError):  # not pinged: its statement meets the dead backend
        _partner_count(pg_engine)
    assert _partner_count(pg_engine) == 0  # the pool was invalidated: the next one is fresh
