"""The outbox relay: the one delivery loop that owns attempts, backoff and dead letters.

Each relay thread repeats one small transaction: claim a batch of due rows (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), POST each row's Notify envelope to its subscription's endpoint, record
every outcome, COMMIT. A relay killed anywhere in between (SIGKILL included) loses nothing: the
database rolls the transaction back, the rows are pending again with their attempt counts
unchanged, and the next relay sends them again with the same ``eventId`` -- which the
subscriber answers ``duplicate`` (at least once on the wire, exactly once in effect).

Outcomes (wsdl/notification.wsdl):

* ``NotifyResponse`` with receipt ``received`` or ``duplicate`` for our eventId: delivered.
* a ``Client`` fault: dead letter at once (the partner will never accept it unchanged);
  ``Client.UnknownSubscription`` also suspends the subscription.
* anything else -- refused connection, timeout, HTTP 5xx, ``Server`` fault, an answer that is
  not SOAP: retried after an exponential backoff with jitter, dead after ``max_attempts``.

Rows carry a message *kind* that picks the SOAPAction and how the answer is read
(:class:`MessageKind`): ``notify`` (above) here, ``sdr_receiver`` (a ReceiveSdrs batch with
per-record acks) in bus/sdr_push.py; the worker is given every kind it delivers. A kind may
answer a partly successful batch with a *follow-up* delivery of the rest, which the relay
queues in the same transaction, due after the backoff.

Retries happen here and nowhere else (STYLE.md §11).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import urllib3
from lxml import etree

from bus.soap import SOAP11_ENV, SOAP12_ENV
from domain.ports import UnitOfWork
from domain.pubsub import (
    NOTIFICATION_NS,
    Delivery,
    DeliveryStatus,
    OutboxEntry,
    Settlement,
    SubscriptionStatus,
)
from gembus.logging import get_logger

COMMON_NS = "urn:gembus:common:v1"
NOTIFY_ACTION = f'"{NOTIFICATION_NS}/Notify"'
_ENVELOPE_START = (
    f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body>'
).encode()
_ENVELOPE_END = b"</soap:Body></soap:Envelope>"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
#: last_error is for people: keep it readable and bounded.
_MAX_ERROR = 500


def envelope(payload: str) -> bytes:
    """The SOAP 1.1 request for a stored Notify element."""
    return _ENVELOPE_START + payload.encode() + _ENVELOPE_END


# ------------------------------------------------------------------------------ policy


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter", capped; dead after ``max_attempts`` tries."""

    max_attempts: int = 8
    base_s: float = 30.0
    cap_s: float = 3600.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): the exponential step,
        half of it fixed (so no retry storm hits a recovering partner at once) and half random
        (so relays do not retry in lockstep). Always within [step/2, step]."""
        step = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        return step / 2 + rand() * step / 2


@dataclass(frozen=True)
class Outcome:
    """What one POST achieved."""

    delivered: bool
    retryable: bool = True
    error: str | None = None
    suspend_subscription: bool = False
    #: What is still to be sent after a partly successful answer; queued by the relay.
    follow_up: Delivery | None = None


DELIVERED = Outcome(delivered=True, retryable=False)


def settle(
    entry: OutboxEntry,
    outcome: Outcome,
    policy: RetryPolicy,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Settlement:
    """The row's new state after this attempt."""
    attempts = entry.attempts + 1
    if outcome.delivered:
        return Settlement(entry.id, DeliveryStatus.DELIVERED, attempts, now, None, now)
    if not outcome.retryable or attempts >= policy.max_attempts:
        return Settlement(entry.id, DeliveryStatus.DEAD, attempts, now, outcome.error)
    wait = timedelta(seconds=policy.delay(attempts, rand))
    return Settlement(entry.id, DeliveryStatus.PENDING, attempts, now + wait, outcome.error)


# ------------------------------------------------------------------------------ the answer


def classify(status_code: int, body: bytes, event_id: str) -> Outcome:
    """Read a Notify answer (pure: the unit tests feed it bytes)."""
    try:
        root = etree.fromstring(body, _PARSER) if body else None
    except etree.XMLSyntaxError:
        root = None
    child = _body_child(root)
    if child is None:
        return Outcome(False, error=f"HTTP {status_code}: the answer is not a SOAP envelope")
    if child.tag == f"{{{NOTIFICATION_NS}}}NotifyResponse":
        receipt = child.findtext(f"{{{NOTIFICATION_NS}}}receipt")
        answered = child.findtext(f"{{{NOTIFICATION_NS}}}eventId")
        if receipt in ("received", "duplicate") and answered == event_id:
            return DELIVERED
        return Outcome(False, error=f"NotifyResponse for {answered!r} with receipt {receipt!r}")
    if etree.QName(child).localname == "Fault":
        return _fault(child)
    return Outcome(False, error=f"HTTP {status_code}: unexpected answer {child.tag}")


def read_answer(status_code: int, body: bytes) -> etree._Element | Outcome:
    """An answer's Body child, or the outcome when it is a fault or no SOAP at all (for the
    classifiers of other message kinds)."""
    try:
        root = etree.fromstring(body, _PARSER) if body else None
    except etree.XMLSyntaxError:
        root = None
    child = _body_child(root)
    if child is None:
        return Outcome(False, error=f"HTTP {status_code}: the answer is not a SOAP envelope")
    if etree.QName(child).localname == "Fault":
        return _fault(child)
    return child


def _body_child(root: etree._Element | None) -> etree._Element | None:
    if root is None:
        return None
    body = root.find(f"{{{SOAP11_ENV}}}Body")
    if body is None:
        body = root.find(f"{{{SOAP12_ENV}}}Body")
    return body[0] if body is not None and len(body) else None


def _fault(fault: etree._Element) -> Outcome:
    """A gembusFault detail code wins over the SOAP fault code (it is the precise one)."""
    code = fault.findtext(f".//{{{COMMON_NS}}}code") or _soap_fault_code(fault)
    reason = (
        fault.findtext("faultstring")
        or fault.findtext(f".//{{{SOAP12_ENV}}}Text")
        or fault.findtext(f".//{{{COMMON_NS}}}message")
        or ""
    )
    client = code.startswith(("Client", "Sender"))
    return Outcome(
        False,
        retryable=not client,
        error=f"{code}: {reason}"[:_MAX_ERROR],
        suspend_subscription=code == "Client.UnknownSubscription",
    )


def _soap_fault_code(fault: etree._Element) -> str:
    text = fault.findtext("faultcode") or fault.findtext(f".//{{{SOAP12_ENV}}}Value") or ""
    return text.rsplit(":", 1)[-1].strip() or "Server"


# ------------------------------------------------------------------------------ kinds


@dataclass(frozen=True)
class MessageKind:
    """How one kind of outbox row travels: its SOAPAction and how its answer is read."""

    soap_action: str  # the bare action URI
    classify: Callable[[OutboxEntry, int, bytes], Outcome]

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{self.soap_action}"'}


NOTIFY = MessageKind(
    f"{NOTIFICATION_NS}/Notify",
    lambda entry, status, body: classify(status, body, entry.idempotency_key),
)
#: The kinds a relay delivers unless told otherwise (`gembus worker` adds bus/sdr_push.py's).
DEFAULT_KINDS: Mapping[str, MessageKind] = {"notify": NOTIFY}


# ------------------------------------------------------------------------------ transport


class Courier:
    """POSTs Notify envelopes over one keep-alive connection pool (one courier per relay thread).

    urllib3 directly -- the pool requests is built on -- because requests' per-call session
    machinery (hooks, cookies, environment merging) cost as much CPU as the rest of a delivery
    (bench/outbox_bench.py: 1,330 vs 1,770 POSTs/s per thread on the same receiver). No
    redirects and no transport-level retries: the relay's backoff owns every retry.
    """

    def __init__(
        self,
        timeout_s: float,
        pool: urllib3.PoolManager | None = None,
        kinds: Mapping[str, MessageKind] | None = None,
    ) -> None:
        self.timeout = urllib3.Timeout(total=timeout_s)
        self.pool = pool or http_pool()
        self.kinds = kinds or DEFAULT_KINDS

    def deliver(self, entry: OutboxEntry) -> Outcome:
        kind = self.kinds.get(entry.kind)
        if kind is None:  # a dead letter until a worker that knows the kind re-drives it
            return Outcome(False, retryable=False, error=f"no courier for kind {entry.kind!r}")
        try:
            response = self.pool.request(
                "POST",
                entry.endpoint_url,
                body=envelope(entry.payload),
                headers=kind.headers,
                timeout=self.timeout,
                redirect=False,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            return Outcome(False, error=f"transport: {type(exc).__name__}: {exc}"[:_MAX_ERROR])
        return kind.classify(entry, response.status, response.data)

    def close(self) -> None:
        self.pool.clear()


def http_pool() -> urllib3.PoolManager:
    """Keep-alive pools per endpoint host; certificates verified against the system store."""
    return urllib3.PoolManager(num_pools=64, maxsize=2, block=False)


# ------------------------------------------------------------------------------ the loop


@dataclass
class RelayStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, settlements: list[Settlement]) -> None:
        with self.lock:
            for s in settlements:
                if s.status is DeliveryStatus.DELIVERED:
                    self.delivered += 1
                elif s.status is DeliveryStatus.DEAD:
                    self.dead += 1
                else:
                    self.retried += 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Relay:
    """One claim -> deliver -> settle loop (one per thread, each with its own courier)."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        courier: Courier,
        policy: RetryPolicy,
        *,
        batch: int = 50,
        batch_budget_s: float = 30.0,
        stats: RelayStats | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.uow_factory = uow_factory
        self.courier = courier
        self.policy = policy
        self.batch = batch
        self.batch_budget_s = batch_budget_s
        self.stats = stats or RelayStats()
        self.clock = clock
        self.log = get_logger("gembus.delivery")

    def run_once(self) -> int:
        """Claim, deliver and settle one batch in one transaction; returns rows claimed.

        Rows left unsent when the batch runs over its time budget (a slow endpoint) are not
        settled: the commit releases them untouched, pending as before.
        """
        with self.uow_factory() as uow:
            entries = uow.outbox.claim(self.batch, self.clock())
            if not entries:
                return 0
            started = time.monotonic()
            results: list[tuple[OutboxEntry, Outcome]] = []
            for entry in entries:
                results.append((entry, self.courier.deliver(entry)))
                if time.monotonic() - started > self.batch_budget_s:
                    break
            now = self.clock()
            settlements = [settle(e, o, self.policy, now) for e, o in results]
            uow.outbox.settle(settlements)
            for entry, outcome in results:
                if outcome.suspend_subscription:
                    uow.outbox.set_subscription_status(
                        entry.subscription_id, SubscriptionStatus.SUSPENDED
                    )
            uow.outbox.enqueue(self._follow_ups(results, now))
            uow.commit()
        self.stats.add(settlements)
        self._log(results, settlements)
        return len(entries)

    def _follow_ups(
        self, results: list[tuple[OutboxEntry, Outcome]], now: datetime
    ) -> list[Delivery]:
        """The rest of partly delivered batches, due after the backoff of a failed attempt."""
        return [
            replace(
                o.follow_up,
                available_at=now + timedelta(seconds=self.policy.delay(e.attempts + 1)),
            )
            for e, o in results
            if o.follow_up is not None
        ]

    def run(self, stop: threading.Event, *, idle_s: float = 1.0, once: bool = False) -> None:
        """Until ``stop`` is set (``once``: until nothing is due); waits ``idle_s`` when idle."""
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # the database is down: log, wait, try again
                self.log.exception("outbox.relay_failed")
                claimed = 0
                if once:
                    raise
            if claimed == 0:
                if once:
                    return
                stop.wait(idle_s)

    def _log(
        self, results: list[tuple[OutboxEntry, Outcome]], settlements: list[Settlement]
    ) -> None:
        for (entry, outcome), s in zip(results, settlements, strict=True):
            if outcome.delivered and outcome.error:  # delivered, but part of it was refused
                self.log.warning(
                    "outbox.partly_refused",
                    outbox_id=entry.id,
                    event_id=entry.idempotency_key,
                    error=outcome.error,
                )
            elif not outcome.delivered:
                self.log.warning(
                    "outbox.not_delivered",
                    outbox_id=entry.id,
                    event_id=entry.idempotency_key,
                    attempts=s.attempts,
                    status=s.status.value,
                    retry_at=s.available_at.isoformat(),
                    error=outcome.error,
                )


def run_relays(
    uow_factory: Callable[[], UnitOfWork],
    policy: RetryPolicy,
    *,
    concurrency: int,
    batch: int,
    timeout_s: float,
    idle_s: float,
    once: bool,
    stop: threading.Event,
    kinds: Mapping[str, MessageKind] | None = None,
) -> RelayStats:
    """Run ``concurrency`` relay threads until ``stop`` (or, with ``once``, until drained)."""
    stats = RelayStats()

    def work() -> None:
        courier = Courier(timeout_s, kinds=kinds)
        try:
            Relay(uow_factory, courier, policy, batch=batch, stats=stats).run(
                stop, idle_s=idle_s, once=once
            )
        finally:
            courier.close()

    threads = [
        threading.Thread(target=work, name=f"relay-{n}", daemon=True) for n in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short joins keep the main thread responsive to signals
    return stats


__all__ = [
    "NOTIFY",
    "Courier",
    "MessageKind",
    "Outcome",
    "Relay",
    "RetryPolicy",
    "classify",
    "settle",
]
