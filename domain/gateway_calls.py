"""The gateway's transaction log as the domain sees it: what a call record holds.

persistence/transaction_log.py implements :class:`CallLog`; the gateway (bus/gateway.py)
starts a call just before forwarding it and finishes it when the reply is known; a call
refused before that point is recorded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class GatewayCall:
    """A whole call: what ``record`` writes for calls refused before they were started."""

    at: datetime
    message_id: str
    requester_id: str | None
    provider_id: str | None
    service_id: str | None
    family: str
    operation: str | None
    contract_id: str | None
    outcome: str  # "ok" or "fault"
    fault_code: str | None
    latency_ms: float
    bytes_in: int
    bytes_out: int
    over_quota: bool = False


@dataclass(frozen=True)
class CallStart:
    """What the gateway knows about a call when it is about to forward it."""

    at: datetime
    message_id: str
    requester_id: str
    provider_id: str
    service_id: str
    family: str
    operation: str | None
    contract_id: str | None
    bytes_in: int
    over_quota: bool = False


@dataclass(frozen=True)
class Ticket:
    """The rows ``start`` wrote; ``finish`` completes them."""

    call_id: int
    usage_id: int | None


@dataclass(frozen=True)
class Started:
    """``fresh``: the nonce was new (only then is there a ticket); ``counter``: the partners
    change counter, for the identity cache."""

    fresh: bool
    counter: int
    ticket: Ticket | None


@dataclass(frozen=True)
class CallFilter:
    """Which logged calls to list; every field given narrows the list."""

    message_id: str | None = None
    requester_id: str | None = None
    provider_id: str | None = None
    service_id: str | None = None
    outcome: str | None = None  # ok, fault, pending
    since: datetime | None = None


@dataclass(frozen=True)
class LoggedCall:
    """A row of the transaction log; latency and reply size are None while it is pending."""

    id: int
    at: datetime
    message_id: str
    requester_id: str | None
    provider_id: str | None
    service_id: str | None
    family: str
    operation: str | None
    contract_id: str | None
    outcome: str
    fault_code: str | None
    latency_ms: float | None
    bytes_in: int
    bytes_out: int | None


class CallLog(Protocol):
    def start(self, call: CallStart, nonce: tuple[str, str, datetime] | None) -> Started:
        """Record the caller's nonce (username, nonce, expires at; None when the token has
        none) and, only if it is new, the call as pending; one round trip."""
        ...

    def finish(
        self, ticket: Ticket, outcome: str, fault_code: str | None, latency_ms: float, size: int
    ) -> None: ...

    def record(self, call: GatewayCall) -> None: ...


class CallLogReader(Protocol):
    def calls(self, where: CallFilter, window: tuple[int, int]) -> tuple[list[LoggedCall], int]:
        """The calls matching ``where``, newest first, (offset, limit) of them, and the total."""
        ...
