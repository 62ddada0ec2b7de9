"""The authorization decision log: one statement per decision on the request's hot path.

Recording a roaming authorization decision does, in a single PostgreSQL statement on the
hot-path connection (persistence/fastpath.py, the technique of persistence/transaction_log.py):

- record the caller's WS-Security nonce (the replay check: a replayed message writes nothing);
- look for a repeat: a decision of the same operator with the same partnerSessionId and
  request content, still within its ``valid_until``; if there is one it is returned (and its
  repeat count bumped) instead of inserting the new one (DOMAIN.md section 11);
- otherwise insert the decision;
- read the partners change counter (the identity cache's check) and the customer-contracts
  change counter (the authorizer's cache check).

So a warm AuthorizeRoaming costs one database round trip in all, and the reply is sent only
after the decision is recorded. Other databases (SQLite) run the same steps one by one in one
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, text

from domain.clearing.authorization import Decision, NonceClaim, Recorded
from domain.clearing.customer_contracts import CONTRACTS_COUNTER
from persistence.clearing_authorization import (
    DECISION_COLUMNS,
    decision_from_values,
    decision_values,
)
from persistence.fastpath import PreparedStatement
from persistence.repositories import (
    NONCE_CTES,
    NONCE_INSERT,
    PARTNERS_COUNTER,
    purge_expired_nonces,
)
from persistence.tables import UtcDateTime

_TYPES = {
    "decided_at": "timestamptz",
    "valid_until": "timestamptz",
    "latency_ms": "float8",
    "token_json": "text",
    "description": "text",
    "stop_json": "text",
}
_FIRST = 7  # $1..$6: username, nonce, expires_at, partners counter, contracts counter, now
_PARAM = {c: f"${i}::{_TYPES.get(c, 'varchar')}" for i, c in enumerate(DECISION_COLUMNS, _FIRST)}
_COLUMNS = ", ".join(DECISION_COLUMNS)
_REPEAT_MATCH = (
    "operator_key = {operator_key} AND partner_session_id = {partner_session_id} "
    "AND request_hash = {request_hash} AND valid_until > {now}"
)

_REPEAT_PG = _REPEAT_MATCH.format(
    operator_key=_PARAM["operator_key"],
    partner_session_id=_PARAM["partner_session_id"],
    request_hash=_PARAM["request_hash"],
    now="$6::timestamptz",
)
# Built from the constant column list only; every value is a statement parameter.
_RECORD_PG = f"""
WITH {NONCE_CTES}, prior AS (
    SELECT {_COLUMNS} FROM authorization_decision
    WHERE {_PARAM["partner_session_id"]} IS NOT NULL AND {_REPEAT_PG}
    ORDER BY decided_at DESC LIMIT 1
), repeated AS (
    UPDATE authorization_decision SET repeats = repeats + 1
    WHERE session_id = (SELECT session_id FROM prior) AND (SELECT fresh FROM ok)
), logged AS (
    INSERT INTO authorization_decision ({_COLUMNS})
    SELECT {", ".join(_PARAM.values())} FROM ok
    WHERE ok.fresh AND NOT EXISTS (SELECT 1 FROM prior)
)
SELECT (SELECT fresh FROM ok),
       (SELECT value FROM change_counter WHERE name = $4::varchar),
       (SELECT value FROM change_counter WHERE name = $5::varchar),
       {", ".join(f"prior.{c}" for c in DECISION_COLUMNS)}
FROM (SELECT 1) AS one LEFT JOIN prior ON true
"""  # noqa: S608
_RECORD_PARAMS = (
    "username",
    "nonce",
    "expires_at",
    "partners_counter",
    "contracts_counter",
    "now",
    *DECISION_COLUMNS,
)


def _typed(statement: str) -> TextClause:
    """Timestamps bound and read exactly as the ORM stores them (SQLite keeps text)."""
    clause = text(statement)
    names = [n for n in ("decided_at", "valid_until", "now", "expires_at") if f":{n}" in statement]
    clause = clause.bindparams(*(bindparam(n, type_=UtcDateTime()) for n in names))
    return clause


# The same steps one by one (SQLite has no data-modifying CTEs).
_NONCE = _typed(NONCE_INSERT)
_COUNTER = text("SELECT value FROM change_counter WHERE name = :name")
_PRIOR = _typed(
    f"SELECT {_COLUMNS} FROM authorization_decision WHERE "  # noqa: S608
    + _REPEAT_MATCH.format(
        operator_key=":operator_key",
        partner_session_id=":partner_session_id",
        request_hash=":request_hash",
        now=":now",
    )
    + " ORDER BY decided_at DESC LIMIT 1"
)
_BUMP = text(
    "UPDATE authorization_decision SET repeats = repeats + 1 WHERE session_id = :session_id"
)
_INSERT = _typed(
    f"INSERT INTO authorization_decision ({_COLUMNS}) VALUES "  # noqa: S608
    f"({', '.join(':' + c for c in DECISION_COLUMNS)})"
)
_CORRECT = _typed(
    "UPDATE authorization_decision SET "  # noqa: S608
    + ", ".join(f"{c} = :{c}" for c in DECISION_COLUMNS if c != "session_id")
    + " WHERE session_id = :session_id"
)


class DecisionLog:
    """Implements domain.clearing.authorization.DecisionLog."""

    PURGE_EVERY = 1000  # decisions between purges of expired nonces

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._record = PreparedStatement(
            engine, "gembus_authorization_record", _RECORD_PG, "", _RECORD_PARAMS
        )
        self._records = 0

    @property
    def on_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def record(self, decision: Decision, nonce: NonceClaim | None) -> Recorded:
        self._records += 1
        if self._records % self.PURGE_EVERY == 1:
            purge_expired_nonces(self.engine)
        username, nonce_text, expires_at = nonce if nonce is not None else (None, None, None)
        values: dict[str, Any] = {
            **decision_values(decision),
            "username": username,
            "nonce": nonce_text,
            "expires_at": expires_at,
            "partners_counter": PARTNERS_COUNTER,
            "contracts_counter": CONTRACTS_COUNTER,
            "now": decision.decided_at,
        }
        if not self.on_postgres:
            return self._record_portable(values)
        row = self._record.execute(values)
        assert row is not None
        fresh, partners, contracts, *prior = row
        found = None
        if prior[0] is not None:
            found = decision_from_values(dict(zip(DECISION_COLUMNS, prior, strict=True)))
        return Recorded(bool(fresh), int(partners or 0), int(contracts or 0), found)

    def prior(
        self, operator_key: str, partner_session_id: str, request_hash: str, at: datetime
    ) -> Decision | None:
        values = {
            "operator_key": operator_key,
            "partner_session_id": partner_session_id,
            "request_hash": request_hash,
            "now": at,
        }
        with self.engine.connect() as connection:
            row = connection.execute(_PRIOR, values).first()
        return _decision(row) if row is not None else None

    def correct(self, decision: Decision) -> None:
        with self.engine.begin() as connection:
            connection.execute(_CORRECT, decision_values(decision))

    def _record_portable(self, values: dict[str, Any]) -> Recorded:
        with self.engine.begin() as connection:
            fresh = True
            if values["username"] is not None:
                fresh = connection.execute(_NONCE, values).first() is not None
            partners = connection.execute(_COUNTER, {"name": PARTNERS_COUNTER}).scalar()
            contracts = connection.execute(_COUNTER, {"name": CONTRACTS_COUNTER}).scalar()
            recorded = Recorded(fresh, int(partners or 0), int(contracts or 0), None)
            if not fresh:
                return recorded
            prior = None
            if values["partner_session_id"] is not None:
                prior = connection.execute(_PRIOR, values).first()
            if prior is not None:
                connection.execute(_BUMP, {"session_id": prior[0]})
                return Recorded(
                    fresh, recorded.partners_version, recorded.contracts_version, _decision(prior)
                )
            connection.execute(_INSERT, values)
        return recorded


def _decision(row: Any) -> Decision:
    """A decision from a raw row; SQLite returns timestamps as naive UTC text."""
    values = dict(zip(DECISION_COLUMNS, tuple(row), strict=True))
    stamp = UtcDateTime()
    for column in ("decided_at", "valid_until"):
        value = values[column]
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        values[column] = stamp.process_result_value(value, None)  # type: ignore[arg-type]
    return decision_from_values(values)
