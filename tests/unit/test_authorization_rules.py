"""Roaming authorization rules (domain/clearing/authorizer.py) with in-memory ports.

Every reason of rm:AuthorizationReasonType is produced here by the check that owns it, with
its OICP code; the B2C rules of the stored list, the live EVSP with its timeout and fallback,
token-only routing, repeats and the stale-cache recheck run against fakes of the ports.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from domain.clearing.authorization import (
    OICP_CODES,
    AuthorizationMode,
    AuthorizationReason,
    AuthorizationRequest,
    AuthorizationResult,
    AuthorizationSettings,
    Decision,
    DecisionSource,
    LiveAnswer,
    LiveEvspTimeout,
    LiveEvspUnavailable,
    LiveFallback,
    NonceClaim,
    PurchasedServices,
    Recorded,
)
from domain.clearing.authorizer import (
    Ask,
    Authorizer,
    StoredListCache,
    stored_verdict,
    token_problem,
)
from domain.clearing.customer_contracts import (
    ContractStatus,
    CustomerContract,
    Digest,
    EntitledService,
    StoredContract,
    Token,
)
from domain.identifiers import ContractId, OperatorId, ProviderId
from domain.marketplace.model import Validity
from domain.marketplace.validation import AgreementAnswer, Reason
from domain.partners import Contact, Partner, PartnerData, PartnerStatus, Role
from gembus.errors import AuthenticationError, NotAuthorizedError
from tests.conftest import REPO

R = AuthorizationReason
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TNM_CONTRACT = "NL-TNM-000122045-U"  # valid check digit (DOMAIN.md 7.2)
TNM_DIN = "NL-TNM-012204-5"  # the DIN form of the same contract
LIVE_CONTRACT = "IT-LIV-C00000001-U"
UID = "4F2A19C3"


def partner(
    partner_id: str, operators: tuple[str, ...] = (), providers: tuple[str, ...] = ()
) -> Partner:
    roles = (Role.EVSE_OPERATOR,) * bool(operators) + (Role.EVSP,) * bool(providers)
    data = PartnerData(
        partner_id,
        roles,
        Contact("x@example.org"),
        tuple(OperatorId.parse(o) for o in operators),
        tuple(ProviderId.parse(p) for p in providers),
    )
    return Partner(partner_id, PartnerStatus.ACTIVE, data, NOW, NOW)


ICE = partner("ice-charging", operators=("DE*ICE",))
BMW = partner("bmw-emobility", operators=("DE*BMW",), providers=("DE-BMW",))
OWNERS = {
    "DEICE": "ice-charging",
    "DE823": "din-op",
    "DEBMW": "bmw-emobility",
    "NLTNM": "tnm-mobility",
    "ITLIV": "liv-evsp",
}


def stored(
    contract_id: str, status: str = "active", uid: str | None = UID, **validity: datetime
) -> StoredContract:
    window = Validity(
        validity.get("valid_from", NOW - timedelta(days=30)), validity.get("valid_to")
    )
    tokens = (Token(uid, "rfid", None, "plain"),) if uid else ()
    contract = CustomerContract(contract_id, ContractStatus(status), window, tokens)
    parsed = ContractId.parse(contract_id)
    return StoredContract(
        contract_id[:6], parsed.provider_key, parsed.key, contract, "x", None, NOW
    )


# --------------------------------------------------------------------------- fakes of the ports


@dataclass
class Agreements:
    """SRV 1967: owners by key; agreements (operator key, provider key) -> reason."""

    pairs: dict[tuple[str, str], Reason] = field(default_factory=dict)
    inactive: set[str] = field(default_factory=set)
    broken: bool = False

    def validate_roaming_agreement(
        self, operator_id: str, provider_id: str, at: datetime | None = None
    ) -> AgreementAnswer:
        if self.broken:
            raise RuntimeError("a bug in the agreement check")
        operator, provider = OWNERS.get(operator_id), OWNERS.get(provider_id)
        reason = self.pairs.get((operator_id, provider_id), Reason.NO_CONTRACT)
        if provider in self.inactive:
            reason = Reason.PARTNER_INACTIVE
        text = "no roaming agreement" if reason is Reason.NO_CONTRACT else None
        return AgreementAnswer(reason is Reason.OK, reason, at or NOW, (), operator, provider, text)


@dataclass
class Facts:
    contracts: dict[str, StoredContract] = field(default_factory=dict)
    settings_by_partner: dict[str, AuthorizationSettings] = field(default_factory=dict)
    version: int = 1
    reads: int = 0

    def add(self, contract: StoredContract) -> None:
        self.contracts[contract.key] = contract

    def contract(self, key: str) -> tuple[int, StoredContract | None]:
        self.reads += 1
        return self.version, self.contracts.get(key)

    def settings(self, partner_id: str) -> tuple[int, AuthorizationSettings]:
        return self.version, self.settings_by_partner.get(partner_id) or AuthorizationSettings(
            partner_id
        )

    def by_tokens(self, digests: frozenset[Digest]) -> list[StoredContract]:
        return [c for c in self.contracts.values() if c.contract.digests() & digests]


@dataclass
class Live:
    """An EVSP's live endpoint: answers by contract key, or is slow / down."""

    answers: dict[str, LiveAnswer] = field(default_factory=dict)
    by_token: LiveAnswer | None = None
    silent: bool = False
    down: bool = False
    asked: list[tuple[str, str | None, str]] = field(default_factory=list)

    def authorize(
        self, endpoint_url: str, request: AuthorizationRequest, session_id: str, timeout_s: float
    ) -> LiveAnswer:
        self.asked.append((endpoint_url, request.contract_id, session_id))
        if self.silent:
            raise LiveEvspTimeout("read timed out")
        if self.down:
            raise LiveEvspUnavailable("cannot be reached: ConnectionError")
        if request.contract_id is None:
            return self.by_token or LiveAnswer(AuthorizationResult.NOT_AUTHORIZED, R.RFID_UNKNOWN)
        key = ContractId.parse(request.contract_id).key
        return self.answers.get(key, LiveAnswer(AuthorizationResult.NOT_AUTHORIZED, R.NO_CONTRACT))

    def purchased_services(
        self,
        endpoint_url: str,
        operator_id: str,
        evse_id: str | None,
        contract_id: str,
        timeout_s: float,
    ) -> PurchasedServices:
        if self.silent:
            raise LiveEvspTimeout("read timed out")
        return PurchasedServices(contract_id, None, R.OK, (EntitledService("parking"),))


@dataclass
class Log:
    decisions: list[Decision] = field(default_factory=list)
    corrected: list[Decision] = field(default_factory=list)
    nonces: set[tuple[str, str]] = field(default_factory=set)
    contracts_version: int = 1

    def record(self, decision: Decision, nonce: NonceClaim | None) -> Recorded:
        if nonce is not None:
            if (nonce[0], nonce[1]) in self.nonces:
                return Recorded(False, 0, self.contracts_version, None)
            self.nonces.add((nonce[0], nonce[1]))
        prior = self._prior(decision)
        if prior is None:
            self.decisions.append(decision)
        return Recorded(True, 0, self.contracts_version, prior)

    def prior(
        self, operator_key: str, partner_session_id: str, request_hash: str, at: datetime
    ) -> Decision | None:
        for d in reversed(self.decisions):
            same = (d.operator_key, d.partner_session_id, d.request_hash) == (
                operator_key,
                partner_session_id,
                request_hash,
            )
            if same and d.valid_until is not None and d.valid_until > at:
                return d
        return None

    def _prior(self, decision: Decision) -> Decision | None:
        if decision.partner_session_id is None or decision.operator_key is None:
            return None
        return self.prior(
            decision.operator_key,
            decision.partner_session_id,
            decision.request_hash,
            decision.decided_at,
        )

    def correct(self, decision: Decision) -> None:
        self.corrected.append(decision)
        self.decisions = [
            decision if d.session_id == decision.session_id else d for d in self.decisions
        ]


@dataclass
class Gate:
    """The caller's unrecorded nonce as the pipeline hands it over (bus/pipeline.PendingNonce):
    ``consume`` records it in ``log`` on its own, as the pipeline's statement would."""

    nonce: NonceClaim
    log: Log
    done: bool = False

    @property
    def claim(self) -> NonceClaim | None:
        return None if self.done else self.nonce

    def consume(self) -> None:
        if self.done:
            return
        self.done = True
        if (self.nonce[0], self.nonce[1]) in self.log.nonces:
            raise AuthenticationError("replayed nonce")
        self.log.nonces.add((self.nonce[0], self.nonce[1]))


@dataclass
class World:
    agreements: Agreements
    facts: Facts
    live: Live
    log: Log
    authorizer: Authorizer
    errors: list[BaseException]


@pytest.fixture
def world() -> World:
    agreements = Agreements({("DEICE", "NLTNM"): Reason.OK, ("DEICE", "ITLIV"): Reason.OK})
    facts = Facts()
    facts.add(stored(TNM_CONTRACT))
    live, log, errors = Live(), Log(), []
    authorizer = Authorizer(
        agreements,
        StoredListCache(facts),
        live,
        live_endpoint=lambda partner_id: f"http://{partner_id}.example/az",
        roaming_partners=lambda key, at: (
            [("NLTNM", "tnm-mobility"), ("ITLIV", "liv-evsp")] if key == "DEICE" else []
        ),
        log=log,
        on_error=errors.append,
    )
    return World(agreements, facts, live, log, authorizer, errors)


def ask(
    contract_id: str | None = TNM_CONTRACT,
    *,
    token: Token | None = None,
    operator: str = "DE*ICE",
    evse: str = "DE*ICE*E123456*7",
    caller: Partner = ICE,
    psid: str | None = None,
    gate: Gate | None = None,
    at: datetime = NOW,
) -> Ask:
    return Ask(
        AuthorizationRequest(operator, evse, contract_id, token, psid), caller, "m1", at, gate
    )


def live_mode(
    world: World, partner_id: str = "liv-evsp", fallback: LiveFallback = LiveFallback.DENY
) -> None:
    world.facts.settings_by_partner[partner_id] = AuthorizationSettings(
        partner_id, AuthorizationMode.LIVE_EVSP, 300, fallback, NOW, "test"
    )
    changed(world)


def changed(world: World) -> None:
    """What committing a change of the stored lists or settings does: the counter moves."""
    world.facts.version += 1
    world.log.contracts_version = world.facts.version


# --------------------------------------------------------------------------- reason codes


def test_every_reason_of_the_contract_has_the_oicp_code_the_contract_documents() -> None:
    xsd = etree.parse(str(REPO / "xsd" / "types" / "roaming.xsd"))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    reason_type = xsd.find(".//xs:simpleType[@name='AuthorizationReasonType']", ns)
    assert reason_type is not None
    values = {e.get("value") for e in reason_type.iterfind(".//xs:enumeration", ns)}
    assert values == {r.value for r in AuthorizationReason}
    documented = dict(re.findall(r"([A-Z_]+) (\d{3})", "".join(reason_type.itertext())))
    assert documented == {r.value: code for r, code in OICP_CODES.items()}


# --------------------------------------------------------------------------- 1. caller identity


def test_another_operators_id_is_caller_mismatch_and_an_unresolvable_one_too(world: World) -> None:
    answer = world.authorizer.authorize(ask(operator="DE*BMW"))
    assert (answer.decision.result, answer.decision.reason) == (
        AuthorizationResult.NOT_AUTHORIZED,
        R.CALLER_MISMATCH,
    )
    assert answer.decision.oicp_code == "017"
    assert world.authorizer.authorize(ask(operator="+99*123")).decision.reason is R.CALLER_MISMATCH


def test_an_evse_of_another_operator_is_inconsistent_and_an_unresolvable_one_unknown(
    world: World,
) -> None:
    assert world.authorizer.authorize(ask(evse="DE*BMW*E1")).decision.reason is R.EVSE_INCONSISTENT
    unknown = world.authorizer.authorize(ask(evse="+99*823*1234")).decision
    assert (unknown.reason, unknown.oicp_code) == (R.EVSE_UNKNOWN, "603")
    assert "+99" in (unknown.description or "")


def test_din_evse_and_operator_ids_of_the_same_operator_are_consistent(world: World) -> None:
    din = partner("din-op", operators=("+49*823",))
    world.agreements.pairs[("DE823", "NLTNM")] = Reason.OK
    decision = world.authorizer.authorize(
        ask(operator="+49*823", evse="DE*823*E1234", caller=din)
    ).decision
    assert decision.reason is R.OK


# --------------------------------------------------------------------------- 2. syntax


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (Token("4F2A19C3", "remote"), "remote"),
        (Token("NOT-HEX", "rfid"), "hexadecimal"),
        (Token("abcd", "rfid", None, "sha-256"), "64 hexadecimal"),
        (Token("a" * 40, "rfid", None, "sha-160"), None),
        (Token("whatever-app-id", "15118"), None),
    ],
)
def test_tokens_that_cannot_be_used_are_data_errors(token: Token, problem: str | None) -> None:
    found = token_problem(token)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_data_error_is_answered_with_022(world: World) -> None:
    decision = world.authorizer.authorize(ask(token=Token(UID, "remote"))).decision
    assert (decision.reason, decision.oicp_code) == (R.DATA_ERROR, "022")


def test_a_bad_check_digit_is_evco_inconsistent(world: World) -> None:
    decision = world.authorizer.authorize(ask("NL-TNM-000122045-X")).decision
    assert (decision.reason, decision.oicp_code) == (R.EVCO_INCONSISTENT, "019")


# --------------------------------------------------------------------------- 3. + 4. home EVSP


def test_a_provider_nobody_owns_is_evsp_unknown_and_an_inactive_one_too(world: World) -> None:
    decision = world.authorizer.authorize(ask("FR-XXX-C00000001-S")).decision
    assert (decision.reason, decision.oicp_code, decision.provider_id) == (
        R.EVSP_UNKNOWN,
        "300",
        "FR-XXX",
    )
    world.agreements.inactive.add("tnm-mobility")
    assert world.authorizer.authorize(ask()).decision.reason is R.EVSP_UNKNOWN


def test_the_operators_own_customer_is_not_roaming(world: World) -> None:
    decision = world.authorizer.authorize(
        ask("DE*BMW*0010LY*3", operator="DE*BMW", evse="DE*BMW*E77", caller=BMW)
    ).decision
    assert (decision.result, decision.reason, decision.oicp_code) == (
        AuthorizationResult.NOT_ROAMING,
        R.NOT_ROAMING,
        "000",
    )
    assert decision.provider_partner_id == "bmw-emobility" and decision.valid_until is None


@pytest.mark.parametrize(
    ("reason", "text"),
    [(Reason.NO_CONTRACT, "no roaming agreement"), (Reason.EXPIRED, "roaming agreement expired")],
)
def test_no_valid_roaming_agreement(world: World, reason: Reason, text: str) -> None:
    world.agreements.pairs[("DEICE", "NLTNM")] = reason
    decision = world.authorizer.authorize(ask()).decision
    assert (decision.reason, decision.oicp_code, decision.description) == (
        R.NO_ROAMING_AGREEMENT,
        "210",
        text,
    )
    assert world.facts.reads == 0, "no B2C check without an agreement"


# --------------------------------------------------------------------------- 5. B2C, stored list


def test_an_active_stored_contract_is_authorized_until_at_most_its_end(world: World) -> None:
    world.facts.add(stored(TNM_CONTRACT, valid_to=NOW + timedelta(minutes=5)))
    decision = world.authorizer.authorize(
        ask(token=Token(UID, "rfid", "mifareCls"), psid="p1")
    ).decision
    assert (decision.result, decision.reason, decision.source) == (
        AuthorizationResult.AUTHORIZED,
        R.OK,
        DecisionSource.STORED_LIST,
    )
    assert decision.valid_until == NOW + timedelta(minutes=5)
    assert decision.stop_tokens == (Token(UID, "rfid", "mifareCls"),)
    assert decision.stop_contract_ids == (TNM_CONTRACT,)
    assert (decision.provider_id, decision.provider_partner_id) == ("NL-TNM", "tnm-mobility")


def test_the_din_form_finds_the_contract_stored_under_its_emaid(world: World) -> None:
    decision = world.authorizer.authorize(ask(TNM_DIN)).decision
    assert decision.reason is R.OK and decision.contract_id == TNM_DIN


@pytest.mark.parametrize(
    ("contract", "reason", "code"),
    [
        (None, R.NO_CONTRACT, "210"),
        (stored(TNM_CONTRACT, "expired"), R.NO_CONTRACT, "210"),
        (stored(TNM_CONTRACT, valid_to=NOW), R.NO_CONTRACT, "210"),
        (stored(TNM_CONTRACT, valid_from=NOW + timedelta(days=1)), R.NO_CONTRACT, "210"),
        (stored(TNM_CONTRACT, "blocked"), R.CONTRACT_LOCKED, "200"),
        (stored(TNM_CONTRACT, uid="AAAA"), R.RFID_UNKNOWN, "102"),
    ],
)
def test_stored_list_denials(
    contract: StoredContract | None, reason: AuthorizationReason, code: str
) -> None:
    verdict = stored_verdict(contract, TNM_CONTRACT, Token(UID, "rfid"), NOW)
    assert (verdict.result, verdict.reason, reason.oicp_code) == (
        AuthorizationResult.NOT_AUTHORIZED,
        reason,
        code,
    )


def test_a_plain_card_matches_the_sha256_digest_the_evsp_uploaded() -> None:
    digest = hashlib.sha256(UID.encode()).hexdigest()
    contract = replace(
        stored(TNM_CONTRACT, uid=None),
        contract=replace(
            stored(TNM_CONTRACT).contract, tokens=(Token(digest, "rfid", None, "sha-256"),)
        ),
    )
    assert stored_verdict(contract, TNM_CONTRACT, Token(UID.lower(), "rfid"), NOW).reason is R.OK
    assert (
        stored_verdict(
            contract, TNM_CONTRACT, Token(digest.upper(), "rfid", None, "sha-256"), NOW
        ).reason
        is R.OK
    )


# --------------------------------------------------------------------------- 5. B2C, live EVSP


def test_a_live_evsp_decides_and_gets_gembus_session_id(world: World) -> None:
    live_mode(world)
    key = ContractId.parse(LIVE_CONTRACT).key
    world.live.answers[key] = LiveAnswer(
        AuthorizationResult.AUTHORIZED, R.OK, valid_until=NOW + timedelta(hours=5)
    )
    decision = world.authorizer.authorize(ask(LIVE_CONTRACT)).decision
    assert (decision.result, decision.source) == (
        AuthorizationResult.AUTHORIZED,
        DecisionSource.LIVE_EVSP,
    )
    assert decision.valid_until == NOW + timedelta(minutes=15), "never longer than gembus allows"
    assert world.live.asked == [("http://liv-evsp.example/az", LIVE_CONTRACT, decision.session_id)]


def test_a_live_denial_keeps_the_evsps_reason(world: World) -> None:
    live_mode(world)
    key = ContractId.parse(LIVE_CONTRACT).key
    world.live.answers[key] = LiveAnswer(AuthorizationResult.NOT_AUTHORIZED, R.CONTRACT_LOCKED)
    decision = world.authorizer.authorize(ask(LIVE_CONTRACT)).decision
    assert (decision.reason, decision.source) == (R.CONTRACT_LOCKED, DecisionSource.LIVE_EVSP)


def test_a_silent_live_evsp_is_a_timeout_never_an_allow(world: World) -> None:
    live_mode(world)
    world.live.silent = True
    decision = world.authorizer.authorize(ask(LIVE_CONTRACT)).decision
    assert (decision.result, decision.reason, decision.oicp_code) == (
        AuthorizationResult.NOT_AUTHORIZED,
        R.EVSP_TIMEOUT,
        "310",
    )
    assert "300 ms" in (decision.description or "")


def test_an_unreachable_or_unusable_live_evsp_is_service_unavailable(world: World) -> None:
    live_mode(world)
    world.live.down = True
    decision = world.authorizer.authorize(ask(LIVE_CONTRACT)).decision
    assert (decision.reason, decision.oicp_code) == (R.SERVICE_UNAVAILABLE, "320")
    world.live.down = False
    key = ContractId.parse(LIVE_CONTRACT).key
    world.live.answers[key] = LiveAnswer(AuthorizationResult.NOT_AUTHORIZED, R.OK)  # nonsense
    assert world.authorizer.authorize(ask(LIVE_CONTRACT)).decision.reason is R.SERVICE_UNAVAILABLE
    world.authorizer.live_endpoint = lambda partner_id: None  # never published its service
    assert world.authorizer.authorize(ask(LIVE_CONTRACT)).decision.reason is R.SERVICE_UNAVAILABLE


def test_the_stored_list_fallback_decides_when_the_live_evsp_is_silent(world: World) -> None:
    live_mode(world, fallback=LiveFallback.STORED_LIST)
    world.live.silent = True
    world.facts.add(stored(LIVE_CONTRACT))
    decision = world.authorizer.authorize(ask(LIVE_CONTRACT)).decision
    assert (decision.result, decision.source) == (
        AuthorizationResult.AUTHORIZED,
        DecisionSource.STORED_LIST,
    )
    assert "evsp_timeout" in (decision.description or "")


# --------------------------------------------------------------------------- token only


def test_a_token_alone_is_found_in_the_stored_lists_first(world: World) -> None:
    live_mode(world)
    decision = world.authorizer.authorize(ask(None, token=Token(UID, "rfid"))).decision
    assert (decision.reason, decision.source, decision.contract_id) == (
        R.OK,
        DecisionSource.STORED_LIST,
        TNM_CONTRACT,
    )
    assert world.live.asked == []


def test_an_unknown_token_is_asked_of_every_live_evsp_and_any_yes_wins(world: World) -> None:
    live_mode(world)
    world.live.by_token = LiveAnswer(
        AuthorizationResult.AUTHORIZED, R.OK, contract_id=LIVE_CONTRACT
    )
    decision = world.authorizer.authorize(ask(None, token=Token("ABCDEF", "rfid"))).decision
    assert (decision.reason, decision.source, decision.contract_id) == (
        R.OK,
        DecisionSource.LIVE_EVSP,
        LIVE_CONTRACT,
    )
    assert decision.provider_partner_id == "liv-evsp"
    assert [a[0] for a in world.live.asked] == ["http://liv-evsp.example/az"], (
        "tnm answers from its list"
    )


def test_an_evsp_cannot_claim_a_token_for_another_providers_contract(world: World) -> None:
    live_mode(world)
    world.live.by_token = LiveAnswer(AuthorizationResult.AUTHORIZED, R.OK, contract_id=TNM_CONTRACT)
    decision = world.authorizer.authorize(ask(None, token=Token("ABCDEF", "rfid"))).decision
    assert decision.reason is R.SERVICE_UNAVAILABLE


def test_a_token_nobody_knows_is_rfid_unknown_unless_a_live_evsp_was_silent(world: World) -> None:
    decision = world.authorizer.authorize(ask(None, token=Token("ABCDEF", "rfid"))).decision
    assert (decision.reason, decision.oicp_code) == (R.RFID_UNKNOWN, "102")
    live_mode(world)
    assert (
        world.authorizer.authorize(ask(None, token=Token("ABCDEF", "rfid"))).decision.reason
        is R.RFID_UNKNOWN
    )
    world.live.silent = True
    assert (
        world.authorizer.authorize(ask(None, token=Token("ABCDEF", "rfid"))).decision.reason
        is R.EVSP_TIMEOUT
    )


# --------------------------------------------------------------------------- record, repeat, errors


def test_a_repeat_within_validity_returns_the_stored_decision(world: World) -> None:
    first = world.authorizer.authorize(ask(psid="ICE-1")).decision
    again = world.authorizer.authorize(ask(psid="ICE-1", at=NOW + timedelta(minutes=1)))
    assert again.repeated and again.decision.session_id == first.session_id
    assert again.decision.source is DecisionSource.STORED_DECISION
    other = world.authorizer.authorize(ask(TNM_DIN, psid="ICE-1", evse="DE*ICE*E9"))
    assert other.decision.session_id != first.session_id, "same key, other content: new decision"
    late = world.authorizer.authorize(ask(psid="ICE-1", at=NOW + timedelta(hours=1)))
    assert late.decision.session_id != first.session_id, "past validUntil: new decision"


def test_a_repeat_is_not_asked_of_the_live_evsp_again(world: World) -> None:
    live_mode(world)
    key = ContractId.parse(LIVE_CONTRACT).key
    world.live.answers[key] = LiveAnswer(AuthorizationResult.AUTHORIZED, R.OK)
    first = world.authorizer.authorize(ask(LIVE_CONTRACT, psid="ICE-2")).decision
    again = world.authorizer.authorize(ask(LIVE_CONTRACT, psid="ICE-2")).decision
    assert again.session_id == first.session_id and len(world.live.asked) == 1


def test_a_replayed_nonce_writes_nothing(world: World) -> None:
    nonce = ("ice-charging", "bm9uY2U=", NOW + timedelta(minutes=10))
    assert world.authorizer.authorize(ask(gate=Gate(nonce, world.log))).recorded.fresh
    assert not world.authorizer.authorize(ask(gate=Gate(nonce, world.log))).recorded.fresh
    assert len(world.log.decisions) == 1


def test_a_replay_is_refused_before_a_live_evsp_is_asked(world: World) -> None:
    """On the live path the nonce is recorded first, on its own: a replayed message must not
    make gembus call a partner system."""
    live_mode(world)
    key = ContractId.parse(LIVE_CONTRACT).key
    world.live.answers[key] = LiveAnswer(AuthorizationResult.AUTHORIZED, R.OK)
    nonce = ("ice-charging", "bGl2ZQ==", NOW + timedelta(minutes=10))
    first = Gate(nonce, world.log)
    world.authorizer.authorize(ask(LIVE_CONTRACT, gate=first))
    assert first.done and len(world.live.asked) == 1
    with pytest.raises(AuthenticationError):
        world.authorizer.authorize(ask(LIVE_CONTRACT, gate=Gate(nonce, world.log)))
    assert len(world.live.asked) == 1


def test_a_bug_denies_with_internal_and_is_reported(world: World) -> None:
    world.agreements.broken = True
    decision = world.authorizer.authorize(ask()).decision
    assert (decision.result, decision.reason, decision.oicp_code) == (
        AuthorizationResult.NOT_AUTHORIZED,
        R.INTERNAL,
        "021",
    )
    assert len(world.errors) == 1 and world.log.decisions == [decision]


def test_a_decision_made_on_stale_stored_facts_is_made_again_and_corrected(world: World) -> None:
    assert world.authorizer.authorize(ask()).decision.reason is R.OK  # the cache holds version 1
    world.facts.add(stored(TNM_CONTRACT, "blocked"))  # another process blocks it
    changed(world)
    answer = world.authorizer.authorize(ask())
    assert answer.decision.reason is R.CONTRACT_LOCKED
    assert world.log.corrected == [answer.decision]
    assert world.log.decisions[-1].reason is R.CONTRACT_LOCKED


def test_the_record_says_who_asked_what_why_how_fast_and_from_where(world: World) -> None:
    decision = world.authorizer.authorize(ask(psid="p9")).decision
    assert decision.caller_partner_id == decision.operator_partner_id == "ice-charging"
    assert (decision.operator_key, decision.evse_key, decision.contract_key) == (
        "DEICE",
        "DEICEE1234567",
        "NLTNM000122045",
    )
    assert decision.latency_ms >= 0 and decision.message_id == "m1"
    assert world.log.decisions == [decision]


# --------------------------------------------------------------------------- purchased services


def test_purchased_services_come_from_the_stored_contract_and_default_to_charging(
    world: World,
) -> None:
    answer = world.authorizer.purchased_services(ICE, "DE*ICE", "DE*ICE*E1", TNM_CONTRACT, NOW)
    assert (answer.reason, [s.service_type for s in answer.services]) == (R.OK, ["charging"])
    world.facts.add(stored(TNM_CONTRACT, "blocked"))
    changed(world)
    world.authorizer.facts.reset(world.facts.version)
    assert (
        world.authorizer.purchased_services(ICE, "DE*ICE", None, TNM_CONTRACT, NOW).reason
        is R.CONTRACT_LOCKED
    )


def test_purchased_services_of_a_live_evsp_and_its_silence(world: World) -> None:
    live_mode(world)
    answer = world.authorizer.purchased_services(ICE, "DE*ICE", None, LIVE_CONTRACT, NOW)
    assert [s.service_type for s in answer.services] == [
        "parking"
    ] and answer.provider_id == "IT-LIV"
    world.live.silent = True
    assert (
        world.authorizer.purchased_services(ICE, "DE*ICE", None, LIVE_CONTRACT, NOW).reason
        is R.EVSP_TIMEOUT
    )


def test_purchased_services_refuse_another_operators_evse_as_a_fault(world: World) -> None:
    with pytest.raises(NotAuthorizedError) as raised:
        world.authorizer.purchased_services(ICE, "DE*ICE", "DE*BMW*E1", TNM_CONTRACT, NOW)
    assert raised.value.field == "evseId"
    with pytest.raises(NotAuthorizedError):
        world.authorizer.purchased_services(ICE, "DE*BMW", None, TNM_CONTRACT, NOW)
