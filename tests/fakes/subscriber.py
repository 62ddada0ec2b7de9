"""A fake publish/subscribe subscriber: a partner's implementation of ``wsdl/notification.wsdl``.

A real spyne service over SOAP 1.1 (like :mod:`tests.fakes.clm`) that answers ``Notify`` with
receipt ``received`` the first time it sees an ``eventId`` and ``duplicate`` afterwards -- the
idempotent receiver of SECURITY.md §7. Every Notify is recorded as one JSON line
(``eventId``, ``subscriptionId``, ``topic``, ``receipt``, ``receivedAt``) in the log file,
appended and flushed *before* the answer (and before the optional delay), so the log is the
subscriber's durable dedup table: a restarted subscriber reads it back and still answers
``duplicate`` for what it had received. ``received`` lines are the subscriber's *effects*.

``fault_code`` makes it answer that fault to every Notify instead (``Client.*`` as a SOAP
Client fault, anything else as a Server fault), without recording an effect.

In-process: ``app = make_subscriber_app(log_path=...)``; ``serve(app)`` runs it in a thread.
As a process (kill it to simulate "subscriber down")::

    python -m tests.fakes.subscriber --port 0 --log /tmp/notify.jsonl [--delay 0.05]
        [--fault Server.Unavailable]

The first stdout line is ``fake-subscriber listening on <base URL>``;
:func:`start_subscriber_process` returns a handle with ``stop()``/``kill()``.
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

from spyne import AnyXml, Application, DateTime, ServiceBase, Unicode, rpc
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

NOTIFICATION_NS = "urn:gembus:notification:v1"
SUBSCRIBER_PATH = "/partner/notify"

_Required = Unicode(min_occurs=1, nillable=False)


@dataclass
class SubscriberState:
    log_path: Path | None
    delay_s: float = 0.0
    fault_code: str | None = None
    seen: set[str] = field(default_factory=set)
    records: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.seen = {r["eventId"] for r in read_log(self.log_path) if r["receipt"] == "received"}

    def receive(self, event_id: str, subscription_id: str, topic: str) -> str:
        """Decide received/duplicate and record it durably before anyone is answered."""
        with self.lock:
            receipt = "duplicate" if event_id in self.seen else "received"
            self.seen.add(event_id)
            record = {
                "eventId": event_id,
                "subscriptionId": subscription_id,
                "topic": topic,
                "receipt": receipt,
                "receivedAt": datetime.now(UTC).isoformat(),
            }
            self.records.append(record)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="ascii") as log:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    os.fsync(log.fileno())
        return receipt


class SubscriberNotificationService(ServiceBase):
    """urn:gembus:notification:v1 as a subscribing partner implements it."""

    @rpc(
        _Required,
        _Required,
        _Required,
        DateTime(min_occurs=1, nillable=False),
        AnyXml,
        AnyXml,
        AnyXml,
        _returns=(_Required, _Required),
        _out_variable_names=("eventId", "receipt"),
    )
    def Notify(
        ctx: Any,
        eventId: str,
        subscriptionId: str,
        topic: str,
        occurredAt: datetime,
        evseStatusChanged: Any,
        sdrAvailable: Any,
        loadRequestPublished: Any,
    ) -> tuple[str, str]:
        state: SubscriberState = ctx.app.subscriber_state
        if state.fault_code:
            raise gembus_fault(state.fault_code, f"configured to answer {state.fault_code}")
        receipt = state.receive(eventId, subscriptionId, topic)
        if state.delay_s > 0:
            time.sleep(state.delay_s)
        return eventId, receipt


class _SubscriberApplication(Application):  # type: ignore[misc]
    subscriber_state: SubscriberState


class SubscriberApp:
    """The fake subscriber as a WSGI app; GET answers a one-line description (health check)."""

    def __init__(
        self,
        *,
        log_path: str | os.PathLike[str] | None = None,
        delay_s: float = 0.0,
        fault_code: str | None = None,
    ) -> None:
        log = Path(log_path) if log_path is not None else None
        self.state = SubscriberState(log, delay_s, fault_code)
        spyne_app = _SubscriberApplication(
            [SubscriberNotificationService],
            tns=NOTIFICATION_NS,
            name="Notification",
            in_protocol=Soap11(validator=None),
            out_protocol=_Soap11(),
        )
        spyne_app.subscriber_state = self.state
        self._wsgi = WsgiApplication(spyne_app)

    @property
    def fault_code(self) -> str | None:
        return self.state.fault_code

    @fault_code.setter
    def fault_code(self, value: str | None) -> None:
        self.state.fault_code = value

    @property
    def records(self) -> list[dict[str, str]]:
        return self.state.records

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"fake subscriber ({NOTIFICATION_NS}, SOAP 1.1)\n".encode()]
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._wsgi(environ, start_response)  # type: ignore[no-any-return]


def make_subscriber_app(
    *,
    log_path: str | os.PathLike[str] | None = None,
    delay_s: float = 0.0,
    fault_code: str | None = None,
) -> SubscriberApp:
    return SubscriberApp(log_path=log_path, delay_s=delay_s, fault_code=fault_code)


def read_log(path: str | os.PathLike[str] | None) -> list[dict[str, str]]:
    """The Notify calls a subscriber (possibly another process) recorded in ``path``."""
    if path is None or not Path(path).exists():
        return []
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


@dataclass(frozen=True)
class Tally:
    """SECURITY.md §7's figures for a set of expected eventIds."""

    expected: int
    lost: int  # expected but never received
    duplicated_effects: int  # eventIds with more than one "received"
    duplicate_deliveries: int  # deliveries answered "duplicate"


def tally(records: list[dict[str, str]], expected: Iterable[str]) -> Tally:
    wanted = set(expected)
    effects = Counter(r["eventId"] for r in records if r["receipt"] == "received")
    return Tally(
        expected=len(wanted),
        lost=len(wanted - set(effects)),
        duplicated_effects=sum(1 for n in effects.values() if n > 1),
        duplicate_deliveries=sum(1 for r in records if r["receipt"] == "duplicate"),
    )


def serve_subscriber(app: SubscriberApp, port: int = 0) -> RunningClm:
    """Serve in a daemon thread of this process; :func:`endpoint_url` of its base URL."""
    return serve(app, port)


def endpoint_url(base_url: str) -> str:
    return base_url + SUBSCRIBER_PATH


@dataclass
class SubscriberProcess:
    process: subprocess.Popen[str]
    base_url: str
    log_path: Path

    @property
    def url(self) -> str:
        return endpoint_url(self.base_url)

    def records(self) -> list[dict[str, str]]:
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


def start_subscriber_process(
    log_path: str | os.PathLike[str],
    *,
    port: int = 0,
    delay_s: float = 0.0,
    fault_code: str | None = None,
    startup_timeout: float = 15.0,
) -> SubscriberProcess:
    """Run ``python -m tests.fakes.subscriber`` and return once it listens."""
    command = [sys.executable, "-m", "tests.fakes.subscriber", "--port", str(port)]
    command += ["--delay", str(delay_s), "--log", str(log_path)]
    if fault_code:
        command += ["--fault", fault_code]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *_pythonpath()])}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], startup_timeout)
    line = process.stdout.readline() if ready else ""
    process.stdout.close()
    prefix = "fake-subscriber listening on "
    if not line.startswith(prefix):
        process.kill()
        process.wait(5)
        raise RuntimeError(f"fake subscriber did not start (exit {process.returncode}): {line!r}")
    return SubscriberProcess(process, line.removeprefix(prefix).strip(), Path(log_path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.subscriber",
        description="Fake Notify subscriber (urn:gembus:notification:v1).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait per Notify")
    parser.add_argument("--fault", default=None, help="answer this fault code to every Notify")
    parser.add_argument("--log", default=None, help="append every Notify here (JSON lines)")
    args = parser.parse_args(argv)
    app = make_subscriber_app(log_path=args.log, delay_s=args.delay, fault_code=args.fault)
    server = _make_server(app, args.host, args.port)
    print(f"fake-subscriber listening on {_base_url(server)}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
