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
JSON lines in ``--log`` (:func:`tests.fakes.clm.read_log` reads them). GETs answer the
canonical WSDL (address rewritten) and its XSDs, so gembus can check the endpoint at
registration. As a process::

    python -m tests.fakes.evsp_auth --provider IT-LIV --contract 'IT-LIV-C00000001-7=active:AB12'
        [--port 0] [--delay 3] [--log /tmp/x.jsonl]

:func:`start_evsp_process` does this and returns a handle with ``stop()``/``kill()``.
"""

from __future__ import annotations

import argparse
import io
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spyne import Application, ComplexModel, DateTime, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from domain.identifiers import ContractId, InvalidIdentifier, ProviderId
from tests.fakes.clm import (
    REPO_ROOT,
    ReceivedRequest,
    TokenType,
    _make_server,
    _operation_of,
    _pythonpath,
    _read_body,
    _Soap11,
    gembus_fault,
    read_log,
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
        state: EvspState = ctx.app.evsp_state
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
        state: EvspState = ctx.app.evsp_state
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


class _EvspApplication(Application):  # type: ignore[misc]
    evsp_state: EvspState


class EvspApp:
    """The fake EVSP as a WSGI app: records every POST, waits ``delay_s``, lets spyne answer."""

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
        self.delay_s = delay_s
        self.log_path = Path(log_path) if log_path is not None else None
        self.received: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        spyne_app = _EvspApplication(
            [EvspAuthorizationService],
            tns=AZ,
            name="Authorization",
            in_protocol=Soap11(validator=None),
            out_protocol=_Soap11(),
        )
        spyne_app.evsp_state = self.state
        self._wsgi = WsgiApplication(spyne_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self._get(environ, start_response)
        body = _read_body(environ)
        self._record(environ, body)
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._wsgi(environ, start_response)  # type: ignore[no-any-return]

    def _get(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from bus.contracts import XSD_DIR, all_contracts, served_wsdl

        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "").lower()
        xml = [("Content-Type", "text/xml; charset=utf-8")]
        if "wsdl" in query:
            host = environ.get("HTTP_HOST", "127.0.0.1")
            start_response("200 OK", xml)
            return [served_wsdl(all_contracts()["authorization"], f"http://{host}{path}")]
        if path.startswith("/xsd/"):
            candidate = (XSD_DIR / path.removeprefix("/xsd/")).resolve()
            if candidate.is_relative_to(XSD_DIR) and candidate.is_file():
                start_response("200 OK", xml)
                return [candidate.read_bytes()]
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"fake EVSP {self.state.provider_id} ({AZ}, SOAP 1.1)\n".encode()]

    def _record(self, environ: dict[str, Any], body: bytes) -> None:
        action = environ.get("HTTP_SOAPACTION")
        request = ReceivedRequest(
            operation=_operation_of(body),
            soap_action=action.strip().strip('"') if action is not None else None,
            content_type=environ.get("CONTENT_TYPE"),
            path=environ.get("PATH_INFO", ""),
            body=body,
            received_at=datetime.now(UTC),
        )
        with self._lock:
            self.received.append(request)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="ascii") as log:
                    log.write(request.to_json() + "\n")


@dataclass
class EvspProcess:
    """A fake EVSP running as its own process (see :func:`start_evsp_process`)."""

    process: subprocess.Popen[str]
    base_url: str
    log_path: Path | None

    @property
    def url(self) -> str:
        return self.base_url + EVSP_PATH

    def received(self) -> list[ReceivedRequest]:
        if self.log_path is None:
            raise RuntimeError("start the fake with log_path to read what it received")
        return read_log(self.log_path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the EVSP is down, connections are refused from now on."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


def start_evsp_process(
    provider_id: str,
    contracts: Iterable[str] = (),
    *,
    delay_s: float = 0.0,
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 15.0,
) -> EvspProcess:
    """Run ``python -m tests.fakes.evsp_auth`` and return once it listens on a free port."""
    command = [sys.executable, "-m", "tests.fakes.evsp_auth", "--provider", provider_id]
    command += ["--port", "0", "--delay", str(delay_s)]
    for spec in contracts:
        command += ["--contract", spec]
    if log_path is not None:
        command += ["--log", str(log_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *_pythonpath()])}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], startup_timeout)
    line = process.stdout.readline() if ready else ""
    process.stdout.close()
    if not line.startswith("fake-evsp listening on "):
        process.kill()
        process.wait(5)
        raise RuntimeError(f"fake EVSP did not start (exit {process.returncode}): {line!r}")
    base_url = line.removeprefix("fake-evsp listening on ").strip()
    return EvspProcess(process, base_url, Path(log_path) if log_path is not None else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.evsp_auth",
        description="Fake EVSP answering urn:gembus:authorization:v1 live.",
    )
    parser.add_argument("--provider", required=True, help="its provider ID, e.g. IT-LIV")
    parser.add_argument(
        "--contract", action="append", default=[], help="CONTRACT_ID=active|blocked[:RFID UID]"
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait per request")
    parser.add_argument("--log", default=None, help="append every request here (JSON lines)")
    args = parser.parse_args(argv)
    app = EvspApp(args.provider, args.contract, delay_s=args.delay, log_path=args.log)
    server = _make_server(app, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"fake-evsp listening on http://{host}:{port}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
