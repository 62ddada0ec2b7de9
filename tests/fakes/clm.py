"""A fake charge-location management system (CLM) of one EVSE operator.

The CLM implements gembus's canonical reservation contract (``wsdl/reservation.wsdl``,
``urn:gembus:reservation:v1``) as a real spyne service over SOAP 1.1, so a gembus gateway can
forward raw SOAP bytes to it and every answer validates against the canonical XSD:

* ``ReserveEvse`` for an EVSE of its own operator answers ``reservationId`` =
  ``f"{operator key}-R{n}"`` (``DEICE-R1``, ``DEICE-R2``, ...), the echoed ``evseId`` and
  ``partnerReservationId``, ``start`` = ``requestedStart`` (absent: now) and ``expiry`` =
  ``requestedExpiry``. A repeat with the same providerId and partnerReservationId returns the
  existing reservation (other content: ``Client.DuplicateReservation``).
* ``CancelReservation`` of a reservation it issued answers ``cancelledAt``; a repeat returns
  the original cancellation.
* Refusals are SOAP 1.1 Client faults whose detail is the WSDL's ``cmn:gembusFault`` (code,
  message, field): ``Client.EvseNotReservable`` for EVSE IDs in ``refuse``,
  ``Client.UnknownEvse`` for another operator's EVSE, ``Client.InvalidIdentifier``,
  ``Client.UnknownReservation``.

Every POST is recorded before the (optional) delay: in memory (``app.received``) and, when a
log path is given (argument or env var ``GEMBUS_FAKE_CLM_LOG``), as one JSON line per request
in that file, so a test in another process can read what the fake received (:func:`read_log`).

In-process: ``app = make_clm_app("DE*ICE")`` is a WSGI app; ``serve(app)`` runs it in a
background thread. As a real process (kill it to simulate "provider down")::

    python -m tests.fakes.clm --operator 'DE*ICE' --port 18001 [--delay 2] [--log /tmp/x]
        [--refuse 'DE*ICE*E1*1' ...] [--host 127.0.0.1] [--contract reservation_v2]

``contract="reservation_v2"`` (``--contract reservation_v2``) makes the fake a CLM that
implements version 2 of the family instead (``urn:gembus:reservation:v2``, the service in
:mod:`tests.fakes.clm_v2`), with the same state, behaviour and recording.

``--port 0`` picks a free port; the first stdout line is ``fake-clm listening on <base URL>``.
:func:`start_clm_process` does all of this and returns a handle with ``stop()``/``kill()``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lxml import etree
from lxml.builder import E
from spyne import Application, ComplexModel, DateTime, Fault, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from domain.identifiers import EvseId, InvalidIdentifier, OperatorId, ProviderId

RESERVATION_NS = "urn:gembus:reservation:v1"
COMMON_NS = "urn:gembus:common:v1"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
LOG_ENV_VAR = "GEMBUS_FAKE_CLM_LOG"
#: The path the CLM "registers" as its endpoint; the fake answers POSTs on any path.
CLM_PATH = "/clm/reservation"
REPO_ROOT = Path(__file__).resolve().parents[2]

# spyne logs every Fault raised by a service method with a traceback; the faults are the point.
for _name in ("spyne", "spyne.application", "spyne.application.server"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


# ---------------------------------------------------------------------------------- models
# spyne models mirroring xsd/reservation.xsd (wrapped document/literal: the wrapper elements
# ReserveEvse / ReserveEvseResponse and their children are in the reservation namespace; the
# children of cmn:TokenType are in the common namespace). Field order follows the XSD.


class TokenType(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("instance", Unicode(min_occurs=1)),
        ("tokenType", Unicode(min_occurs=1)),
        ("tokenSubType", Unicode),
        ("representation", Unicode),
    ]


_Required = Unicode(min_occurs=1, nillable=False)
_Optional = Unicode(min_occurs=0, nillable=False)
_RequiredTime = DateTime(min_occurs=1, nillable=False)


# ---------------------------------------------------------------------------------- state


@dataclass
class Reservation:
    reservation_id: str
    evse_id: str
    provider_key: str
    contract_id: str
    partner_reservation_id: str | None
    start: datetime
    expiry: datetime
    cancelled_at: datetime | None = None


@dataclass
class ClmState:
    """What one fake CLM knows: its operator, the EVSEs it refuses, the reservations it holds."""

    operator_id: str
    refuse: frozenset[str]  # EVSE ID keys (upper case, no "*")
    operator_key: str = ""
    reservations: dict[str, Reservation] = field(default_factory=dict)
    by_partner_ref: dict[tuple[str, str], Reservation] = field(default_factory=dict)
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.operator_key = OperatorId.parse(self.operator_id).key

    def own_evse(self, evse_id: str) -> EvseId:
        """The parsed EVSE ID if it belongs to this operator; a gembus fault otherwise."""
        try:
            evse = EvseId.parse(evse_id)
        except InvalidIdentifier as exc:
            raise gembus_fault("Client.InvalidIdentifier", str(exc), "evseId") from None
        if evse.operator_key != self.operator_key:
            raise gembus_fault(
                "Client.UnknownEvse",
                f"EVSE {evse_id} is not operated by {self.operator_id}",
                "evseId",
            )
        return evse


def _evse_key(evse_id: str) -> str:
    try:
        return EvseId.parse(evse_id).key
    except InvalidIdentifier:
        return evse_id.replace("*", "").upper()


def _provider_key(provider_id: str) -> str:
    try:
        return ProviderId.parse(provider_id).key
    except InvalidIdentifier:
        raise gembus_fault("Client.InvalidIdentifier", "invalid providerId", "providerId") from None


def gembus_fault(code: str, message: str, field_path: str | None = None) -> Fault:
    """A SOAP Client/Server fault whose detail is the WSDL's ``cmn:gembusFault`` element."""
    detail = etree.Element(f"{{{COMMON_NS}}}gembusFault", nsmap={"cmn": COMMON_NS})
    etree.SubElement(detail, f"{{{COMMON_NS}}}code").text = code
    etree.SubElement(detail, f"{{{COMMON_NS}}}message").text = message[:2000]
    if field_path:
        etree.SubElement(detail, f"{{{COMMON_NS}}}field").text = field_path[:512]
    return Fault(faultcode=code, faultstring=message, detail=detail)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------------------------- service


class ClmReservationService(ServiceBase):
    """urn:gembus:reservation:v1 as implemented by the EVSE operator's CLM."""

    @rpc(
        _Required,
        _Required,
        TokenType,
        _Required,
        _Optional,
        DateTime(nillable=False),
        _RequiredTime,
        _returns=(_Required, _Required, _Optional, _RequiredTime, _RequiredTime),
        _out_variable_names=("reservationId", "evseId", "partnerReservationId", "start", "expiry"),
    )
    def ReserveEvse(
        ctx: Any,
        providerId: str,
        contractId: str,
        token: TokenType | None,
        evseId: str,
        partnerReservationId: str | None,
        requestedStart: datetime | None,
        requestedExpiry: datetime,
    ) -> tuple[str, str, str | None, datetime, datetime]:
        state: ClmState = ctx.app.clm_state
        evse = state.own_evse(evseId)
        if evse.key in state.refuse:
            raise gembus_fault(
                "Client.EvseNotReservable", f"EVSE {evseId} cannot be reserved", "evseId"
            )
        provider_key = _provider_key(providerId)
        start = requestedStart or _now()
        with state.lock:
            ref = (provider_key, partnerReservationId) if partnerReservationId else None
            existing = state.by_partner_ref.get(ref) if ref else None
            if existing is not None:
                same = (existing.evse_id, existing.contract_id, existing.expiry) == (
                    evseId,
                    contractId,
                    requestedExpiry,
                )
                if not same:
                    raise gembus_fault(
                        "Client.DuplicateReservation",
                        f"partnerReservationId {partnerReservationId} was used for another "
                        "reservation",
                        "partnerReservationId",
                    )
                reservation = existing
            else:
                state.counter += 1
                reservation = Reservation(
                    reservation_id=f"{state.operator_key}-R{state.counter}",
                    evse_id=evseId,
                    provider_key=provider_key,
                    contract_id=contractId,
                    partner_reservation_id=partnerReservationId,
                    start=start,
                    expiry=requestedExpiry,
                )
                state.reservations[reservation.reservation_id] = reservation
                if ref:
                    state.by_partner_ref[ref] = reservation
        return (
            reservation.reservation_id,
            reservation.evse_id,
            reservation.partner_reservation_id,
            reservation.start,
            reservation.expiry,
        )

    @rpc(
        _Required,
        _Required,
        _Required,
        _Optional,
        _returns=(_Required, _Required, _RequiredTime),
        _out_variable_names=("reservationId", "evseId", "cancelledAt"),
    )
    def CancelReservation(
        ctx: Any, providerId: str, evseId: str, reservationId: str, reason: str | None
    ) -> tuple[str, str, datetime]:
        return cancel(ctx.app.clm_state, providerId, evseId, reservationId)


def cancel(
    state: ClmState, provider_id: str, evse_id: str, reservation_id: str
) -> tuple[str, str, datetime]:
    """CancelReservation's effect, the same in both contract versions: idempotent per ID."""
    evse = state.own_evse(evse_id)
    provider_key = _provider_key(provider_id)
    with state.lock:
        reservation = state.reservations.get(reservation_id)
        if (
            reservation is None
            or _evse_key(reservation.evse_id) != evse.key
            or reservation.provider_key != provider_key
        ):
            raise gembus_fault(
                "Client.UnknownReservation",
                f"no reservation {reservation_id} of {provider_id} on EVSE {evse_id}",
                "reservationId",
            )
        if reservation.cancelled_at is None:
            reservation.cancelled_at = _now()
        cancelled_at = reservation.cancelled_at
    return reservation.reservation_id, evse_id, cancelled_at


class _ClmApplication(Application):  # type: ignore[misc]
    clm_state: ClmState


class _Soap11(Soap11):  # type: ignore[misc]
    """spyne's Soap11, minus the empty ``<faultactor/>`` it writes into every fault."""

    def fault_to_parent(
        self, ctx: Any, cls: Any, inst: Any, parent: Any, ns: Any, *_: Any, **__: Any
    ) -> Any:
        subelts = [
            E("faultcode", f"{self.soap_env}:{inst.faultcode}"),
            E("faultstring", inst.faultstring),
        ]
        if inst.faultactor:
            subelts.append(E("faultactor", inst.faultactor))
        return self._fault_to_parent_impl(ctx, cls, inst, parent, ns, subelts)


# ---------------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST the fake received, exactly as it arrived."""

    operation: str | None  # local name of the Body child, None if unparsable
    soap_action: str | None  # without the quotes
    content_type: str | None
    path: str
    body: bytes
    received_at: datetime

    def body_child(self) -> etree._Element | None:
        """The request's Body child (e.g. the ``ReserveEvse`` element) or None."""
        try:
            root = etree.fromstring(self.body, _PARSER)
        except etree.XMLSyntaxError:
            return None
        body = root.find(f"{{{SOAP11_ENV}}}Body")
        if body is None:
            body = root.find("{http://www.w3.org/2003/05/soap-envelope}Body")
        return body[0] if body is not None and len(body) else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "operation": self.operation,
                "soapAction": self.soap_action,
                "contentType": self.content_type,
                "path": self.path,
                "body": self.body.decode("utf-8", "surrogateescape"),
                "receivedAt": self.received_at.isoformat(),
            },
            ensure_ascii=True,
        )

    @classmethod
    def from_json(cls, line: str) -> ReceivedRequest:
        data = json.loads(line)
        return cls(
            operation=data["operation"],
            soap_action=data["soapAction"],
            content_type=data["contentType"],
            path=data["path"],
            body=data["body"].encode("utf-8", "surrogateescape"),
            received_at=datetime.fromisoformat(data["receivedAt"]),
        )


def read_log(path: str | os.PathLike[str]) -> list[ReceivedRequest]:
    """The requests a fake (possibly in another process) appended to ``path``."""
    log = Path(path)
    if not log.exists():
        return []
    return [ReceivedRequest.from_json(x) for x in log.read_text().splitlines() if x.strip()]


# ---------------------------------------------------------------------------------- WSGI app


class ClmApp:
    """The fake CLM as a WSGI app: records every POST, waits ``delay_s``, lets spyne answer.

    A GET on any path answers 200 with a one-line description (a health check).
    """

    def __init__(
        self,
        operator_id: str,
        *,
        delay_s: float = 0.0,
        refuse: Iterable[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        contract: str = "reservation",
    ) -> None:
        self.operator_id = operator_id
        self.contract = contract
        service, self.namespace = _service_for(contract)
        self.delay_s = delay_s
        self.state = ClmState(operator_id, frozenset(_evse_key(e) for e in refuse or ()))
        log = log_path if log_path is not None else os.environ.get(LOG_ENV_VAR) or None
        self.log_path = Path(log) if log is not None else None
        self.received: list[ReceivedRequest] = []
        self._record_lock = threading.Lock()
        spyne_app = _ClmApplication(
            [service],
            tns=self.namespace,
            name="Reservation",
            in_protocol=Soap11(validator=None),
            out_protocol=_Soap11(),
        )
        spyne_app.clm_state = self.state
        self._wsgi = WsgiApplication(spyne_app)

    @property
    def reservations(self) -> dict[str, Reservation]:
        return self.state.reservations

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
        """Like a real CLM, publish the contract it implements: the canonical WSDL (address
        rewritten) at ?wsdl and the XSDs it imports, so gembus can check it at registration."""
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "").lower()
        xml = [("Content-Type", "text/xml; charset=utf-8")]
        if "wsdl" in query:
            from bus.contracts import all_contracts, served_wsdl

            host = environ.get("HTTP_HOST", "127.0.0.1")
            start_response("200 OK", xml)
            return [served_wsdl(all_contracts()[self.contract], f"http://{host}{path}")]
        if path.startswith("/xsd/"):
            from bus.contracts import XSD_DIR

            candidate = (XSD_DIR / path.removeprefix("/xsd/")).resolve()
            if candidate.is_relative_to(XSD_DIR) and candidate.is_file():
                start_response("200 OK", xml)
                return [candidate.read_bytes()]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"fake CLM of {self.operator_id} ({self.namespace}, SOAP 1.1)\n".encode()]

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
        with self._record_lock:
            self.received.append(request)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="ascii") as log:
                    log.write(request.to_json() + "\n")


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


def _operation_of(body: bytes) -> str | None:
    child = ReceivedRequest(None, None, None, "", body, datetime.now(UTC)).body_child()
    return etree.QName(child).localname if child is not None else None


def _service_for(contract: str) -> tuple[type[ServiceBase], str]:
    """The spyne service and namespace of the reservation version the fake implements."""
    if contract == "reservation":
        return ClmReservationService, RESERVATION_NS
    if contract == "reservation_v2":
        from tests.fakes.clm_v2 import RESERVATION_V2_NS, ClmReservationServiceV2

        return ClmReservationServiceV2, RESERVATION_V2_NS
    raise ValueError(f"the fake CLM implements reservation or reservation_v2, not {contract!r}")


def make_clm_app(
    operator_id: str,
    *,
    delay_s: float = 0.0,
    refuse: set[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    contract: str = "reservation",
) -> ClmApp:
    """A fake CLM of ``operator_id`` (``DE*ICE``) as a WSGI app.

    ``refuse``: EVSE IDs answered with ``Client.EvseNotReservable`` (any notation of the same
    EVSE matches). ``delay_s``: seconds to sleep before answering each POST. ``log_path``
    (default: env var ``GEMBUS_FAKE_CLM_LOG``): file to append each received request to.
    ``contract``: ``reservation`` (v1) or ``reservation_v2``.
    """
    return ClmApp(operator_id, delay_s=delay_s, refuse=refuse, log_path=log_path, contract=contract)


# ---------------------------------------------------------------------------------- serving


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _make_server(app: Any, host: str, port: int) -> WSGIServer:
    return make_server(
        host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )


def _base_url(server: WSGIServer) -> str:
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    return f"http://{host}:{port}"


@dataclass
class RunningClm:
    """A fake served by a thread of this process (see :func:`serve`)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return _base_url(self.server)

    @property
    def url(self) -> str:
        return self.base_url + CLM_PATH

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningClm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: Any, port: int = 0, host: str = "127.0.0.1") -> RunningClm:
    """Serve ``app`` on host:port (0: a free port) in a daemon thread; ``stop()`` ends it."""
    server = _make_server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, name="fake-clm", daemon=True)
    thread.start()
    return RunningClm(server, thread)


@dataclass
class ClmProcess:
    """A fake CLM running as its own process (see :func:`start_clm_process`)."""

    process: subprocess.Popen[str]
    base_url: str
    log_path: Path | None

    @property
    def url(self) -> str:
        return self.base_url + CLM_PATH

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def received(self) -> list[ReceivedRequest]:
        """What the process received so far (needs ``log_path``)."""
        if self.log_path is None:
            raise RuntimeError("start the fake with log_path to read what it received")
        return read_log(self.log_path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the provider is down, connections are refused from now on."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)

    def __enter__(self) -> ClmProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_clm_process(
    operator_id: str,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    delay_s: float = 0.0,
    refuse: Iterable[str] = (),
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 15.0,
    contract: str = "reservation",
) -> ClmProcess:
    """Run ``python -m tests.fakes.clm`` and return once it listens (port 0: a free port)."""
    command = [sys.executable, "-m", "tests.fakes.clm", "--operator", operator_id]
    command += ["--host", host, "--port", str(port), "--delay", str(delay_s)]
    command += ["--contract", contract]
    for evse_id in refuse:
        command += ["--refuse", evse_id]
    if log_path is not None:
        command += ["--log", str(log_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *_pythonpath()])}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], startup_timeout)
    line = process.stdout.readline() if ready else ""
    process.stdout.close()
    if not line.startswith("fake-clm listening on "):
        process.kill()
        process.wait(5)
        raise RuntimeError(f"fake CLM did not start (exit {process.returncode}): {line!r}")
    base_url = line.removeprefix("fake-clm listening on ").strip()
    log = Path(log_path) if log_path is not None else None
    return ClmProcess(process, base_url, log)


def _pythonpath() -> list[str]:
    current = os.environ.get("PYTHONPATH", "")
    return [p for p in current.split(os.pathsep) if p]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.clm", description="Fake CLM (urn:gembus:reservation:v1)."
    )
    parser.add_argument("--operator", required=True, help="EVSE operator ID, e.g. DE*ICE")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait per request")
    parser.add_argument(
        "--refuse", action="append", default=[], metavar="EVSE_ID", help="refuse this EVSE"
    )
    parser.add_argument("--log", default=None, help=f"append requests here (or ${LOG_ENV_VAR})")
    parser.add_argument(
        "--contract",
        choices=("reservation", "reservation_v2"),
        default="reservation",
        help="the version of the reservation family to implement",
    )
    args = parser.parse_args(argv)
    app = make_clm_app(
        args.operator,
        delay_s=args.delay,
        refuse=set(args.refuse),
        log_path=args.log,
        contract=args.contract,
    )
    server = _make_server(app, args.host, args.port)
    print(f"fake-clm listening on {_base_url(server)}", flush=True)
    # Nothing else goes to stdout: a parent that read the line may close its end of the pipe.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
