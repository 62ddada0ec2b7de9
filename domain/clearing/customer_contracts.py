"""Customer (B2C) contracts an EVSP stores at the clearing house, and how they are uploaded.

An EVSP that lets the clearing house authorize its customers from a stored list (DOMAIN.md
4.1 "stored list"; OCHP Set/UpdateRoamingAuthorisationList) uploads its contracts per
provider ID: a **full** upload replaces the provider's whole list (atomically, also when it
arrives in chunks), a **delta** inserts or replaces records by contract ID and removes the
listed deletions. Every record gets its own result; a rejected record never stops the others.

Contracts are keyed on the normalised contract ID (DOMAIN.md 7.3), so an EMAID and its DIN
form are one contract; the wire form is kept and echoed. Tokens are looked up by digest only:
a plain RFID UID is found under the SHA-256 and SHA-1 digests of its upper-case text, a
hashed token (``sha-256``/``sha-160``) under its own value, so a driver presenting either form
meets the stored one and the lookup index never holds a UID in clear.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache

from domain.identifiers import ContractId, InvalidIdentifier, ProviderId
from domain.marketplace.model import Validity
from domain.marketplace.partners import Page, parse_identifier
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from gembus.errors import ClientError, MissingIdentifierError, NotAuthorizedError

#: Chunks of a full upload that are not completed within this time are discarded.
CHUNK_LIFETIME = timedelta(hours=24)
#: Change counter bumped with every change of stored contracts or authorization settings;
#: the authorization cache of every process compares against it (domain/clearing/authorization.py).
CONTRACTS_COUNTER = "customer_contracts"


class InvalidChunkError(ClientError):
    fault_code = "Client.InvalidChunk"
    default_message = "the chunk does not fit the upload it belongs to"


class UploadInProgressError(ClientError):
    fault_code = "Client.UploadInProgress"
    default_message = "another upload of this provider is being applied; retry later"


class ContractStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    EXPIRED = "expired"


class UploadMode(enum.StrEnum):
    FULL = "full"
    DELTA = "delta"


class UploadStatus(enum.StrEnum):
    APPLIED = "applied"
    AWAITING_CHUNKS = "awaitingChunks"
    DUPLICATE = "duplicate"


class RecordOperation(enum.StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class RecordResult(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    NOT_FOUND = "notFound"
    REJECTED = "rejected"


class RejectReason(enum.StrEnum):
    EVCO_INCONSISTENT = "EVCO_INCONSISTENT"
    INVALID_CHECK_DIGIT = "INVALID_CHECK_DIGIT"
    DUPLICATE_IN_UPLOAD = "DUPLICATE_IN_UPLOAD"
    REMOTE_TOKEN_NOT_ALLOWED = "REMOTE_TOKEN_NOT_ALLOWED"  # noqa: S105 - a code, not a secret
    TOKEN_CONFLICT = "TOKEN_CONFLICT"  # noqa: S105 - a code, not a secret
    INVALID_VALIDITY = "INVALID_VALIDITY"
    DELETION_IN_FULL_UPLOAD = "DELETION_IN_FULL_UPLOAD"


class TokenType(enum.StrEnum):
    """cmn:TokenTypeType (OCHP EmtId tokenType)."""

    RFID = "rfid"
    REMOTE = "remote"  # app or remote starts: in SDRs only, never in a whitelist
    ISO15118 = "15118"


Digest = tuple[str, str]  # (algorithm "sha-256" | "sha-160", lower-case hex)


@dataclass(frozen=True)
class Token:
    """An authentication medium (cmn:TokenType) exactly as the partner sent it."""

    instance: str
    token_type: str
    sub_type: str | None = None
    representation: str | None = None  # absent means plain

    @property
    def is_plain(self) -> bool:
        return (self.representation or "plain") == "plain"

    def digests(self) -> frozenset[Digest]:
        """The digests this token is found under (see the module docstring)."""
        return _token_digests(self.instance, self.representation)


@lru_cache(maxsize=65_536)
def _token_digests(instance: str, representation: str | None) -> frozenset[Digest]:
    """Remembered: the hot path hashes the same cards again and again."""
    if (representation or "plain") != "plain":
        return frozenset({(str(representation), instance.strip().lower())})
    text = instance.strip().upper().encode()
    return frozenset(
        {
            ("sha-256", hashlib.sha256(text).hexdigest()),
            ("sha-160", hashlib.sha1(text, usedforsecurity=False).hexdigest()),
        }
    )


@lru_cache(maxsize=65_536)
def _contract_digests(tokens: tuple[Token, ...]) -> frozenset[Digest]:
    return frozenset(d for token in tokens for d in token.digests())


@dataclass(frozen=True)
class LocalizedText:
    text: str
    lang: str | None = None


@dataclass(frozen=True)
class EntitledService:
    """A service the contract's holder may consume (rm:EntitledServiceType)."""

    service_type: str
    service_code: str | None = None
    names: tuple[LocalizedText, ...] = ()
    validity: Validity | None = None  # absent: as long as the contract

    def valid_at(self, at: datetime) -> bool:
        return self.validity is None or self.validity.contains(at)


#: What a contract without entitledServices entitles to (the contract's "absent: charging only").
CHARGING_ONLY = (EntitledService("charging"),)


@dataclass(frozen=True)
class CustomerContract:
    """One customer contract as uploaded (rm:CustomerContractType), identifiers as received."""

    contract_id: str
    status: ContractStatus
    validity: Validity
    tokens: tuple[Token, ...] = ()
    printed_number: str | None = None
    entitled_services: tuple[EntitledService, ...] | None = None

    def status_at(self, at: datetime) -> ContractStatus:
        """A contract whose validTo has passed reads as expired whatever was uploaded."""
        if self.validity.valid_to is not None and self.validity.valid_to <= at:
            return ContractStatus.EXPIRED
        return self.status

    def services_at(self, at: datetime) -> tuple[EntitledService, ...]:
        services = CHARGING_ONLY if self.entitled_services is None else self.entitled_services
        return tuple(s for s in services if s.valid_at(at))

    def digests(self) -> frozenset[Digest]:
        return _contract_digests(self.tokens)

    def content_hash(self) -> str:
        """SHA-256 of the canonical content: an upload of the same record is ``unchanged``."""
        return hashlib.sha256(canonical_json(self).encode()).hexdigest()


@dataclass(frozen=True)
class StoredContract:
    """A contract held by the clearing house, with where and when it came from."""

    provider_id: str  # wire form of the upload's providerId
    provider_key: str
    key: str  # normalised contract ID
    contract: CustomerContract
    partner_id: str  # the EVSP that uploaded it
    upload_id: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Chunk:
    index: int
    count: int


@dataclass(frozen=True)
class UploadRequest:
    provider_id: str
    mode: UploadMode
    contracts: tuple[CustomerContract, ...] = ()
    deletions: tuple[str, ...] = ()
    upload_id: str | None = None
    chunk: Chunk | None = None


@dataclass(frozen=True)
class RecordOutcome:
    contract_id: str
    operation: RecordOperation
    result: RecordResult
    reason: RejectReason | None = None
    field: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class UploadOutcome:
    upload_id: str
    status: UploadStatus
    received: int
    applied: int
    rejected: int
    stored_total: int
    results: tuple[RecordOutcome, ...]
    processed_at: datetime


@dataclass(frozen=True)
class UploadRecord:
    """What the repository keeps per processed message: its answer (for repeats) and, for a
    chunk of a full upload that is not complete yet, the contracts it carried."""

    provider_key: str
    partner_id: str
    upload_id: str
    chunk: Chunk | None
    mode: UploadMode
    outcome: UploadOutcome
    staged: tuple[CustomerContract, ...] | None = None


@dataclass(frozen=True)
class StagedChunk:
    index: int
    count: int
    contracts: tuple[CustomerContract, ...]


@dataclass(frozen=True)
class Upsert:
    """A record to store: its normalised key and content hash."""

    key: str
    contract: CustomerContract
    content_hash: str


# --------------------------------------------------------------------------- screening


@dataclass
class _Accepted:
    position: int  # index of the record in the request (contracts, then deletions)
    key: str
    path: str  # e.g. contracts/contract[2]
    contract: CustomerContract | None  # None for a deletion


@dataclass
class _Slot:
    wire: str
    operation: RecordOperation
    outcome: RecordOutcome | None = None


@dataclass
class Screened:
    """Records in request order: rejections decided, accepted ones waiting for their result."""

    slots: list[_Slot] = field(default_factory=list)
    _accepted: dict[int, _Accepted] = field(default_factory=dict)  # by position, in order

    @property
    def upserts(self) -> list[_Accepted]:
        return [a for a in self._accepted.values() if a.contract is not None]

    @property
    def deletions(self) -> list[_Accepted]:
        return [a for a in self._accepted.values() if a.contract is None]

    def open(self, wire: str, operation: RecordOperation) -> int:
        self.slots.append(_Slot(wire, operation))
        return len(self.slots) - 1

    def accept(self, accepted: _Accepted) -> None:
        self._accepted[accepted.position] = accepted

    def reject(self, position: int, reason: RejectReason, path: str, message: str) -> None:
        slot = self.slots[position]
        slot.outcome = RecordOutcome(
            slot.wire, slot.operation, RecordResult.REJECTED, reason, path, message[:2000]
        )
        self._accepted.pop(position, None)

    def settle(self, position: int, result: RecordResult) -> None:
        slot = self.slots[position]
        slot.outcome = RecordOutcome(slot.wire, slot.operation, result)

    def outcomes(self) -> tuple[RecordOutcome, ...]:
        found = tuple(s.outcome for s in self.slots if s.outcome is not None)
        assert len(found) == len(self.slots), "every record has its result"
        return found


def screen(
    request: UploadRequest,
    provider: ProviderId,
    earlier: Sequence[CustomerContract] = (),
) -> Screened:
    """Check every record on its own and against the rest of the upload.

    ``earlier`` are the contracts of chunks of the same upload that arrived before: a contract
    ID or token seen there is a duplicate here too. Conflicts with the stored list are checked
    afterwards (:func:`reject_token_conflicts`), because they need the store.
    """
    screened = Screened()
    seen: dict[str, str] = {_key_or_wire(c.contract_id): "an earlier chunk" for c in earlier}
    tokens: dict[Digest, str] = {d: c.contract_id for c in earlier for d in c.digests()}
    for i, contract in enumerate(request.contracts, 1):
        position = screened.open(contract.contract_id, RecordOperation.UPSERT)
        path = f"contracts/contract[{i}]"
        key = _screen_contract(screened, position, contract, provider, path, seen)
        if key is None:
            continue
        seen[key] = f"{contract.contract_id} (contract[{i}])"
        clash = next((tokens[d] for d in contract.digests() if d in tokens), None)
        if clash is not None:
            screened.reject(
                position,
                RejectReason.TOKEN_CONFLICT,
                f"{path}/tokens",
                f"a token of {contract.contract_id} is also a token of {clash} in this upload",
            )
            continue
        tokens.update(dict.fromkeys(contract.digests(), contract.contract_id))
        screened.accept(_Accepted(position, key, path, contract))
    for i, wire in enumerate(request.deletions, 1):
        position = screened.open(wire, RecordOperation.DELETE)
        _screen_deletion(screened, position, wire, request.mode, provider, i, seen)
    return screened


def _key_or_wire(wire: str) -> str:
    try:
        return ContractId.parse(wire).key
    except InvalidIdentifier:
        return wire


def _screen_contract(
    screened: Screened,
    position: int,
    contract: CustomerContract,
    provider: ProviderId,
    path: str,
    seen: dict[str, str],
) -> str | None:
    """The record's key, or None after rejecting it."""
    key = _own_key(screened, position, contract.contract_id, provider, f"{path}/contractId")
    if key is None:
        return None
    if key in seen:
        screened.reject(
            position,
            RejectReason.DUPLICATE_IN_UPLOAD,
            f"{path}/contractId",
            f"{contract.contract_id} is the same contract as {seen[key]}; send each contract once",
        )
        return None
    validity = contract.validity
    if validity.valid_to is not None and validity.valid_to <= validity.valid_from:
        screened.reject(
            position,
            RejectReason.INVALID_VALIDITY,
            f"{path}/validity/validTo",
            "validTo must be after validFrom",
        )
        return None
    for t, token in enumerate(contract.tokens, 1):
        if token.token_type == TokenType.REMOTE:
            screened.reject(
                position,
                RejectReason.REMOTE_TOKEN_NOT_ALLOWED,
                f"{path}/tokens/token[{t}]/tokenType",
                "tokenType remote is only valid in SDRs",
            )
            return None
    return key


def _own_key(
    screened: Screened, position: int, wire: str, provider: ProviderId, path: str
) -> str | None:
    try:
        contract_id = ContractId.parse(wire)
    except InvalidIdentifier as exc:
        reason = (
            RejectReason.INVALID_CHECK_DIGIT
            if "check digit" in exc.reason
            else RejectReason.EVCO_INCONSISTENT
        )
        screened.reject(position, reason, path, f"{wire}: {exc.reason}")
        return None
    if contract_id.provider_key != provider.key:
        screened.reject(
            position,
            RejectReason.EVCO_INCONSISTENT,
            path,
            f"{wire} belongs to provider {contract_id.provider_key}, not {provider.wire}",
        )
        return None
    return contract_id.key


def _screen_deletion(
    screened: Screened,
    position: int,
    wire: str,
    mode: UploadMode,
    provider: ProviderId,
    index: int,
    seen: dict[str, str],
) -> None:
    path = f"deletions/contractId[{index}]"
    if mode is UploadMode.FULL:
        screened.reject(
            position,
            RejectReason.DELETION_IN_FULL_UPLOAD,
            path,
            "a full upload replaces the whole list; deletions are for delta uploads",
        )
        return
    key = _own_key(screened, position, wire, provider, path)
    if key is None:
        return
    if key in seen:
        screened.reject(
            position,
            RejectReason.DUPLICATE_IN_UPLOAD,
            path,
            f"{wire} is the same contract as {seen[key]}; send each contract once",
        )
        return
    seen[key] = f"{wire} (deletion {index})"
    screened.accept(_Accepted(position, key, path, None))


def reject_token_conflicts(screened: Screened, owners: dict[Digest, str]) -> None:
    """A token already stored for another contract of the provider is a conflict, unless
    that contract is replaced or deleted by this same upload."""
    touched = {a.key for a in screened.upserts} | {a.key for a in screened.deletions}
    for accepted in screened.upserts:
        assert accepted.contract is not None
        for digest in accepted.contract.digests():
            owner = owners.get(digest)
            if owner is not None and owner != accepted.key and owner not in touched:
                screened.reject(
                    accepted.position,
                    RejectReason.TOKEN_CONFLICT,
                    f"{accepted.path}/tokens",
                    f"a token of {accepted.contract.contract_id} is stored for contract {owner}",
                )
                break


# --------------------------------------------------------------------------- the use case


def own_provider(actor: Partner, provider_id: str, field_path: str = "providerId") -> ProviderId:
    """The caller's provider ID named in the request; another partner's is NotAuthorized."""
    provider = parse_identifier(ProviderId.parse, provider_id, field_path)
    if provider.key not in {p.key for p in actor.data.provider_ids}:
        raise NotAuthorizedError(
            f"{provider_id} is not one of {actor.partner_id}'s provider IDs", field=field_path
        )
    return provider


def _check_chunk(request: UploadRequest) -> None:
    chunk = request.chunk
    if chunk is None:
        return
    if request.upload_id is None:
        raise MissingIdentifierError("a chunked upload needs an uploadId", field="uploadId")
    if request.mode is not UploadMode.FULL:
        raise InvalidChunkError("only full uploads are sent in chunks", field="chunk")
    if chunk.index > chunk.count:
        raise InvalidChunkError(
            f"chunk {chunk.index} of {chunk.count} does not exist", field="chunk/index"
        )


def upload_customer_contracts(
    uow: UnitOfWork, actor: Partner, request: UploadRequest, now: datetime
) -> UploadOutcome:
    """Apply one upload message; the caller commits. A repeat changes nothing."""
    provider = own_provider(actor, request.provider_id)
    _check_chunk(request)
    upload_id = request.upload_id or f"cc-{uuid.uuid4().hex}"
    store = uow.customer_contracts
    store.lock_provider(provider.key, actor.partner_id)  # one upload per provider at a time
    index = request.chunk.index if request.chunk else 0
    previous = store.find_upload(provider.key, upload_id, index)
    if previous is not None:
        return replace(previous, status=UploadStatus.DUPLICATE)
    staged: list[StagedChunk] = []
    if request.chunk is not None:
        store.discard_stale_chunks(provider.key, now - CHUNK_LIFETIME)
        staged = store.staged_chunks(provider.key, upload_id)
        _check_count(request.chunk, staged)
    earlier = tuple(c for chunk in staged for c in chunk.contracts)
    screened = screen(request, provider, earlier)
    if request.mode is UploadMode.DELTA:
        digests = {d for a in screened.upserts if a.contract for d in a.contract.digests()}
        reject_token_conflicts(screened, store.token_owners(provider.key, digests))
    return _apply(uow, actor, request, provider, upload_id, screened, staged, now)


def _check_count(chunk: Chunk, staged: Sequence[StagedChunk]) -> None:
    if any(s.count != chunk.count for s in staged):
        raise InvalidChunkError(
            f"this upload was announced in {staged[0].count} chunks, not {chunk.count}",
            field="chunk/count",
        )


def _apply(
    uow: UnitOfWork,
    actor: Partner,
    request: UploadRequest,
    provider: ProviderId,
    upload_id: str,
    screened: Screened,
    staged: Sequence[StagedChunk],
    now: datetime,
) -> UploadOutcome:
    store = uow.customer_contracts
    upserts = _results(uow, provider.key, screened)
    chunk = request.chunk
    complete = chunk is None or {s.index for s in staged} | {chunk.index} == set(
        range(1, chunk.count + 1)
    )
    if not complete:
        status = UploadStatus.AWAITING_CHUNKS
    elif request.mode is UploadMode.DELTA:
        # deletions first: a token may move from a deleted contract to an upserted one
        store.delete(provider.key, [a.key for a in screened.deletions])
        store.upsert(provider.wire, provider.key, actor.partner_id, upserts, upload_id, now)
        status = UploadStatus.APPLIED
    else:
        everything = [*(c for s in staged for c in s.contracts), *_contracts(screened)]
        _replace_all(uow, actor, provider, everything, upload_id, now)
        status = UploadStatus.APPLIED
    if status is UploadStatus.APPLIED:
        uow.marketplace.bump(CONTRACTS_COUNTER)
        if chunk is not None:
            store.close_chunks(provider.key, upload_id)
    outcome = _outcome(screened, upload_id, status, store.count(provider.key), now)
    staged_here = None if status is UploadStatus.APPLIED else tuple(_contracts(screened))
    store.add_upload(
        UploadRecord(
            provider.key, actor.partner_id, upload_id, chunk, request.mode, outcome, staged_here
        )
    )
    return outcome


def _contracts(screened: Screened) -> list[CustomerContract]:
    return [a.contract for a in screened.upserts if a.contract is not None]


def _results(uow: UnitOfWork, provider_key: str, screened: Screened) -> list[Upsert]:
    """Fill in created/updated/unchanged/deleted/notFound; returns the records to write."""
    keys = [a.key for a in screened.upserts] + [a.key for a in screened.deletions]
    stored = uow.customer_contracts.content_hashes(provider_key, keys)
    writes = []
    for accepted in screened.upserts:
        assert accepted.contract is not None
        digest = accepted.contract.content_hash()
        before = stored.get(accepted.key)
        result = (
            RecordResult.CREATED
            if before is None
            else RecordResult.UNCHANGED
            if before == digest
            else RecordResult.UPDATED
        )
        screened.settle(accepted.position, result)
        if result is not RecordResult.UNCHANGED:
            writes.append(Upsert(accepted.key, accepted.contract, digest))
    for accepted in screened.deletions:
        found = accepted.key in stored
        screened.settle(
            accepted.position, RecordResult.DELETED if found else RecordResult.NOT_FOUND
        )
    return writes


def _replace_all(
    uow: UnitOfWork,
    actor: Partner,
    provider: ProviderId,
    contracts: Sequence[CustomerContract],
    upload_id: str,
    now: datetime,
) -> None:
    """A full upload: the provider's list becomes exactly ``contracts``, in one transaction."""
    store = uow.customer_contracts
    keyed = {ContractId.parse(c.contract_id).key: c for c in contracts}
    store.delete_all_except(provider.key, list(keyed))
    stored = store.content_hashes(provider.key, list(keyed))
    writes = [
        Upsert(key, contract, digest)
        for key, contract in keyed.items()
        if stored.get(key) != (digest := contract.content_hash())
    ]
    store.upsert(provider.wire, provider.key, actor.partner_id, writes, upload_id, now)


def _outcome(
    screened: Screened, upload_id: str, status: UploadStatus, stored_total: int, now: datetime
) -> UploadOutcome:
    results = screened.outcomes()
    rejected = sum(1 for r in results if r.result is RecordResult.REJECTED)
    return UploadOutcome(
        upload_id,
        status,
        len(results),
        len(results) - rejected,
        rejected,
        stored_total,
        results,
        now,
    )


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class ContractQuery:
    provider_id: str | None = None
    contract_id: str | None = None
    status: ContractStatus | None = None
    updated_since: datetime | None = None


def list_customer_contracts(
    uow: UnitOfWork, actor: Partner, query: ContractQuery, page: Page, at: datetime
) -> tuple[list[StoredContract], int]:
    """The caller's own stored contracts (every contract for the marketplace operator)."""
    operator = actor.has_role(Role.MARKETPLACE_OPERATOR)
    providers: list[str] | None
    if query.provider_id is not None:
        if operator:
            providers = [parse_identifier(ProviderId.parse, query.provider_id, "providerId").key]
        else:
            providers = [own_provider(actor, query.provider_id).key]
    else:
        providers = None if operator else [p.key for p in actor.data.provider_ids]
    key = None
    if query.contract_id is not None:
        key = parse_identifier(ContractId.parse, query.contract_id, "contractId").key
    return uow.customer_contracts.search(
        providers, key, query.status, query.updated_since, at, (page.offset, page.size)
    )


# --------------------------------------------------------------------------- canonical form


def canonical_json(contract: CustomerContract) -> str:
    """One text per content: the content hash and the stored record use it."""
    return json.dumps(contract_to_dict(contract), sort_keys=True, separators=(",", ":"))


def contract_to_dict(contract: CustomerContract) -> dict[str, object]:
    return {
        "contractId": contract.contract_id,
        "status": contract.status.value,
        "validity": _validity_to_dict(contract.validity),
        "tokens": [token_to_dict(t) for t in contract.tokens],
        "printedNumber": contract.printed_number,
        "entitledServices": None
        if contract.entitled_services is None
        else [_service_to_dict(s) for s in contract.entitled_services],
    }


def contract_from_dict(data: dict[str, object]) -> CustomerContract:
    services = data.get("entitledServices")
    tokens = data.get("tokens") or []
    assert isinstance(tokens, list)
    return CustomerContract(
        str(data["contractId"]),
        ContractStatus(str(data["status"])),
        _validity_from_dict(data["validity"]),
        tuple(token_from_dict(t) for t in tokens),
        _optional_str(data.get("printedNumber")),
        None if services is None else tuple(_service_from_dict(s) for s in _list(services)),
    )


def token_to_dict(token: Token) -> dict[str, str | None]:
    return {
        "instance": token.instance,
        "tokenType": token.token_type,
        "tokenSubType": token.sub_type,
        "representation": token.representation,
    }


def token_from_dict(data: object) -> Token:
    assert isinstance(data, dict)
    return Token(
        str(data["instance"]),
        str(data["tokenType"]),
        _optional_str(data.get("tokenSubType")),
        _optional_str(data.get("representation")),
    )


def _validity_to_dict(validity: Validity) -> dict[str, str | None]:
    return {
        "validFrom": validity.valid_from.isoformat(),
        "validTo": validity.valid_to.isoformat() if validity.valid_to else None,
    }


def _validity_from_dict(data: object) -> Validity:
    assert isinstance(data, dict)
    valid_to = data.get("validTo")
    return Validity(
        datetime.fromisoformat(str(data["validFrom"])),
        datetime.fromisoformat(str(valid_to)) if valid_to else None,
    )


def _service_to_dict(service: EntitledService) -> dict[str, object]:
    return {
        "serviceType": service.service_type,
        "serviceCode": service.service_code,
        "names": [[n.text, n.lang] for n in service.names],
        "validity": _validity_to_dict(service.validity) if service.validity else None,
    }


def _service_from_dict(data: object) -> EntitledService:
    assert isinstance(data, dict)
    validity = data.get("validity")
    return EntitledService(
        str(data["serviceType"]),
        _optional_str(data.get("serviceCode")),
        tuple(_name_from_list(n) for n in _list(data.get("names"))),
        _validity_from_dict(validity) if validity else None,
    )


def _name_from_list(value: object) -> LocalizedText:
    assert isinstance(value, list)
    return LocalizedText(str(value[0]), _optional_str(value[1]))


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
