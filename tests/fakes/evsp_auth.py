"""A fake EVSP answering roaming authorizations live (``wsdl/authorization.wsdl``).

An EVSP in "ask live" mode (DOMAIN.md 4.1) implements gembus's own authorization contract at
the endpoint it registered on the marketplace; gembus forwards AuthorizeRoaming and
GetPurchasedServices there with its sessionId. This is such an EVSP, as a real spyne service
over SOAP 1.1, whose answers validate against the canonical XSD:

* ``AuthorizeRoaming`` with a contract ID of its own provider: ``Authorized``/``OK`` for an
  active contract (validUntil in 10 minutes, the presented token and the contract as stop
  identifications), ``NotAuthorized`` with ``CONTRACT_LOCKED`` for a blocked one,
  ``NO_CONTRACT`` for an unknown one, ``EVCO_INCONSISTENT`` for another provider's. With a
  token only: ``Authorized`` with the contract the token belongs to, else ``RFID_UNKNOWN``.
  The sessionId it was given is echoed; ``decisionSource`` is ``liveEvsp``.
* ``GetPurchasedServices``: charging and reservation for an active contract, the reason
  otherwise.
* ``GetAuthorizationDecisions``: ``Server.NotImplemented`` (a live EVSP need not serve it).

Contracts are given as ``CONTRACT_ID=status[:RFID UID]`` (``IT-LIV-C00000001-7=active:AB12``).
Every POST is recorded before the optional delay (``--delay``: a slow EVSP), in memory and as
JSON lines in ``--log`` (:func:`tests.fakes.common.read_log` reads them). GETs answer the
canonical WSDL (address rewritten) and its XSDs, so gembus can check the endpoint at
registration. As a process::

    python -m tests.fakes.evsp_auth --provider IT-LIV --contract 'IT-LIV-C00000001-7=active:AB12'
        [--port 0] [--delay 3] [--log /tmp/x.jsonl]

:func:`start_evsp_process` does this and returns a handle with ``stop()``/``kill()``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spyne import ComplexModel, DateTime, ServiceBase, Unicode, rpc

from domain.identifiers import ContractId, InvalidIdentifier, ProviderId
from tests.fakes import common
from tests.fakes.common import (
    RecordingApp,
    RecordingProcess,
    TokenType,
    gembus_fault,
    soap11_application,
)

AZ = "urn:gembus:authorization:v1"
RM = "urn:gembus:roaming:v1"
#: The path the fake EVSP "registers" as its endpoint; it answers POSTs on any path.
EVSP_PATH = "/evsp/authorization"

_Required = Unicode(min_occurs=1, nillable=False)
_Optional = Unicode(min_occurs=0, nillable=False)


class StopIdentificationListType(ComplexModel):
    __namespace__ = AZ
    _type_info = [
        ("token", TokenType.customize(max_occurs=20, nillable=False)),
        ("contractId", Unicode(max_occurs=5, nillable=False)),
    ]


class EntitledServiceType(ComplexModel):
    __namespace__ = RM
    _type_info = [("serviceType", _Required), ("serviceCode", _Optional)]


class EntitledServiceListType(ComplexModel):
    __namespace__ = RM
    _type_info = [("service", EntitledServiceType.customize(min_occurs=1, max_occurs=50))]


@dataclass(frozen=True)
class Contract:
    status: str  # active | blocked
    uid: str | None = None


@dataclass
class EvspState:
    provider_id: str
    contracts: dict[str, Contract]  # by normalised contract ID
    provider_key: str = ""
    wires: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.provider_key = ProviderId.parse(self.provider_id).key

    def by_uid(self, uid: str) -> str | None:
        for key, contract in self.contracts.items():
            if contract.uid is not None and contract.uid.upper() == uid.strip().upper():
                return self.wires.get(key, key)
        return None


def parse_contracts(specs: Iterable[str]) -> tuple[dict[str, Contract], dict[str, str]]:
    """``CONTRACT_ID=status[:UID]`` specs -> contracts by key, and each key's wire form."""
    contracts, wires = {}, {}
    for spec in specs:
        wire, _, rest = spec.partition("=")
        status, _, uid = rest.partition(":")
        key = ContractId.parse(wire).key
        contracts[key] = Contract(status or "active", uid or None)
        wires[key] = wire
    return contracts, wires


def _answer(
    result: str,
    reason: str,
    code: str,
    session_id: str | None,
    echo: tuple[str | None, str, str | None, Any],
    provider_id: str,
    stops: StopIdentificationListType | None = None,
    valid_until: datetime | None = None,
) -> tuple[Any, ...]:
    partner_session_id, evse_id, contract_id, token = echo
    return (
        result,
        reason,
        code,
        None,
        session_id or f"evsp-{int(time.time() * 1000)}",
        partner_session_id,
        evse_id,
        contract_id,
        token,
        provider_id,
        "liveEvsp",
        stops,
        valid_until,
    )


class EvspAuthorizationService(ServiceBase):
    """urn:gembus:authorization:v1 as implemented by an EVSP that answers live."""

    @rpc(
        _Required,
        _Required,
        _Optional,
        TokenType,
        _Optional,
        _Optional,
        _returns=(
            _Required,
            _Required,
            _Required,
            _Optional,
            _Required,
            _Optional,
            _Required,
            _Optional,
            TokenType,
            _Optional,
            _Required,
            StopIdentificationListType,
            DateTime(nillable=False),
        ),
        _out_variable_names=(
            "result",
            "reason",
            "oicpStatusCode",
            "reasonDescription",
            "sessionId",
            "partnerSessionId",
            "evseId",
            "contractId",
            "token",
            "providerId",
            "decisionSource",
            "authorizationStopIdentifications",
            "validUntil",
        ),
    )
    def AuthorizeRoaming(
        ctx: Any,
        operatorId: str,
        evseId: str,
        contractId: str | None,
        token: Any,
        partnerSessionId: str | None,
        sessionId: str | None,
    ) -> tuple[Any, ...]:
        state: EvspState = ctx.app.fake_state
        if contractId is None and token is not None:
            contractId = state.by_uid(token.instance)
            if contractId is None:
                echo = (partnerSessionId, evseId, None, token)
                return _answer(
                    "NotAuthorized", "RFID_UNKNOWN", "102", sessionId, echo, state.provider_id
                )
        echo = (partnerSessionId, evseId, contractId, token)
        reason, code = _contract_reason(state, contractId or "")
        if reason != "OK":
            return _answer("NotAuthorized", reason, code, sessionId, echo, state.provider_id)
        stops = StopIdentificationListType(
            token=[token] if token is not None else [], contractId=[contractId]
        )
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
        return _answer("Authorized", "OK", "000", sessionId, echo, state.provider_id, stops, until)

    @rpc(
        _Required,
        _Optional,
        _Required,
        _returns=(_Required, _Optional, _Required, _Required, EntitledServiceListType),
        _out_variable_names=("contractId", "providerId", "reason", "oicpStatusCode", "services"),
    )
    def GetPurchasedServices(
        ctx: Any, operatorId: str, evseId: str | None, contractId: str
    ) -> tuple[Any, ...]:
        state: EvspState = ctx.app.fake_state
        reason, code = _contract_reason(state, contractId)
        services = None
        if reason == "OK":
            services = EntitledServiceListType(
                service=[
                    EntitledServiceType(serviceType="charging"),
                    EntitledServiceType(serviceType="reservation", serviceCode="Reservation"),
                ]
            )
        return contractId, state.provider_id, reason, code, services

    @rpc(Unicode, _returns=Unicode)
    def GetAuthorizationDecisions(ctx: Any, period: str | None) -> str:
        raise gembus_fault("Server.NotImplemented", "a live EVSP endpoint keeps no decisions audit")


def _contract_reason(state: EvspState, contract_id: str) -> tuple[str, str]:
    try:
        contract_key = ContractId.parse(contract_id).key
    except InvalidIdentifier:
        return "EVCO_INCONSISTENT", "019"
    if contract_key[:5] != state.provider_key:
        return "EVCO_INCONSISTENT", "019"
    contract = state.contracts.get(contract_key)
    if contract is None:
        return "NO_CONTRACT", "210"
    if contract.status == "blocked":
        return "CONTRACT_LOCKED", "200"
    return "OK", "000"


class EvspApp(RecordingApp):
    """The fake EVSP as a WSGI app: records every POST, waits ``delay_s``, lets spyne answer."""

    # An unknown XSD has always been answered with the description here, not 404.
    missing_xsd_is_404 = False

    def __init__(
        self,
        provider_id: str,
        contracts: Iterable[str] = (),
        *,
        delay_s: float = 0.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        parsed, wires = parse_contracts(contracts)
        self.state = EvspState(provider_id, parsed, wires=wires)
        super().__init__(
            soap11_application(
                EvspAuthorizationService, tns=AZ, name="Authorization", state=self.state
            ),
            description=f"fake EVSP {provider_id} ({AZ}, SOAP 1.1)",
            contract="authorization",
            delay_s=delay_s,
            log_path=log_path,
        )


class EvspProcess(RecordingProcess):
    """A fake EVSP running as its own process (see :func:`start_evsp_process`)."""

    module = "tests.fakes.evsp_auth"
    banner = "fake-evsp"
    label = "fake EVSP"
    path = EVSP_PATH


def start_evsp_process(
    provider_id: str,
    contracts: Iterable[str] = (),
    *,
    delay_s: float = 0.0,
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 15.0,
) -> EvspProcess:
    """Run ``python -m tests.fakes.evsp_auth`` and return once it listens on a free port."""
    args = ["--provider", provider_id, "--port", "0", "--delay", str(delay_s)]
    for spec in contracts:
        args += ["--contract", spec]
    if log_path is not None:
        args += ["--log", str(log_path)]
    return EvspProcess.start(args, log_path=log_path, startup_timeout=startup_timeout)


def main(argv: list[str] | None = None) -> None:
    parser = common.argument_parser(
        EvspProcess,
        "Fake EVSP answering urn:gembus:authorization:v1 live.",
        delay_help="seconds to wait per request",
        log_help="append every request here (JSON lines)",
    )
    parser.add_argument("--provider", required=True, help="its provider ID, e.g. IT-LIV")
    parser.add_argument(
        "--contract", action="append", default=[], help="CONTRACT_ID=active|blocked[:RFID UID]"
    )
    args = parser.parse_args(argv)
    app = EvspApp(args.provider, args.contract, delay_s=args.delay, log_path=args.log)
    common.run(app, args, EvspProcess)


if __name__ == "__main__":
    main()
