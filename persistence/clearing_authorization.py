"""Storage of roaming authorization: customer contracts, uploads, settings, decisions.

Implements domain.ports.CustomerContractRepository and AuthorizationRepository inside the unit
of work, and :class:`SqlStoredFacts`, which fills the authorizer's per-process cache: each read
comes with the ``customer_contracts`` change counter of the same transaction, so the cache
knows which version of the stored lists it holds.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from domain.clearing.authorization import (
    AuthorizationMode,
    AuthorizationReason,
    AuthorizationResult,
    AuthorizationSettings,
    Decision,
    DecisionFilter,
    DecisionSource,
    LiveFallback,
)
from domain.clearing.customer_contracts import (
    CONTRACTS_COUNTER,
    ContractStatus,
    Digest,
    RecordOperation,
    RecordOutcome,
    RecordResult,
    RejectReason,
    StagedChunk,
    StoredContract,
    UploadInProgressError,
    UploadOutcome,
    UploadRecord,
    UploadStatus,
    Upsert,
    canonical_json,
    contract_from_dict,
    contract_to_dict,
    token_from_dict,
    token_to_dict,
)
from persistence.tables import (
    AuthorizationDecisionRow,
    AuthorizationSettingsRow,
    ChangeCounterRow,
    CustomerContractProviderRow,
    CustomerContractRow,
    CustomerContractTokenRow,
    CustomerContractUploadRow,
)

#: How long an upload waits for another upload of the same provider before UploadInProgress.
UPLOAD_LOCK_TIMEOUT = "10s"
_IN_CHUNKS = 500  # keys per IN (...) list: SQLite allows 32766 variables, keep statements small


class SqlCustomerContractRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # ------------------------------------------------------------------ uploads
    def lock_provider(self, provider_key: str, partner_id: str) -> None:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        insert = dialect.insert(CustomerContractProviderRow).values(
            provider_key=provider_key, partner_id=partner_id, last_upload_at=func.now()
        )
        try:
            if self._dialect == "postgresql":
                self.session.execute(text(f"SET LOCAL lock_timeout = '{UPLOAD_LOCK_TIMEOUT}'"))
            self.session.execute(insert.on_conflict_do_nothing(index_elements=["provider_key"]))
            self.session.execute(
                select(CustomerContractProviderRow.provider_key)
                .where(CustomerContractProviderRow.provider_key == provider_key)
                .with_for_update()
            )
        except OperationalError as exc:  # lock_timeout (PostgreSQL), "database is locked"
            raise UploadInProgressError(
                f"another upload of {provider_key} is being applied; retry later"
            ) from exc

    def find_upload(
        self, provider_key: str, upload_id: str, chunk_index: int
    ) -> UploadOutcome | None:
        row = self.session.scalar(
            select(CustomerContractUploadRow).where(
                CustomerContractUploadRow.provider_key == provider_key,
                CustomerContractUploadRow.upload_id == upload_id,
                CustomerContractUploadRow.chunk_index == chunk_index,
            )
        )
        return _outcome_from_json(row.outcome_json) if row is not None else None

    def discard_stale_chunks(self, provider_key: str, before: datetime) -> int:
        result = self.session.execute(
            delete(CustomerContractUploadRow).where(
                CustomerContractUploadRow.provider_key == provider_key,
                CustomerContractUploadRow.status == UploadStatus.AWAITING_CHUNKS.value,
                CustomerContractUploadRow.processed_at < before,
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def staged_chunks(self, provider_key: str, upload_id: str) -> list[StagedChunk]:
        rows = self.session.scalars(
            select(CustomerContractUploadRow)
            .where(
                CustomerContractUploadRow.provider_key == provider_key,
                CustomerContractUploadRow.upload_id == upload_id,
                CustomerContractUploadRow.status == UploadStatus.AWAITING_CHUNKS.value,
            )
            .order_by(CustomerContractUploadRow.chunk_index)
        )
        return [
            StagedChunk(
                r.chunk_index,
                r.chunk_count or 1,
                tuple(contract_from_dict(c) for c in json.loads(r.staged_json or "[]")),
            )
            for r in rows
        ]

    def close_chunks(self, provider_key: str, upload_id: str) -> None:
        """The upload is complete: its chunks are applied, their staged contracts dropped."""
        self.session.execute(
            update(CustomerContractUploadRow)
            .where(
                CustomerContractUploadRow.provider_key == provider_key,
                CustomerContractUploadRow.upload_id == upload_id,
            )
            .values(status=UploadStatus.APPLIED.value, staged_json=None)
        )

    def add_upload(self, record: UploadRecord) -> None:
        staged = None
        if record.staged is not None:
            staged = json.dumps([contract_to_dict(c) for c in record.staged])
        self.session.add(
            CustomerContractUploadRow(
                provider_key=record.provider_key,
                upload_id=record.upload_id,
                chunk_index=record.chunk.index if record.chunk else 0,
                chunk_count=record.chunk.count if record.chunk else None,
                partner_id=record.partner_id,
                mode=record.mode.value,
                status=record.outcome.status.value,
                outcome_json=_outcome_to_json(record.outcome),
                staged_json=staged,
                processed_at=record.outcome.processed_at,
            )
        )
        self.session.flush()

    # ------------------------------------------------------------------ contracts
    def content_hashes(self, provider_key: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in _chunks(list(keys)):
            rows = self.session.execute(
                select(CustomerContractRow.contract_key, CustomerContractRow.content_hash).where(
                    CustomerContractRow.provider_key == provider_key,
                    CustomerContractRow.contract_key.in_(part),
                )
            )
            found.update({key: digest for key, digest in rows})
        return found

    def token_owners(self, provider_key: str, digests: Collection[Digest]) -> dict[Digest, str]:
        owners: dict[Digest, str] = {}
        wanted = set(digests)
        for part in _chunks(sorted({d for _, d in wanted})):
            rows = self.session.execute(
                select(
                    CustomerContractTokenRow.algorithm,
                    CustomerContractTokenRow.digest,
                    CustomerContractRow.contract_key,
                )
                .join(
                    CustomerContractRow,
                    CustomerContractRow.id == CustomerContractTokenRow.contract_pk,
                )
                .where(
                    CustomerContractTokenRow.provider_key == provider_key,
                    CustomerContractTokenRow.digest.in_(part),
                )
            )
            owners.update({(a, d): k for a, d, k in rows if (a, d) in wanted})
        return owners

    def upsert(
        self,
        provider_id: str,
        provider_key: str,
        partner_id: str,
        writes: Sequence[Upsert],
        upload_id: str,
        at: datetime,
    ) -> None:
        """Insert or replace whole records; their token digests are rewritten with them."""
        if not writes:
            return
        existing = self._rows(provider_key, [w.key for w in writes])
        self._drop_tokens([r.id for r in existing.values()])
        for write in writes:
            row = existing.get(write.key) or CustomerContractRow(contract_key=write.key)
            _fill(row, write, provider_id, provider_key, partner_id, upload_id, at)
            self.session.add(row)
        self.session.flush()
        rows = self._rows(provider_key, [w.key for w in writes])
        self.session.add_all(
            CustomerContractTokenRow(
                contract_pk=rows[w.key].id, provider_key=provider_key, algorithm=a, digest=d
            )
            for w in writes
            for a, d in sorted(w.contract.digests())
        )
        self.session.flush()

    def delete(self, provider_key: str, keys: Sequence[str]) -> int:
        rows = self._rows(provider_key, list(keys))
        return self._delete_ids([r.id for r in rows.values()])

    def delete_all_except(self, provider_key: str, keys: Sequence[str]) -> int:
        kept = set(keys)
        ids = [
            pk
            for pk, key in self.session.execute(
                select(CustomerContractRow.id, CustomerContractRow.contract_key).where(
                    CustomerContractRow.provider_key == provider_key
                )
            )
            if key not in kept
        ]
        return self._delete_ids(ids)

    def count(self, provider_key: str) -> int:
        return int(
            self.session.scalar(
                select(func.count()).where(CustomerContractRow.provider_key == provider_key)
            )
            or 0
        )

    def get(self, key: str) -> StoredContract | None:
        row = self.session.scalar(
            select(CustomerContractRow).where(CustomerContractRow.contract_key == key)
        )
        return _stored(row) if row is not None else None

    def by_tokens(self, digests: Collection[Digest]) -> list[StoredContract]:
        wanted = set(digests)
        if not wanted:
            return []
        rows = self.session.execute(
            select(
                CustomerContractRow,
                CustomerContractTokenRow.algorithm,
                CustomerContractTokenRow.digest,
            )
            .join(
                CustomerContractTokenRow,
                CustomerContractTokenRow.contract_pk == CustomerContractRow.id,
            )
            .where(CustomerContractTokenRow.digest.in_(sorted({d for _, d in wanted})))
            .order_by(CustomerContractRow.contract_key)
        )
        found: dict[str, StoredContract] = {}
        for row, algorithm, digest in rows:
            if (algorithm, digest) in wanted and row.contract_key not in found:
                found[row.contract_key] = _stored(row)
        return list(found.values())

    def search(
        self,
        provider_keys: Sequence[str] | None,
        key: str | None,
        status: ContractStatus | None,
        updated_since: datetime | None,
        at: datetime,
        page: tuple[int, int],
    ) -> tuple[list[StoredContract], int]:
        query = select(CustomerContractRow)
        if provider_keys is not None:
            query = query.where(CustomerContractRow.provider_key.in_(list(provider_keys)))
        if key is not None:
            query = query.where(CustomerContractRow.contract_key == key)
        if status is not None:
            query = query.where(_status_is(status, at))
        if updated_since is not None:
            query = query.where(CustomerContractRow.updated_at >= updated_since)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(
            query.order_by(CustomerContractRow.contract_key).offset(page[0]).limit(page[1])
        )
        return [_stored(r) for r in rows], int(total)

    # ------------------------------------------------------------------ helpers
    def _rows(self, provider_key: str, keys: list[str]) -> dict[str, CustomerContractRow]:
        found: dict[str, CustomerContractRow] = {}
        for part in _chunks(keys):
            rows = self.session.scalars(
                select(CustomerContractRow).where(
                    CustomerContractRow.provider_key == provider_key,
                    CustomerContractRow.contract_key.in_(part),
                )
            )
            found.update({r.contract_key: r for r in rows})
        return found

    def _drop_tokens(self, contract_ids: list[int]) -> None:
        for part in _chunks(contract_ids):
            self.session.execute(
                delete(CustomerContractTokenRow).where(
                    CustomerContractTokenRow.contract_pk.in_(part)
                )
            )

    def _delete_ids(self, ids: list[int]) -> int:
        """Tokens first: SQLite enforces no foreign keys, so the cascade is done here."""
        self._drop_tokens(ids)
        deleted = 0
        for part in _chunks(ids):
            result = self.session.execute(
                delete(CustomerContractRow).where(CustomerContractRow.id.in_(part))
            )
            deleted += int(result.rowcount)  # type: ignore[attr-defined]
        self.session.expire_all()
        return deleted


def _status_is(status: ContractStatus, at: datetime) -> ColumnElement[bool]:
    """The status a contract reads as at ``at``: past validTo it is expired, whatever it was."""
    past = and_(CustomerContractRow.valid_to.is_not(None), CustomerContractRow.valid_to <= at)
    if status is ContractStatus.EXPIRED:
        return or_(CustomerContractRow.status == status.value, past)
    return and_(CustomerContractRow.status == status.value, ~past)


def _fill(
    row: CustomerContractRow,
    write: Upsert,
    provider_id: str,
    provider_key: str,
    partner_id: str,
    upload_id: str,
    at: datetime,
) -> None:
    contract = write.contract
    row.contract_wire = contract.contract_id
    row.provider_key = provider_key
    row.provider_wire = provider_id
    row.partner_id = partner_id
    row.status = contract.status.value
    row.valid_from = contract.validity.valid_from
    row.valid_to = contract.validity.valid_to
    row.record_json = canonical_json(contract)
    row.content_hash = write.content_hash
    row.upload_id = upload_id
    row.updated_at = at


def _stored(row: CustomerContractRow) -> StoredContract:
    return StoredContract(
        row.provider_wire,
        row.provider_key,
        row.contract_key,
        contract_from_dict(json.loads(row.record_json)),
        row.partner_id,
        row.upload_id,
        row.updated_at,
    )


def _chunks(values: list[Any]) -> list[list[Any]]:
    return [values[i : i + _IN_CHUNKS] for i in range(0, len(values), _IN_CHUNKS)]


def _outcome_to_json(outcome: UploadOutcome) -> str:
    return json.dumps(
        {
            "uploadId": outcome.upload_id,
            "status": outcome.status.value,
            "counts": [outcome.received, outcome.applied, outcome.rejected, outcome.stored_total],
            "processedAt": outcome.processed_at.isoformat(),
            "results": [
                [r.contract_id, r.operation.value, r.result.value]
                + ([r.reason.value, r.field, r.message] if r.reason else [])
                for r in outcome.results
            ],
        }
    )


def _outcome_from_json(text_value: str) -> UploadOutcome:
    data = json.loads(text_value)
    received, applied, rejected, total = data["counts"]
    return UploadOutcome(
        data["uploadId"],
        UploadStatus(data["status"]),
        received,
        applied,
        rejected,
        total,
        tuple(_result_from_list(r) for r in data["results"]),
        datetime.fromisoformat(data["processedAt"]),
    )


def _result_from_list(values: list[Any]) -> RecordOutcome:
    reason = RejectReason(values[3]) if len(values) > 3 else None
    return RecordOutcome(
        values[0],
        RecordOperation(values[1]),
        RecordResult(values[2]),
        reason,
        values[4] if reason else None,
        values[5] if reason else None,
    )


# --------------------------------------------------------------------------- settings, audit


class SqlAuthorizationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_settings(self, partner_id: str) -> AuthorizationSettings | None:
        row = self.session.get(AuthorizationSettingsRow, partner_id)
        return _settings(row) if row is not None else None

    def put_settings(self, settings: AuthorizationSettings) -> None:
        assert settings.updated_at is not None and settings.updated_by is not None
        row = self.session.get(AuthorizationSettingsRow, settings.partner_id)
        if row is None:
            row = AuthorizationSettingsRow(partner_id=settings.partner_id)
            self.session.add(row)
        row.mode = settings.mode.value
        row.live_timeout_ms = settings.live_timeout_ms
        row.fallback = settings.fallback.value
        row.updated_at = settings.updated_at
        row.updated_by = settings.updated_by
        self.session.flush()

    def delete_settings(self, partner_id: str) -> None:
        self.session.execute(
            delete(AuthorizationSettingsRow).where(
                AuthorizationSettingsRow.partner_id == partner_id
            )
        )

    def all_settings(self) -> list[AuthorizationSettings]:
        rows = self.session.scalars(
            select(AuthorizationSettingsRow).order_by(AuthorizationSettingsRow.partner_id)
        )
        return [_settings(r) for r in rows]

    def decisions(self, query: DecisionFilter, page: tuple[int, int]) -> tuple[list[Decision], int]:
        statement = _decision_query(query)
        total = self.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
        rows = self.session.scalars(
            statement.order_by(
                AuthorizationDecisionRow.decided_at, AuthorizationDecisionRow.session_id
            )
            .offset(page[0])
            .limit(page[1])
        )
        return [decision_from_row(r) for r in rows], int(total)


def _decision_query(query: DecisionFilter) -> Select[AuthorizationDecisionRow]:
    row = AuthorizationDecisionRow
    statement = select(row).where(row.decided_at >= query.start, row.decided_at < query.end)
    if query.visible_to is not None:
        statement = statement.where(
            or_(
                row.operator_partner_id == query.visible_to,
                row.provider_partner_id == query.visible_to,
            )
        )
    conditions = {
        row.operator_key: query.operator_key,
        row.provider_key: query.provider_key,
        row.evse_key: query.evse_key,
        row.contract_key: query.contract_key,
        row.result: query.result.value if query.result else None,
    }
    for column, value in conditions.items():
        if value is not None:
            statement = statement.where(column == value)
    return statement


def _settings(row: AuthorizationSettingsRow) -> AuthorizationSettings:
    return AuthorizationSettings(
        row.partner_id,
        AuthorizationMode(row.mode),
        row.live_timeout_ms,
        LiveFallback(row.fallback),
        row.updated_at,
        row.updated_by,
    )


# --------------------------------------------------------------------------- decisions as rows


def decision_values(decision: Decision) -> dict[str, Any]:
    """The row of a decision as column values (the hot-path statement binds these)."""
    token = json.dumps(token_to_dict(decision.token)) if decision.token else None
    stops = None
    if decision.stop_tokens or decision.stop_contract_ids:
        stops = json.dumps(
            {
                "tokens": [token_to_dict(t) for t in decision.stop_tokens],
                "contractIds": list(decision.stop_contract_ids),
            }
        )
    return {
        "session_id": decision.session_id,
        "decided_at": decision.decided_at,
        "message_id": decision.message_id,
        "caller_partner_id": decision.caller_partner_id,
        "operator_partner_id": decision.operator_partner_id,
        "operator_wire": decision.operator_id,
        "operator_key": decision.operator_key,
        "evse_wire": decision.evse_id,
        "evse_key": decision.evse_key,
        "contract_wire": decision.contract_id,
        "contract_key": decision.contract_key,
        "token_json": token,
        "partner_session_id": decision.partner_session_id,
        "provider_wire": decision.provider_id,
        "provider_key": decision.provider_key,
        "provider_partner_id": decision.provider_partner_id,
        "result": decision.result.value,
        "reason": decision.reason.value,
        "oicp_code": decision.oicp_code,
        "description": decision.description,
        "source": decision.source.value,
        "valid_until": decision.valid_until,
        "stop_json": stops,
        "latency_ms": decision.latency_ms,
        "request_hash": decision.request_hash,
    }


#: The columns of :func:`decision_values`, in a fixed order (statements are built from it).
DECISION_COLUMNS = (
    "session_id",
    "decided_at",
    "message_id",
    "caller_partner_id",
    "operator_partner_id",
    "operator_wire",
    "operator_key",
    "evse_wire",
    "evse_key",
    "contract_wire",
    "contract_key",
    "token_json",
    "partner_session_id",
    "provider_wire",
    "provider_key",
    "provider_partner_id",
    "result",
    "reason",
    "oicp_code",
    "description",
    "source",
    "valid_until",
    "stop_json",
    "latency_ms",
    "request_hash",
)


def decision_from_row(row: AuthorizationDecisionRow) -> Decision:
    return decision_from_values({c: getattr(row, c) for c in DECISION_COLUMNS})


def decision_from_values(values: dict[str, Any]) -> Decision:
    stops = json.loads(values["stop_json"]) if values["stop_json"] else {}
    token = token_from_dict(json.loads(values["token_json"])) if values["token_json"] else None
    return Decision(
        session_id=values["session_id"],
        decided_at=values["decided_at"],
        message_id=values["message_id"],
        caller_partner_id=values["caller_partner_id"],
        operator_partner_id=values["operator_partner_id"],
        operator_id=values["operator_wire"],
        operator_key=values["operator_key"],
        evse_id=values["evse_wire"],
        evse_key=values["evse_key"],
        contract_id=values["contract_wire"],
        contract_key=values["contract_key"],
        token=token,
        partner_session_id=values["partner_session_id"],
        provider_id=values["provider_wire"],
        provider_key=values["provider_key"],
        provider_partner_id=values["provider_partner_id"],
        result=AuthorizationResult(values["result"]),
        reason=AuthorizationReason(values["reason"]),
        description=values["description"],
        source=DecisionSource(values["source"]),
        valid_until=values["valid_until"],
        stop_tokens=tuple(token_from_dict(t) for t in stops.get("tokens", [])),
        stop_contract_ids=tuple(stops.get("contractIds", [])),
        latency_ms=float(values["latency_ms"]),
        request_hash=values["request_hash"],
    )


# --------------------------------------------------------------------------- the cache's source


class SqlStoredFacts:
    """Implements domain.clearing.authorizer.StoredFacts: each read in its own short
    transaction, together with the change counter."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def contract(self, key: str) -> tuple[int, StoredContract | None]:
        with self.session_factory() as session:
            version = _counter(session)
            return version, SqlCustomerContractRepository(session).get(key)

    def settings(self, partner_id: str) -> tuple[int, AuthorizationSettings]:
        with self.session_factory() as session:
            version = _counter(session)
            found = SqlAuthorizationRepository(session).get_settings(partner_id)
        return version, found or AuthorizationSettings(partner_id)

    def by_tokens(self, digests: frozenset[Digest]) -> list[StoredContract]:
        with self.session_factory() as session:
            return SqlCustomerContractRepository(session).by_tokens(digests)


def _counter(session: Session) -> int:
    value = session.scalar(
        select(ChangeCounterRow.value).where(ChangeCounterRow.name == CONTRACTS_COUNTER)
    )
    return int(value or 0)


__all__ = [
    "DECISION_COLUMNS",
    "SqlAuthorizationRepository",
    "SqlCustomerContractRepository",
    "SqlStoredFacts",
    "decision_from_row",
    "decision_from_values",
    "decision_values",
]
