"""The gateway's transaction log on both databases: one statement records the nonce and the
call before forwarding; outcomes follow with the next statement or the flusher."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from domain.gateway_calls import CallStart, GatewayCall
from persistence.engine import make_engine
from persistence.fastpath import fast_engine
from persistence.migrate import upgrade
from persistence.transaction_log import PENDING, TransactionLog

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: Engine) -> TransactionLog:
    return TransactionLog(fast_engine(engine))


def _call(contract_id: str | None = "ctr-1") -> CallStart:
    return CallStart(
        datetime.now(UTC),
        uuid.uuid4().hex,
        "tnm-mobility",
        "ice-charging",
        "svc-1",
        "reservation",
        "ReserveEvse",
        contract_id,
        1117,
    )


def _nonce() -> tuple[str, str, datetime]:
    return "tnm-mobility", uuid.uuid4().hex, datetime.now(UTC) + timedelta(minutes=10)


def _row(engine: Engine, message_id: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT g.outcome, g.fault_code, g.latency_ms, g.bytes_in, g.bytes_out, "
                "u.fault_code AS usage_fault, u.latency_ms AS usage_latency "
                "FROM gateway_call g LEFT JOIN usage_call u ON u.contract_id = g.contract_id "
                "AND u.at = g.at WHERE g.message_id = :m"
            ),
            {"m": message_id},
        ).one_or_none()


def test_a_started_call_is_recorded_pending_before_it_is_forwarded(
    engine: Engine, log: TransactionLog
) -> None:
    call = _call()
    started = log.start(call, _nonce())
    assert started.fresh and started.ticket is not None and started.ticket.usage_id is not None
    row = _row(engine, call.message_id)
    assert (row.outcome, row.latency_ms, row.bytes_in, row.bytes_out) == (PENDING, None, 1117, None)


def test_the_next_statement_completes_the_previous_call(
    engine: Engine, log: TransactionLog
) -> None:
    first, second = _call(), _call()
    ticket = log.start(first, _nonce()).ticket
    assert ticket is not None
    log.finish(ticket, "fault", "Server.ProviderTimeout", 2001.5, 420)
    log.start(second, _nonce())
    row = _row(engine, first.message_id)
    assert (row.outcome, row.fault_code, row.latency_ms, row.bytes_out) == (
        "fault",
        "Server.ProviderTimeout",
        2001.5,
        420,
    )
    assert (row.usage_fault, row.usage_latency) == ("Server.ProviderTimeout", 2001.5)
    assert _row(engine, second.message_id).outcome == PENDING


def test_an_outcome_no_call_picks_up_is_flushed_within_the_flush_interval(
    engine: Engine, log: TransactionLog
) -> None:
    call = _call(contract_id=None)
    ticket = log.start(call, _nonce()).ticket
    assert ticket is not None and ticket.usage_id is None
    log.finish(ticket, "ok", None, 3.25, 900)
    deadline = time.monotonic() + 5
    while _row(engine, call.message_id).outcome == PENDING and time.monotonic() < deadline:
        time.sleep(0.02)
    row = _row(engine, call.message_id)
    assert (row.outcome, row.latency_ms, row.bytes_out) == ("ok", 3.25, 900)


def test_a_replayed_nonce_records_nothing_and_says_so(engine: Engine, log: TransactionLog) -> None:
    nonce = _nonce()
    assert log.start(_call(), nonce).fresh
    replay = _call()
    started = log.start(replay, nonce)
    assert not started.fresh and started.ticket is None
    assert _row(engine, replay.message_id) is None


def test_another_process_sees_the_same_nonce_as_a_replay(engine: Engine) -> None:
    """Two logs stand for two gunicorn workers: the table decides, not process memory."""
    worker_a, worker_b = TransactionLog(fast_engine(engine)), TransactionLog(fast_engine(engine))
    nonce = _nonce()
    assert worker_a.start(_call(), nonce).fresh
    assert not worker_b.start(_call(), nonce).fresh


def test_a_token_without_nonce_is_recorded_and_the_partners_counter_comes_back(
    engine: Engine, log: TransactionLog
) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM change_counter WHERE name = 'partners'"))
        connection.execute(text("INSERT INTO change_counter (name, value) VALUES ('partners', 41)"))
    started = log.start(_call(), None)
    assert started.fresh and started.ticket is not None and started.counter == 41


def test_a_call_refused_before_forwarding_is_recorded_whole(
    engine: Engine, log: TransactionLog
) -> None:
    message_id = uuid.uuid4().hex
    log.record(
        GatewayCall(
            datetime.now(UTC),
            message_id,
            "tnm-mobility",
            None,
            None,
            "reservation",
            "ReserveEvse",
            None,
            "fault",
            "Client.NoContract",
            0.8,
            1117,
            640,
        )
    )
    row = _row(engine, message_id)
    assert (row.outcome, row.fault_code, row.bytes_out) == ("fault", "Client.NoContract", 640)
