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

In-process: ``app = make_subscriber_app(log_path=...)``; ``serve_subscriber(app)`` runs it in a
thread. As a process (kill it to simulate "subscriber down")::

    python -m tests.fakes.subscriber --port 0 --log /tmp/notify.jsonl [--delay 0.05]
        [--fault Server.Unavailable]

The first stdout line is ``fake-subscriber listening on <base URL>``;
:func:`start_subscriber_process` returns a handle with ``stop()``/``kill()``.
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

from spyne import AnyXml, DateTime, ServiceBase, Unicode, rpc

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
        records = read_records(self.log_path)
        self.seen = {r["eventId"] for r in records if r["receipt"] == "received"}

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
            append_records(self.log_path, [record])
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
        state: SubscriberState = ctx.app.fake_state
        if state.fault_code:
            raise gembus_fault(state.fault_code, f"configured to answer {state.fault_code}")
        receipt = state.receive(eventId, subscriptionId, topic)
        if state.delay_s > 0:
            time.sleep(state.delay_s)
        return eventId, receipt


class SubscriberApp(FakeApp):
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
        super().__init__(
            soap11_application(
                SubscriberNotificationService,
                tns=NOTIFICATION_NS,
                name="Notification",
                state=self.state,
            ),
            description=f"fake subscriber ({NOTIFICATION_NS}, SOAP 1.1)",
        )

    @property
    def fault_code(self) -> str | None:
        return self.state.fault_code

    @fault_code.setter
    def fault_code(self, value: str | None) -> None:
        self.state.fault_code = value

    @property
    def records(self) -> list[dict[str, str]]:
        return self.state.records


def make_subscriber_app(
    *,
    log_path: str | os.PathLike[str] | None = None,
    delay_s: float = 0.0,
    fault_code: str | None = None,
) -> SubscriberApp:
    return SubscriberApp(log_path=log_path, delay_s=delay_s, fault_code=fault_code)


def tally(records: list[dict[str, str]], expected: Iterable[str]) -> Tally:
    """SECURITY.md §7's figures for a set of expected eventIds."""
    return common.tally_effects(records, expected, key=lambda r: r["eventId"], outcome="receipt")


def serve_subscriber(app: SubscriberApp, port: int = 0) -> RunningFake:
    """Serve in a daemon thread of this process; :func:`endpoint_url` of its base URL."""
    return common.serve(app, port, path=SUBSCRIBER_PATH)


def endpoint_url(base_url: str) -> str:
    return base_url + SUBSCRIBER_PATH


class SubscriberProcess(FakeProcess):
    """A fake subscriber running as its own process (see :func:`start_subscriber_process`)."""

    module = "tests.fakes.subscriber"
    banner = "fake-subscriber"
    label = "fake subscriber"
    path = SUBSCRIBER_PATH

    def records(self) -> list[dict[str, str]]:
        return read_records(self.log_path)


def start_subscriber_process(
    log_path: str | os.PathLike[str],
    *,
    port: int = 0,
    delay_s: float = 0.0,
    fault_code: str | None = None,
    startup_timeout: float = 15.0,
) -> SubscriberProcess:
    """Run ``python -m tests.fakes.subscriber`` and return once it listens."""
    args = ["--port", str(port), "--delay", str(delay_s), "--log", str(log_path)]
    if fault_code:
        args += ["--fault", fault_code]
    return SubscriberProcess.start(args, log_path=log_path, startup_timeout=startup_timeout)


def main(argv: list[str] | None = None) -> None:
    parser = common.argument_parser(
        SubscriberProcess,
        "Fake Notify subscriber (urn:gembus:notification:v1).",
        delay_help="seconds to wait per Notify",
        log_help="append every Notify here (JSON lines)",
    )
    parser.add_argument("--fault", default=None, help="answer this fault code to every Notify")
    args = parser.parse_args(argv)
    app = make_subscriber_app(log_path=args.log, delay_s=args.delay, fault_code=args.fault)
    common.run(app, args, SubscriberProcess)


if __name__ == "__main__":
    main()
