"""The gateway's transaction log: every routed call, and the usage row billing reads.

Both rows are written by one statement before the reply leaves (so a crash of gembus loses
nothing it answered), on the hot-path connection of persistence/fastpath.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from persistence.fastpath import PreparedStatement

_COLUMNS = (
    "at",
    "message_id",
    "requester_id",
    "provider_id",
    "service_id",
    "family",
    "operation",
    "contract_id",
    "outcome",
    "fault_code",
    "latency_ms",
    "bytes_in",
    "bytes_out",
)
# $1..$13 follow _COLUMNS, $14 is over_quota: the usage row exists only under a contract.
_PG = (
    "WITH logged AS (INSERT INTO gateway_call (at, message_id, requester_id, provider_id, "
    "service_id, family, operation, contract_id, outcome, fault_code, latency_ms, bytes_in, "
    "bytes_out) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)) "
    "INSERT INTO usage_call (contract_id, at, operation, fault_code, latency_ms, over_quota) "
    "SELECT $8, $1, $7, $10, $11, $14 WHERE $8 IS NOT NULL"
)
_PORTABLE = (
    "INSERT INTO gateway_call (at, message_id, requester_id, provider_id, service_id, family, "
    "operation, contract_id, outcome, fault_code, latency_ms, bytes_in, bytes_out) VALUES (:at, "
    ":message_id, :requester_id, :provider_id, :service_id, :family, :operation, :contract_id, "
    ":outcome, :fault_code, :latency_ms, :bytes_in, :bytes_out)"
)
_PORTABLE_USAGE = (
    "INSERT INTO usage_call (contract_id, at, operation, fault_code, latency_ms, over_quota) "
    "VALUES (:contract_id, :at, :operation, :fault_code, :latency_ms, :over_quota)"
)


@dataclass(frozen=True)
class GatewayCall:
    at: datetime
    message_id: str
    requester_id: str | None
    provider_id: str | None
    service_id: str | None
    family: str
    operation: str | None
    contract_id: str | None
    outcome: str  # "ok" or "fault"
    fault_code: str | None
    latency_ms: float
    bytes_in: int
    bytes_out: int
    over_quota: bool = False


class TransactionLog:
    def __init__(self, engine: Engine) -> None:
        self._both = PreparedStatement(
            engine, "gembus_log_call", _PG, _PORTABLE, (*_COLUMNS, "over_quota")
        )
        self._usage = PreparedStatement(engine, "gembus_log_usage", "SELECT 1", _PORTABLE_USAGE, ())

    def record(self, call: GatewayCall) -> None:
        values = dict(call.__dict__)  # dataclasses.asdict deep-copies: a third of this call
        self._both.execute(values)
        if not self._both.on_postgres and call.contract_id is not None:
            self._usage.execute(values)
