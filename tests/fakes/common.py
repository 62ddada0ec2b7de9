"""What every fake partner system shares, so that each fake module keeps only its contract.

* **SOAP**: :func:`soap11_application` wraps a fake's spyne service (SOAP 1.1 in and out, no
  validation on the way in: a fake decides itself what to make of a bad request), faults whose
  detail is the WSDL's ``cmn:gembusFault`` (:func:`gembus_fault`) and ``cmn:TokenType``.
* **WSGI**: :class:`FakeApp` lets spyne answer every POST and, like a real partner's endpoint,
  publishes the contract it implements on GET; :class:`RecordingApp` also records every POST
  exactly as it arrived (:class:`ReceivedRequest`, one JSON line each: :func:`read_log`).
* **Effect logs** of the idempotent receivers: one JSON line per effect, on disk before the
  answer (:func:`append_records`, :func:`read_records`), and SECURITY.md §7's figures over them
  (:func:`tally_effects`).
* **Serving**: :func:`serve` in a daemon thread of this process, or a process of its own
  (kill it to take the partner down): :meth:`FakeProcess.start` runs ``python -m <module>``,
  whose ``__main__`` is :func:`argument_parser` + :func:`run`; its first stdout line is
  ``<banner> listening on <base URL>``.
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
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, ClassVar, Self
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from lxml import etree
from lxml.builder import E
from spyne import Application, ComplexModel, Fault, ServiceBase, Unicode
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from bus.soap import SOAP11_ENV, SOAP12_ENV

COMMON_NS = "urn:gembus:common:v1"
REPO_ROOT = Path(__file__).resolve().parents[2]

# spyne logs every Fault raised by a service method with a traceback; the faults are the point.
for _name in ("spyne", "spyne.application", "spyne.application.server"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


# ---------------------------------------------------------------------------------- SOAP


class TokenType(ComplexModel):
    """cmn:TokenType (xsd/common), field order as in the XSD."""

    __namespace__ = COMMON_NS
    _type_info = [
        ("instance", Unicode(min_occurs=1)),
        ("tokenType", Unicode(min_occurs=1)),
        ("tokenSubType", Unicode),
        ("representation", Unicode),
    ]


def gembus_fault(code: str, message: str, field_path: str | None = None) -> Fault:
    """A SOAP Client/Server fault whose detail is the WSDL's ``cmn:gembusFault`` element."""
    detail = etree.Element(f"{{{COMMON_NS}}}gembusFault", nsmap={"cmn": COMMON_NS})
    etree.SubElement(detail, f"{{{COMMON_NS}}}code").text = code
    etree.SubElement(detail, f"{{{COMMON_NS}}}message").text = message[:2000]
    if field_path:
        etree.SubElement(detail, f"{{{COMMON_NS}}}field").text = field_path[:512]
    return Fault(faultcode=code, faultstring=message, detail=detail)


class FaultSoap11(Soap11):  # type: ignore[misc]
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


class FakeApplication(Application):  # type: ignore[misc]
    #: What the fake knows; its service methods read it as ``ctx.app.fake_state``.
    fake_state: Any


def soap11_application(
    service: type[ServiceBase], *, tns: str, name: str, state: object
) -> Application:
    """The spyne application of a fake: ``service`` over SOAP 1.1, ``state`` at hand."""
    app = FakeApplication(
        [service],
        tns=tns,
        name=name,
        in_protocol=Soap11(validator=None),
        out_protocol=FaultSoap11(),
    )
    app.fake_state = state
    return app


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

    @classmethod
    def of(cls, environ: dict[str, Any], body: bytes) -> ReceivedRequest:
        """The request a WSGI server hands over, received now."""
        action = environ.get("HTTP_SOAPACTION")
        child = body_child(body)
        return cls(
            operation=etree.QName(child).localname if child is not None else None,
            soap_action=action.strip().strip('"') if action is not None else None,
            content_type=environ.get("CONTENT_TYPE"),
            path=environ.get("PATH_INFO", ""),
            body=body,
            received_at=datetime.now(UTC),
        )

    def body_child(self) -> etree._Element | None:
        """The request's Body child (e.g. the ``ReserveEvse`` element) or None."""
        return body_child(self.body)

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


def body_child(body: bytes) -> etree._Element | None:
    """The Body child of a SOAP 1.1 or 1.2 envelope, None if there is none or no XML."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None
    soap_body = root.find(f"{{{SOAP11_ENV}}}Body")
    if soap_body is None:
        soap_body = root.find(f"{{{SOAP12_ENV}}}Body")
    return soap_body[0] if soap_body is not None and len(soap_body) else None


def read_log(path: str | os.PathLike[str]) -> list[ReceivedRequest]:
    """The requests a fake (possibly in another process) appended to ``path``."""
    log = Path(path)
    if not log.exists():
        return []
    return [ReceivedRequest.from_json(x) for x in log.read_text().splitlines() if x.strip()]


def append_records(path: Path | None, records: Iterable[Mapping[str, Any]]) -> None:
    """Append effects as JSON lines and fsync before anyone is answered: the log is the
    receiver's durable dedup table, which a restarted receiver reads back."""
    if path is None:
        return
    with path.open("a", encoding="ascii") as log:
        log.write("".join(json.dumps(record) + "\n" for record in records))
        log.flush()
        os.fsync(log.fileno())


def read_records(path: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The effects a receiver (possibly in another process) recorded in ``path``."""
    if path is None or not Path(path).exists():
        return []
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


@dataclass(frozen=True)
class Tally:
    """SECURITY.md §7's figures for a set of expected deliveries."""

    expected: int
    lost: int  # expected but never received
    duplicated_effects: int  # keys with more than one "received"
    duplicate_deliveries: int  # deliveries answered "duplicate"


def tally_effects(
    records: Sequence[Mapping[str, Any]],
    expected: Iterable[Hashable],
    *,
    key: Callable[[Mapping[str, Any]], Hashable],
    outcome: str,
) -> Tally:
    """Count an effect log: ``key`` names what one record is about, field ``outcome`` says
    whether it was ``received`` (an effect) or a ``duplicate``."""
    wanted = set(expected)
    effects = Counter(key(r) for r in records if r[outcome] == "received")
    return Tally(
        expected=len(wanted),
        lost=len(wanted - set(effects)),
        duplicated_effects=sum(1 for n in effects.values() if n > 1),
        duplicate_deliveries=sum(1 for r in records if r[outcome] == "duplicate"),
    )


# ---------------------------------------------------------------------------------- WSGI apps


class FakeApp:
    """A fake partner system as a WSGI app: spyne answers every POST, on any path.

    Like a real partner's endpoint, a GET publishes the ``contract`` it implements: the
    canonical WSDL at ``?wsdl`` (address rewritten) and the XSDs it imports under ``/xsd/``, so
    gembus can check it at registration. Any other GET answers ``description`` (a health check).
    """

    #: Whether a GET of an XSD that does not exist answers 404 (else: the description).
    missing_xsd_is_404: ClassVar[bool] = True

    def __init__(
        self, spyne_app: Application, *, description: str, contract: str | None = None
    ) -> None:
        self.description = description
        self.contract = contract
        self._wsgi = WsgiApplication(spyne_app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self._get(environ, start_response)
        body = read_body(environ)
        self._on_post(environ, body)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._wsgi(environ, start_response)  # type: ignore[no-any-return]

    def _on_post(self, environ: dict[str, Any], body: bytes) -> None:
        """What the fake does with a request before spyne reads it: nothing here."""

    def _get(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from bus.contracts import XSD_DIR, all_contracts, served_wsdl

        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "").lower()
        # A new list each time: wsgiref adds Content-Length to the very list it is given.
        xml = [("Content-Type", "text/xml; charset=utf-8")]
        if self.contract is not None and "wsdl" in query:
            host = environ.get("HTTP_HOST", "127.0.0.1")
            start_response("200 OK", xml)
            return [served_wsdl(all_contracts()[self.contract], f"http://{host}{path}")]
        if self.contract is not None and path.startswith("/xsd/"):
            candidate = (XSD_DIR / path.removeprefix("/xsd/")).resolve()
            if candidate.is_relative_to(XSD_DIR) and candidate.is_file():
                start_response("200 OK", xml)
                return [candidate.read_bytes()]
            if self.missing_xsd_is_404:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"not found\n"]
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{self.description}\n".encode()]


class RecordingApp(FakeApp):
    """A :class:`FakeApp` that records every POST before it answers: in memory
    (``received``) and, with a ``log_path``, as one JSON line in that file (:func:`read_log`);
    then it waits ``delay_s`` (a slow partner) and lets spyne answer."""

    def __init__(
        self,
        spyne_app: Application,
        *,
        description: str,
        contract: str,
        delay_s: float = 0.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(spyne_app, description=description, contract=contract)
        self.delay_s = delay_s
        self.log_path = Path(log_path) if log_path is not None else None
        self.received: list[ReceivedRequest] = []
        self._record_lock = threading.Lock()

    def _on_post(self, environ: dict[str, Any], body: bytes) -> None:
        request = ReceivedRequest.of(environ, body)
        with self._record_lock:
            self.received.append(request)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="ascii") as log:
                    log.write(request.to_json() + "\n")
        if self.delay_s > 0:
            time.sleep(self.delay_s)


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        return bytes(stream.read(int(length)))
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


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
class RunningFake:
    """A fake served by a thread of this process (see :func:`serve`)."""

    server: WSGIServer
    thread: threading.Thread
    path: str = ""  # the endpoint the fake "registers"; it answers POSTs on any path

    @property
    def base_url(self) -> str:
        return _base_url(self.server)

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: Any, port: int = 0, host: str = "127.0.0.1", path: str = "") -> RunningFake:
    """Serve ``app`` on host:port (0: a free port) in a daemon thread; ``stop()`` ends it."""
    server = _make_server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, name="fake-partner", daemon=True)
    thread.start()
    return RunningFake(server, thread, path)


@dataclass
class FakeProcess:
    """A fake running as its own process (see :meth:`start`); kill it: the partner is down.

    A subclass names the ``module`` it runs, the ``banner`` that module announces itself with
    (:func:`run`), the ``label`` errors call it by and the ``path`` of its endpoint.
    """

    module: ClassVar[str]
    banner: ClassVar[str]
    label: ClassVar[str]
    path: ClassVar[str]

    process: subprocess.Popen[str]
    base_url: str
    log_path: Path | None

    @classmethod
    def start(
        cls,
        args: list[str],
        *,
        log_path: str | os.PathLike[str] | None,
        startup_timeout: float,
    ) -> Self:
        """Run ``python -m <module> <args>`` and return once it listens."""
        command = [sys.executable, "-m", cls.module, *args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *_pythonpath()])}
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], startup_timeout)
        line = process.stdout.readline() if ready else ""
        process.stdout.close()
        prefix = f"{cls.banner} listening on "
        if not line.startswith(prefix):
            process.kill()
            process.wait(5)
            raise RuntimeError(f"{cls.label} did not start (exit {process.returncode}): {line!r}")
        log = Path(log_path) if log_path is not None else None
        return cls(process, line.removeprefix(prefix).strip(), log)

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

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
        """SIGKILL: the partner is down, connections are refused from now on."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RecordingProcess(FakeProcess):
    """A :class:`FakeProcess` serving a :class:`RecordingApp`."""

    def received(self) -> list[ReceivedRequest]:
        """What the process received so far (needs ``log_path``)."""
        if self.log_path is None:
            raise RuntimeError("start the fake with log_path to read what it received")
        return read_log(self.log_path)


def _pythonpath() -> list[str]:
    current = os.environ.get("PYTHONPATH", "")
    return [p for p in current.split(os.pathsep) if p]


def argument_parser(
    process: type[FakeProcess], description: str, *, delay_help: str, log_help: str
) -> argparse.ArgumentParser:
    """The command line of ``python -m <module>``: --port, --host, --delay, --log, and the
    fake's own options, which the caller adds."""
    parser = argparse.ArgumentParser(prog=f"python -m {process.module}", description=description)
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0, help=delay_help)
    parser.add_argument("--log", default=None, help=log_help)
    return parser


def run(app: Any, args: argparse.Namespace, process: type[FakeProcess]) -> None:
    """Serve ``app`` on --host/--port until killed; the first stdout line says where."""
    server = _make_server(app, args.host, args.port)
    print(f"{process.banner} listening on {_base_url(server)}", flush=True)
    # Nothing else goes to stdout: a parent that read the line may close its end of the pipe.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
