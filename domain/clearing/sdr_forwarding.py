"""SDR forwarding (GeM "routing of charge data", DOMAIN.md 4.2): the clearing-house use cases.

* :func:`submit_sdrs` -- an operator's batch: every record checked (plausibility), decided
  against what is stored (state machine, idempotent by sdrId), routed to the home EVSP by the
  contract ID's provider prefix, and -- in the same transaction -- queued for push delivery
  in the transactional outbox and announced as ``SdrAvailable`` to subscribers. The caller
  commits before it answers, so an acknowledged record is durable.
* :func:`check_sdrs` (operator), :func:`pending_sdrs` and :func:`confirm_sdrs` (EVSP): each
  side sees only the records it is a party to.

How an EVSP gets its records (push, batches, pull) is :mod:`domain.clearing.sdr_delivery`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from domain.clearing.plausibility import Facts, Issue, check, parse_contract
from domain.clearing.sdr import (
    CheckQuery,
    ConfirmResult,
    Decision,
    Decline,
    Outcome,
    PendingQuery,
    Route,
    SdrEntry,
    SdrStatus,
    SdrSubmission,
    SdrVersion,
    StoredSdr,
    SubmitResult,
    on_confirmation,
    on_submission,
)
from domain.clearing.sdr_delivery import push_delivery, push_targets
from domain.identifiers import ContractId, EvseId, InvalidIdentifier, OperatorId, ProviderId
from domain.marketplace.partners import Page
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from domain.pubsub import SdrAvailable, Topic, publish_all
from gembus.errors import (
    InvalidIdentifierError,
    InvalidPeriodError,
    NotAuthorizedError,
)

_T = TypeVar("_T")

#: (operator ID wire form, provider ID key, session start) -> None, or why no agreement holds.
AgreementCheck = Callable[[str, str, datetime], str | None]


# ------------------------------------------------------------------------------- submit


@dataclass(slots=True)
class SubmitLine:
    """The answer for one submitted record (sdr:SubmitResultType)."""

    sdr_id: str
    outcome: Outcome
    issues: tuple[Issue, ...] = ()


@dataclass
class _Lookups:
    """Registry facts a batch needs, each looked up once per batch."""

    uow: UnitOfWork
    operator: OperatorId
    sender: str
    agreements: AgreementCheck
    contracts: dict[str, tuple[ContractId | None, str | None]] = field(default_factory=dict)
    owners: dict[str, str | None] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)

    def facts(self, record: SdrSubmission, now: datetime) -> Facts:
        contract, error = self.contract(record.contract_id)
        if contract is None:
            return Facts(self.operator.key, now, None, error)
        owner = self.owner(contract.provider_key)
        return Facts(
            self.operator.key, now, contract, None, owner, self.agreement(owner, contract, record)
        )

    def contract(self, text: str) -> tuple[ContractId | None, str | None]:
        if text not in self.contracts:
            self.contracts[text] = parse_contract(text)
        return self.contracts[text]

    def owner(self, provider_key: str) -> str | None:
        if provider_key not in self.owners:
            self.owners[provider_key] = self.uow.partners.owner_of_identifier(
                "provider", provider_key
            )
        return self.owners[provider_key]

    def agreement(
        self, owner: str | None, contract: ContractId, record: SdrSubmission
    ) -> str | None:
        if owner is None:
            return None  # CONTRACT_PROVIDER_UNKNOWN already says it all
        if owner == self.sender:
            return (
                "not a roaming session: the operator is itself the contract's EVSP, so the "
                "clearing house forwards nothing"
            )
        return self.agreements(self.operator.wire, contract.provider_key, record.start)

    def route(self, record: SdrSubmission) -> Route:
        """Who the record is between; one Route per contract ID (it depends on nothing else)."""
        route = self.routes.get(record.contract_id)
        if route is None:
            contract, _ = self.contract(record.contract_id)
            assert contract is not None, "only plausible records are routed"
            owner = self.owners[contract.provider_key]
            assert owner is not None
            route = self.routes[record.contract_id] = Route(
                self.sender,
                self.operator.key,
                self.operator.wire,
                owner,
                contract.provider_key,
                provider_wire(record.contract_id),
                contract.key,
            )
        return route


def provider_wire(contract_id: str) -> str:
    """The provider ID inside a contract ID, in the contract's own form (``NL-TNM`` of
    ``NL-TNM-000122045-U``, ``DE*BMW`` of ``DE*BMW*0010LY*3``): echoed, never re-formatted."""
    separator = contract_id[2] if contract_id[2] in "*-" else ""
    return contract_id[: 5 + len(separator)]


@dataclass
class _Batch:
    """The decisions on one SubmitSdrs batch and the writes they need."""

    now: datetime
    lines: list[SubmitLine] = field(default_factory=list)
    state: dict[str, StoredSdr] = field(default_factory=dict)
    new: dict[str, SdrVersion] = field(default_factory=dict)
    revisions: dict[str, tuple[SdrVersion, int]] = field(default_factory=dict)
    rejections: dict[str, tuple[int, str]] = field(default_factory=dict)


def submit_sdrs(
    uow: UnitOfWork,
    actor: Partner,
    operator_id: str,
    records: Sequence[SdrSubmission],
    now: datetime,
    agreements: AgreementCheck,
) -> list[SubmitLine]:
    """Decide, store and forward one batch in the caller's unit of work (commit, then answer)."""
    operator = own_operator(actor, operator_id)
    lookups = _Lookups(uow, operator, actor.partner_id, agreements)
    checked = [(r, check(r, lookups.facts(r, now))) for r in records]
    own = [r.sdr_id for r, _ in checked if r.sdr_id.startswith(operator.key)]
    batch = _Batch(now, state=uow.sdrs.current(own, lock=True) if own else {})
    for record, issues in checked:
        _decide(batch, record, issues, lookups, actor.partner_id, now)
    planned = list(batch.new.values()) + [v for v, _ in batch.revisions.values()]
    targets = push_targets(uow, {v.route.provider_partner_id for v in planned})
    stored = _persist(uow, batch, targets)
    _forward(uow, stored, targets, now)
    publish_all(uow, Topic.SDR_AVAILABLE, _events(stored), now)
    return batch.lines


def own_operator(actor: Partner, operator_id: str) -> OperatorId:
    """The operator ID the request names, which must be one of the caller's."""
    try:
        operator = OperatorId.parse(operator_id)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(str(exc), field="operatorId") from exc
    for own in actor.data.operator_ids:
        if own.key == operator.key:
            return operator
    raise NotAuthorizedError(f"operator ID {operator_id} is not yours", field="operatorId")


def _decide(
    batch: _Batch,
    record: SdrSubmission,
    issues: list[Issue],
    lookups: _Lookups,
    sender: str,
    now: datetime,
) -> None:
    current = batch.state.get(record.sdr_id)
    if current is not None and current.operator_partner_id != sender:
        reason = "the sdrId is held for another operator"
        batch.lines.append(SubmitLine(record.sdr_id, Outcome(SubmitResult.CONFLICT, reason=reason)))
        return
    outcome = on_submission(current, record.status, record.content_hash, not issues)
    shown = tuple(issues) if outcome.result is SubmitResult.IMPLAUSIBLE else ()
    batch.lines.append(SubmitLine(record.sdr_id, outcome, shown))
    if outcome.result is SubmitResult.ACCEPTED:
        version = SdrVersion(record, lookups.route(record), SdrStatus.ACCEPTED, 1, now)
        batch.new[record.sdr_id] = version
        batch.state[record.sdr_id] = _stored(version, sender)
    elif outcome.result is SubmitResult.REVISED:
        assert current is not None and outcome.version is not None
        route = lookups.route(record)
        revision = SdrVersion(
            record, route, SdrStatus.REVISED, outcome.version, now, current.decline
        )
        batch.revisions[record.sdr_id] = (revision, current.version)
        batch.state[record.sdr_id] = _stored(revision, sender)
    elif outcome.result is SubmitResult.REJECTED:
        assert current is not None
        batch.rejections[record.sdr_id] = (current.version, record.content_hash)
        batch.state[record.sdr_id] = replace(
            current, status=SdrStatus.REJECTED, content_hash=record.content_hash
        )


def _stored(version: SdrVersion, sender: str) -> StoredSdr:
    route = version.route
    return StoredSdr(
        version.submission.sdr_id,
        version.status,
        version.version,
        version.submission.content_hash,
        sender,
        route.provider_partner_id,
        route.provider_key,
        version.decline,
    )


def _persist(uow: UnitOfWork, batch: _Batch, targets: dict[str, str]) -> list[SdrVersion]:
    """Write the batch's decisions; returns the versions now stored (first ones and revisions).

    A concurrent request may have stored the same new sdrId first (its INSERT wins): that
    record is decided again against the winner -- duplicate or conflict, never twice stored.
    """
    versions = list(batch.new.values()) + [v for v, _ in batch.revisions.values()]
    forwarded = {v.submission.sdr_id for v in versions if v.route.provider_partner_id in targets}
    inserted = uow.sdrs.add(list(batch.new.values()), forwarded) if batch.new else set()
    lost = [sdr_id for sdr_id in batch.new if sdr_id not in inserted]
    if lost:
        _decide_lost_races(uow, batch, lost)
    stored = [batch.new[s] for s in batch.new if s in inserted]
    for sdr_id, (revision, previous) in batch.revisions.items():
        if uow.sdrs.revise(revision, previous, sdr_id in forwarded):
            stored.append(revision)
        else:
            _replace_line(
                batch, sdr_id, Outcome(SubmitResult.CONFLICT, reason="changed concurrently")
            )
    for sdr_id, (version, content_hash) in batch.rejections.items():
        if not uow.sdrs.reject(sdr_id, version, content_hash, batch.now):
            _replace_line(
                batch, sdr_id, Outcome(SubmitResult.CONFLICT, reason="changed concurrently")
            )
    return stored


def _decide_lost_races(uow: UnitOfWork, batch: _Batch, lost: list[str]) -> None:
    winners = uow.sdrs.current(lost, lock=True)
    for sdr_id in lost:
        record = batch.new[sdr_id].submission
        winner = winners.get(sdr_id)
        outcome = (
            on_submission(winner, record.status, record.content_hash, True)
            if winner is not None
            else None
        )
        if outcome is None or outcome.stores:
            outcome = Outcome(SubmitResult.CONFLICT, reason="stored concurrently")
        _replace_line(batch, sdr_id, outcome)


def _replace_line(batch: _Batch, sdr_id: str, outcome: Outcome) -> None:
    for n, line in enumerate(batch.lines):
        if line.sdr_id == sdr_id and line.outcome.result is not SubmitResult.IMPLAUSIBLE:
            batch.lines[n] = SubmitLine(sdr_id, outcome)


# ------------------------------------------------------------------------------- forward


def _forward(
    uow: UnitOfWork, stored: list[SdrVersion], targets: dict[str, str], now: datetime
) -> None:
    """Queue one ReceiveSdrs (schedule immediate) per EVSP provider ID in push mode."""
    groups: dict[tuple[str, str], list[SdrEntry]] = {}
    for version in stored:
        partner_id = version.route.provider_partner_id
        if partner_id in targets:
            groups.setdefault((partner_id, version.route.provider_key), []).append(version.entry())
    deliveries = [
        push_delivery(uow, partner_id, key, targets[partner_id], entries, now)
        for (partner_id, key), entries in groups.items()
    ]
    uow.outbox.enqueue(deliveries)


def _events(stored: list[SdrVersion]) -> Iterator[SdrAvailable]:
    """SdrAvailable for every record that became pending (built only if someone subscribed)."""
    for version in stored:
        record, route = version.submission, version.route
        yield SdrAvailable(
            record.sdr_id,
            version.status.value,
            OperatorId.parse(route.operator_wire),
            ProviderId.parse(route.provider_wire),
            EvseId.parse(record.evse_id),
            record.contract_id,
            record.start,
            record.end,
            (record.net_total, record.currency),
        )


# ------------------------------------------------------------------------------- read


def check_sdrs(
    uow: UnitOfWork,
    actor: Partner,
    operator_id: str | None,
    statuses: Sequence[SdrStatus],
    period: tuple[datetime, datetime] | None,
    sdr_ids: Sequence[str],
    page: Page,
) -> tuple[list[SdrEntry], int]:
    """CheckSdrs: an operator reads its own records; the marketplace operator reads any."""
    operator_key = None
    if actor.has_role(Role.MARKETPLACE_OPERATOR):
        owner = None
        if operator_id is not None:
            operator_key = _parse(OperatorId.parse, operator_id, "operatorId").key
    elif actor.has_role(Role.EVSE_OPERATOR):
        owner = actor.partner_id
        if operator_id is not None:
            operator_key = own_operator(actor, operator_id).key
    else:
        raise NotAuthorizedError("CheckSdrs is for EVSE operators")
    if period is not None and not period[0] < period[1]:
        raise InvalidPeriodError("the period must start before it ends", field="period")
    query = CheckQuery(
        owner, operator_key, tuple(statuses), period, tuple(sdr_ids), page.offset, page.size
    )
    return uow.sdrs.check(query)


def pending_sdrs(
    uow: UnitOfWork,
    actor: Partner,
    provider_id: str | None,
    operator_id: str | None,
    received_before: datetime | None,
    page: Page,
) -> tuple[list[SdrEntry], int]:
    """GetPendingSdrs: the records waiting for this EVSP's ConfirmSdrs, oldest first."""
    provider_key = own_provider(actor, provider_id).key if provider_id is not None else None
    if provider_id is None:
        _require_evsp(actor)
    operator_key = _parse(OperatorId.parse, operator_id, "operatorId").key if operator_id else None
    query = PendingQuery(
        actor.partner_id, provider_key, operator_key, received_before, page.offset, page.size
    )
    return uow.sdrs.pending(query)


def own_provider(actor: Partner, provider_id: str) -> ProviderId:
    """The provider ID the request names, which must be one of the caller's (an EVSP's)."""
    _require_evsp(actor)
    provider = _parse(ProviderId.parse, provider_id, "providerId")
    if not any(p.key == provider.key for p in actor.data.provider_ids):
        raise NotAuthorizedError(f"provider ID {provider_id} is not yours", field="providerId")
    return provider


def _require_evsp(actor: Partner) -> None:
    if not actor.has_role(Role.EVSP):
        raise NotAuthorizedError("only the home EVSP may pull and confirm its SDRs")


def _parse(parse: Callable[[str], _T], text: str, field_path: str) -> _T:
    try:
        return parse(text)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(str(exc), field=field_path) from exc


# ------------------------------------------------------------------------------- confirm


@dataclass(frozen=True, slots=True)
class Confirmation:
    """One sdr:ConfirmationType."""

    sdr_id: str
    decision: Decision
    version: int | None = None
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmLine:
    sdr_id: str
    result: ConfirmResult
    status: SdrStatus | None
    reason: str | None = None


_EXPLAIN = {
    ConfirmResult.NOT_FOUND: "no such SDR addressed to this provider ID",
    ConfirmResult.INVALID_STATE: "the record is not pending",
    ConfirmResult.STALE_VERSION: "a newer version is pending; confirm that one",
    ConfirmResult.MISSING_REASON: "a decline needs a reasonCode",
}


def confirm_sdrs(
    uow: UnitOfWork,
    actor: Partner,
    provider_id: str,
    confirmations: Sequence[Confirmation],
    now: datetime,
) -> list[ConfirmLine]:
    """ConfirmSdrs: the home EVSP approves (terminal) or declines (back to the operator)."""
    provider = own_provider(actor, provider_id)
    ids = list(dict.fromkeys(c.sdr_id for c in confirmations))
    state = uow.sdrs.addressed_to(actor.partner_id, provider.key, ids)
    lines, decisions = [], []
    for c in confirmations:
        stored = state.get(c.sdr_id)
        if stored is None:
            lines.append(
                ConfirmLine(
                    c.sdr_id, ConfirmResult.NOT_FOUND, None, _EXPLAIN[ConfirmResult.NOT_FOUND]
                )
            )
            continue
        result = on_confirmation(stored, c.decision, c.version, c.reason_code is not None)
        if result in (ConfirmResult.APPROVED, ConfirmResult.DECLINED):
            status = SdrStatus(result.value)
            decline = Decline(c.reason_code or "", c.reason, now) if c.reason_code else None
            decisions.append((c.sdr_id, stored.version, status, decline))
            stored = state[c.sdr_id] = replace(stored, status=status)
        lines.append(ConfirmLine(c.sdr_id, result, stored.status, _EXPLAIN.get(result)))
    if decisions:
        uow.sdrs.decide(decisions, now)
    return lines
