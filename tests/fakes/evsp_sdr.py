"""A fake EVSP SDR receiver: a partner's implementation of ``wsdl/sdr_receiver.wsdl``.

A real spyne service over SOAP 1.1 (like :mod:`tests.fakes.subscriber`) answering
``ReceiveSdrs`` with one ack per record, idempotent by (sdrId, version) as the contract
demands: ``received`` the first time it holds a version, ``duplicate`` afterwards. Every
request Body is validated against the canonical XSD first (``valid`` in the log).

Each ack is appended as one JSON line (``batchId``, ``sdrId``, ``version``, ``result``,
``schedule``, ``valid``, ``receivedAt``) to the log file and flushed *before* the answer, so
the log is the receiver's durable dedup table: a restarted receiver reads it back and still
answers ``duplicate``. ``received`` lines are the receiver's *effects*.

Behaviour switches: ``temporary`` sdrIds are answered ``refused``/TEMPORARY_FAILURE the first
time they arrive; ``refuse`` sdrIds are refused NOT_OUR_CONTRACT every time; ``fault_code``
answers that fault to every request; ``delay_s`` waits before answering (after recording).

Like a real EVSP it publishes the contract it implements (the canonical WSDL at ``?wsdl``,
address rewritten, and the XSDs it imports), so gembus can check it at registration.

In-process: ``app = make_receiver_app(log_path=...)``; ``serve(app)`` runs it in a thread.
As a process (kill it to simulate "EVSP down")::

    python -m tests.fakes.evsp_sdr --port 0 --log /tmp/sdr.jsonl [--delay 0.05]
        [--temporary SDRID ...] [--refuse SDRID ...] [--fault Server.Unavailable]

The first stdout line is ``fake-evsp-sdr listening on <base URL>``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from spyne import AnyXml, Application, ComplexModel, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from tests.fakes.clm import (
    REPO_ROOT,
    RunningClm,
    _base_url,
    _make_server,
    _pythonpath,
    _read_body,
    _Soap11,
    gembus_fault,
    serve,
)

SDR_RECEIVER_NS = "urn:gembus:sdr-receiver:v1"
ROAMING_NS = "urn:gembus:roaming:v1"
RECEIVER_PATH = "/evsp/sdr-receiver"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

_Required = Unicode(min_occurs=1, nillable=False)
_Optional = Unicode(min_occurs=0, nillable=False)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


class AckType(ComplexModel):
    """sdr-receiver:AckType (field order as in the XSD)."""

    __namespace__ = SDR_RECEIVER_NS
    _type_info = [
        ("sdrId", _Required),
        ("version", Integer(min_occurs=1, nillable=False)),
        ("result", _Required),
        ("reasonCode", _Optional),
        ("reason", _Optional),
    ]


@dataclass
class ReceiverState:
    log_path: Path | None
    delay_s: float = 0.0
    fault_code: str | None = None
    temporary: set[str] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)
    seen: set[tuple[str, int]] = field(default_factory=set)
    records: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Whether the Body of each request validated against the canonical XSD, in order.
    validity: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        for r in read_log(self.log_path):
            if r["result"] in ("received", "duplicate"):
                self.seen.add((r["sdrId"], int(r["version"])))
            if r["sdrId"] in self.temporary and r["result"] == "refused":
                self.temporary.discard(r["sdrId"])

    def receive(
        self, batch_id: str, schedule: str, entries: list[tuple[str, int]], valid: bool
    ) -> list[AckType]:
        """Decide every ack and record it durably before anyone is answered."""
        with self.lock:
            self.validity.append(valid)
            acks = [self._ack(sdr_id, version) for sdr_id, version in entries]
            self._record(batch_id, schedule, acks, valid)
        return acks

    def _ack(self, sdr_id: str, version: int) -> AckType:
        if sdr_id in self.refuse:
            return AckType(sdrId=sdr_id, version=version, result="refused",
                           reasonCode="NOT_OUR_CONTRACT", reason="not one of our contracts")  # fmt: skip
        if sdr_id in self.temporary:
            self.temporary.discard(sdr_id)
            return AckType(sdrId=sdr_id, version=version, result="refused",
                           reasonCode="TEMPORARY_FAILURE", reason="billing system busy")  # fmt: skip
        result = "duplicate" if (sdr_id, version) in self.seen else "received"
        self.seen.add((sdr_id, version))
        return AckType(sdrId=sdr_id, version=version, result=result)

    def _record(self, batch_id: str, schedule: str, acks: list[AckType], valid: bool) -> None:
        at = datetime.now(UTC).isoformat()
        lines = [
            {
                "batchId": batch_id,
                "sdrId": a.sdrId,
                "version": a.version,
                "result": a.result,
                "reasonCode": a.reasonCode,
                "schedule": schedule,
                "valid": valid,
                "receivedAt": at,
            }
            for a in acks
        ]
        self.records.extend(lines)
        if self.log_path is not None:
            with self.log_path.open("a", encoding="ascii") as log:
                log.write("".join(json.dumps(line) + "\n" for line in lines))
                log.flush()
                os.fsync(log.fileno())


class SdrReceiverService(ServiceBase):
    """urn:gembus:sdr-receiver:v1 as an EVSP implements it."""

    @rpc(
        _Required,
        _Required,
        _Required,
        AnyXml,
        AnyXml,
        AnyXml,
        _returns=(_Required, AckType.customize(min_occurs=1, max_occurs="unbounded")),
        _out_variable_names=("batchId", "ack"),
    )
    def ReceiveSdrs(
        ctx: Any,
        batchId: str,
        providerId: str,
        schedule: str,
        batchPeriod: Any,
        part: Any,
        sdrs: Any,
    ) -> tuple[str, list[AckType]]:
        state: ReceiverState = ctx.app.receiver_state
        if state.fault_code:
            raise gembus_fault(state.fault_code, f"configured to answer {state.fault_code}")
        # spyne's AnyXml hands over only the first child of <sdrs>: read the request itself
        request = ctx.in_body_doc
        entries = [
            (
                e.findtext(f"{{{ROAMING_NS}}}sdr/{{{ROAMING_NS}}}sdrId") or "",
                int(e.findtext(f"{{{ROAMING_NS}}}version") or 0),
            )
            for e in request.iterfind(f"{{{SDR_RECEIVER_NS}}}sdrs/{{{SDR_RECEIVER_NS}}}sdrEntry")
        ]
        acks = state.receive(batchId, schedule, entries, ctx.udc["valid"])
        if state.delay_s > 0:
            time.sleep(state.delay_s)
        return batchId, acks


class _ReceiverApplication(Application):  # type: ignore[misc]
    receiver_state: ReceiverState


class ReceiverApp:
    """The fake receiver as a WSGI app; GET serves its contract (or a one-line description)."""

    def __init__(
        self,
        *,
        log_path: str | os.PathLike[str] | None = None,
        delay_s: float = 0.0,
        fault_code: str | None = None,
        temporary: Iterable[str] = (),
        refuse: Iterable[str] = (),
    ) -> None:
        log = Path(log_path) if log_path is not None else None
        self.state = ReceiverState(log, delay_s, fault_code, set(temporary), set(refuse))
        spyne_app = _ReceiverApplication(
            [SdrReceiverService],
            tns=SDR_RECEIVER_NS,
            name="SdrReceiver",
            in_protocol=Soap11(validator=None),
            out_protocol=_Soap11(),
        )
        spyne_app.receiver_state = self.state
        spyne_app.event_manager.add_listener("method_call", _pass_validity)
        self._wsgi = WsgiApplication(spyne_app)
        from bus.contracts import all_contracts

        self.schema = all_contracts()["sdr_receiver"].schema

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.state.records

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self._get(environ, start_response)
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["fake.valid"] = self._valid(body)
        return self._wsgi(environ, start_response)  # type: ignore[no-any-return]

    def _valid(self, body: bytes) -> bool:
        try:
            root = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError:
            return False
        found = root.find(f"{{{SOAP11_ENV}}}Body")
        return found is not None and len(found) == 1 and bool(self.schema.validate(found[0]))

    def _get(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from bus.contracts import XSD_DIR, all_contracts, served_wsdl

        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "").lower()
        xml = [("Content-Type", "text/xml; charset=utf-8")]
        if "wsdl" in query:
            host = environ.get("HTTP_HOST", "127.0.0.1")
            start_response("200 OK", xml)
            return [served_wsdl(all_contracts()["sdr_receiver"], f"http://{host}{path}")]
        if path.startswith("/xsd/"):
            candidate = (XSD_DIR / path.removeprefix("/xsd/")).resolve()
            if candidate.is_relative_to(XSD_DIR) and candidate.is_file():
                start_response("200 OK", xml)
                return [candidate.read_bytes()]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"fake EVSP SDR receiver ({SDR_RECEIVER_NS}, SOAP 1.1)\n".encode()]


def _pass_validity(ctx: Any) -> None:
    """Hand the WSGI layer's schema verdict to the service method (spyne's udc)."""
    ctx.udc = {"valid": bool(ctx.transport.req_env.get("fake.valid"))}


def make_receiver_app(
    *,
    log_path: str | os.PathLike[str] | None = None,
    delay_s: float = 0.0,
    fault_code: str | None = None,
    temporary: Iterable[str] = (),
    refuse: Iterable[str] = (),
) -> ReceiverApp:
    return ReceiverApp(
        log_path=log_path, delay_s=delay_s, fault_code=fault_code, temporary=temporary,
        refuse=refuse,
    )  # fmt: skip


def read_log(path: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The acks a receiver (possibly another process) recorded in ``path``."""
    if path is None or not Path(path).exists():
        return []
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


@dataclass(frozen=True)
class Tally:
    """SECURITY.md §7's figures for a set of expected (sdrId, version) records."""

    expected: int
    lost: int  # expected but never received
    duplicated_effects: int  # records with more than one "received"
    duplicate_deliveries: int  # acks answered "duplicate"


def tally(records: list[dict[str, Any]], expected: Iterable[tuple[str, int]]) -> Tally:
    wanted = set(expected)
    effects = Counter((r["sdrId"], int(r["version"])) for r in records if r["result"] == "received")
    return Tally(
        expected=len(wanted),
        lost=len(wanted - set(effects)),
        duplicated_effects=sum(1 for n in effects.values() if n > 1),
        duplicate_deliveries=sum(1 for r in records if r["result"] == "duplicate"),
    )


def serve_receiver(app: ReceiverApp, port: int = 0) -> RunningClm:
    """Serve in a daemon thread of this process; :func:`endpoint_url` of its base URL."""
    return serve(app, port)


def endpoint_url(base_url: str) -> str:
    return base_url + RECEIVER_PATH


@dataclass
class ReceiverProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    @property
    def url(self) -> str:
        return endpoint_url(self.base_url)

    def records(self) -> list[dict[str, Any]]:
        return read_log(self.log_path)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


def start_receiver_process(
    log_path: str | os.PathLike[str],
    *,
    port: int = 0,
    delay_s: float = 0.0,
    fault_code: str | None = None,
    temporary: Iterable[str] = (),
    refuse: Iterable[str] = (),
    startup_timeout: float = 15.0,
) -> ReceiverProcess:
    """Run ``python -m tests.fakes.evsp_sdr`` and return once it listens."""
    command = [sys.executable, "-m", "tests.fakes.evsp_sdr", "--port", str(port)]
    command += ["--delay", str(delay_s), "--log", str(log_path)]
    if fault_code:
        command += ["--fault", fault_code]
    for sdr_id in temporary:
        command += ["--temporary", sdr_id]
    for sdr_id in refuse:
        command += ["--refuse", sdr_id]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *_pythonpath()])}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], startup_timeout)
    line = process.stdout.readline() if ready else ""
    process.stdout.close()
    prefix = "fake-evsp-sdr listening on "
    if not line.startswith(prefix):
        process.kill()
        process.wait(5)
        raise RuntimeError(
            f"fake EVSP receiver did not start (exit {process.returncode}): {line!r}"
        )
    return ReceiverProcess(process, line.removeprefix(prefix).strip(), Path(log_path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.evsp_sdr",
        description="Fake EVSP SDR receiver (urn:gembus:sdr-receiver:v1).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait per request")
    parser.add_argument("--fault", default=None, help="answer this fault code to every request")
    parser.add_argument("--log", default=None, help="append every ack here (JSON lines)")
    parser.add_argument("--temporary", action="append", default=[], metavar="SDR_ID",
                        help="answer TEMPORARY_FAILURE for this sdrId the first time")  # fmt: skip
    parser.add_argument("--refuse", action="append", default=[], metavar="SDR_ID",
                        help="refuse this sdrId (NOT_OUR_CONTRACT) every time")  # fmt: skip
    args = parser.parse_args(argv)
    app = make_receiver_app(
        log_path=args.log, delay_s=args.delay, fault_code=args.fault,
        temporary=args.temporary, refuse=args.refuse,
    )  # fmt: skip
    server = _make_server(app, args.host, args.port)
    print(f"fake-evsp-sdr listening on {_base_url(server)}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
