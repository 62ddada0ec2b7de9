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

In-process: ``app = make_receiver_app(log_path=...)``; ``serve_receiver(app)`` runs it in a
thread. As a process (kill it to simulate "EVSP down")::

    python -m tests.fakes.evsp_sdr --port 0 --log /tmp/sdr.jsonl [--delay 0.05]
        [--temporary SDRID ...] [--refuse SDRID ...] [--fault Server.Unavailable]

The first stdout line is ``fake-evsp-sdr listening on <base URL>``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from spyne import AnyXml, ComplexModel, Integer, ServiceBase, Unicode, rpc

from bus.soap import SOAP11_ENV
from tests.fakes import common
from tests.fakes.common import (
    FakeApp,
    FakeProcess,
    RunningFake,
    Tally,
    append_records,
    gembus_fault,
    read_records,
    soap11_application,
)

SDR_RECEIVER_NS = "urn:gembus:sdr-receiver:v1"
ROAMING_NS = "urn:gembus:roaming:v1"
RECEIVER_PATH = "/evsp/sdr-receiver"

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
        for r in read_records(self.log_path):
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
        append_records(self.log_path, lines)


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
        state: ReceiverState = ctx.app.fake_state
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


class ReceiverApp(FakeApp):
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
        spyne_app = soap11_application(
            SdrReceiverService, tns=SDR_RECEIVER_NS, name="SdrReceiver", state=self.state
        )
        spyne_app.event_manager.add_listener("method_call", _pass_validity)
        super().__init__(
            spyne_app,
            description=f"fake EVSP SDR receiver ({SDR_RECEIVER_NS}, SOAP 1.1)",
            contract="sdr_receiver",
        )
        from bus.contracts import all_contracts

        self.schema = all_contracts()["sdr_receiver"].schema

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.state.records

    def _on_post(self, environ: dict[str, Any], body: bytes) -> None:
        environ["fake.valid"] = self._valid(body)

    def _valid(self, body: bytes) -> bool:
        try:
            root = etree.fromstring(body, _PARSER)
        except etree.XMLSyntaxError:
            return False
        found = root.find(f"{{{SOAP11_ENV}}}Body")
        return found is not None and len(found) == 1 and bool(self.schema.validate(found[0]))


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


def tally(records: list[dict[str, Any]], expected: Iterable[tuple[str, int]]) -> Tally:
    """SECURITY.md §7's figures for a set of expected (sdrId, version) records."""
    return common.tally_effects(
        records, expected, key=lambda r: (r["sdrId"], int(r["version"])), outcome="result"
    )


def serve_receiver(app: ReceiverApp, port: int = 0) -> RunningFake:
    """Serve in a daemon thread of this process; :func:`endpoint_url` of its base URL."""
    return common.serve(app, port, path=RECEIVER_PATH)


def endpoint_url(base_url: str) -> str:
    return base_url + RECEIVER_PATH


class ReceiverProcess(FakeProcess):
    """A fake receiver running as its own process (see :func:`start_receiver_process`)."""

    module = "tests.fakes.evsp_sdr"
    banner = "fake-evsp-sdr"
    label = "fake EVSP receiver"
    path = RECEIVER_PATH

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.log_path)


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
    args = ["--port", str(port), "--delay", str(delay_s), "--log", str(log_path)]
    if fault_code:
        args += ["--fault", fault_code]
    for sdr_id in temporary:
        args += ["--temporary", sdr_id]
    for sdr_id in refuse:
        args += ["--refuse", sdr_id]
    return ReceiverProcess.start(args, log_path=log_path, startup_timeout=startup_timeout)


def main(argv: list[str] | None = None) -> None:
    parser = common.argument_parser(
        ReceiverProcess,
        "Fake EVSP SDR receiver (urn:gembus:sdr-receiver:v1).",
        delay_help="seconds to wait per request",
        log_help="append every ack here (JSON lines)",
    )
    parser.add_argument("--fault", default=None, help="answer this fault code to every request")
    parser.add_argument("--temporary", action="append", default=[], metavar="SDR_ID",
                        help="answer TEMPORARY_FAILURE for this sdrId the first time")  # fmt: skip
    parser.add_argument("--refuse", action="append", default=[], metavar="SDR_ID",
                        help="refuse this sdrId (NOT_OUR_CONTRACT) every time")  # fmt: skip
    args = parser.parse_args(argv)
    app = make_receiver_app(
        log_path=args.log, delay_s=args.delay, fault_code=args.fault,
        temporary=args.temporary, refuse=args.refuse,
    )  # fmt: skip
    common.run(app, args, ReceiverProcess)


if __name__ == "__main__":
    main()
