"""Service detail records (SDR/CDR): the model and the OCHP-style state machine (DOMAIN.md 8.3).

Only the clearing house changes a status; partners cause transitions through operations:

    SubmitSdrs (operator)                      ConfirmSdrs (EVSP)
    (none) --plausible, status new--> accepted --approved--> approved   (terminal)
                                         |
                                         +----declined--> declined --SubmitSdrs revised--> revised
                                                             |        (EVSP decides again)
                                                             +--SubmitSdrs rejected--> rejected

The value types built once per record (a batch builds thousands) are slotted dataclasses
but not frozen: a frozen ``__init__`` costs five times as much. Treat them as values all the
same; nothing here changes one after it is built.

A record is idempotent by its ``sdrId`` (unique in the whole clearing house because it starts
with the operator's ID key): the same content again is a ``duplicate`` and changes nothing;
different content is accepted only as the revision (or rejection) of a declined record. The
functions here decide transitions on plain values so that every rule is unit-testable; the use
cases in :mod:`domain.clearing.sdr_forwarding` apply them to stored records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


class SdrStatus(enum.StrEnum):
    """rm:SdrStatusType (OCHP CdrStatusType)."""

    NEW = "new"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DECLINED = "declined"
    APPROVED = "approved"
    REVISED = "revised"


#: Waiting for the home EVSP's ConfirmSdrs: listed by GetPendingSdrs, forwarded by push/batch.
PENDING = frozenset({SdrStatus.ACCEPTED, SdrStatus.REVISED})


class SubmitResult(enum.StrEnum):
    """sdr:SubmitResultCodeType."""

    ACCEPTED = "accepted"
    IMPLAUSIBLE = "implausible"
    DUPLICATE = "duplicate"
    REVISED = "revised"
    REJECTED = "rejected"
    CONFLICT = "conflict"


#: Results whose record is now held as sent (the summary's "accepted"); the rest are refused.
HELD = frozenset(
    {SubmitResult.ACCEPTED, SubmitResult.DUPLICATE, SubmitResult.REVISED, SubmitResult.REJECTED}
)


class Decision(enum.StrEnum):
    """sdr:ConfirmDecisionType."""

    APPROVED = "approved"
    DECLINED = "declined"


class ConfirmResult(enum.StrEnum):
    """sdr:ConfirmResultCodeType."""

    APPROVED = "approved"
    DECLINED = "declined"
    DUPLICATE = "duplicate"
    NOT_FOUND = "notFound"
    INVALID_STATE = "invalidState"
    STALE_VERSION = "staleVersion"
    MISSING_REASON = "missingReason"


class ServiceType(enum.StrEnum):
    """rm:RoamingServiceTypeType; an SDR without one is a charge detail record."""

    CHARGING = "charging"
    RESERVATION = "reservation"
    PARKING = "parking"
    VALUE_ADDED_SERVICE = "valueAddedService"


class BillingItem(enum.StrEnum):
    """rm:BillingItemType (OCHP), with what ``billingValue`` measures in the comment."""

    PARKING_TIME = "parkingtime"  # hours parked
    USAGE_TIME = "usagetime"  # hours of EVSE use
    ENERGY = "energy"  # kWh
    POWER = "power"  # maximum kW
    SERVICE_FEE = "serviceFee"  # multiplier 1.0
    RESERVATION = "reservation"  # one-off fee, multiplier 1.0
    RESERVATION_TIME = "reservationtime"  # hours reserved


@dataclass(slots=True)
class ChargingPeriod:
    """One item on the bill (rm:SdrPeriodType); ``*_text`` keep the wire form for messages."""

    start: datetime
    end: datetime
    billing_item: str
    billing_value: Decimal
    item_price: Decimal
    period_cost: Decimal | None
    start_text: str = ""
    end_text: str = ""


@dataclass(slots=True)
class SdrSubmission:
    """One record of a SubmitSdrs batch, decoded once by the endpoint.

    ``document`` is the record's ``rm:sdr`` element as received with its status left empty
    (the current status is written in whenever it is read back); ``content_hash`` is the
    SHA-256 of its content *including* the submitted status, which is what tells a retry
    (``duplicate``) from a changed record. ``blank_fields`` are elements sent empty.
    """

    sdr_id: str
    service_type: str | None
    evse_id: str
    contract_id: str
    status: str
    start: datetime
    end: datetime
    duration: str | None
    periods: tuple[ChargingPeriod, ...]
    total_cost: Decimal | None
    currency: str
    document: str
    content_hash: str
    blank_fields: tuple[str, ...] = ()
    start_text: str = ""
    end_text: str = ""

    @property
    def net_total(self) -> Decimal:
        """The record's net amount: totalCost, else the sum of the period costs."""
        if self.total_cost is not None:
            return self.total_cost
        return sum((period_cost(p) for p in self.periods), Decimal(0))

    @property
    def energy_kwh(self) -> Decimal:
        return sum(
            (p.billing_value for p in self.periods if p.billing_item == BillingItem.ENERGY),
            Decimal(0),
        )


def period_cost(period: ChargingPeriod) -> Decimal:
    """periodCost as sent, else billingValue x itemPrice (the cost rule, DOMAIN.md 8.2)."""
    if period.period_cost is not None:
        return period.period_cost
    return period.billing_value * period.item_price


@dataclass(frozen=True, slots=True)
class Decline:
    """The home EVSP's last decline of a record (kept after a revision or rejection)."""

    code: str
    reason: str | None
    at: datetime


@dataclass(slots=True)
class StoredSdr:
    """What a decision needs to know about a record already held."""

    sdr_id: str
    status: SdrStatus
    version: int
    content_hash: str
    operator_partner_id: str
    provider_partner_id: str
    provider_key: str
    decline: Decline | None = None


@dataclass(slots=True)
class Route:
    """Who a record is between: the submitting operator (creditor) and the home EVSP (debtor)."""

    operator_partner_id: str
    operator_key: str
    operator_wire: str
    provider_partner_id: str
    provider_key: str
    provider_wire: str
    contract_key: str


@dataclass(slots=True)
class SdrVersion:
    """A submission the clearing house stores: a first version or an accepted revision."""

    submission: SdrSubmission
    route: Route
    status: SdrStatus
    version: int
    received_at: datetime
    decline: Decline | None = None  # the last decline, kept when a declined record is revised

    def entry(self) -> SdrEntry:
        """The version as the EVSP receives it."""
        return SdrEntry(
            self.submission.sdr_id,
            self.submission.document,
            self.status,
            self.version,
            self.route.operator_wire,
            self.route.provider_wire,
            self.received_at,
            self.received_at,
            self.decline,
            self.route.provider_key,
            self.route.provider_partner_id,
        )


@dataclass(slots=True)
class SdrEntry:
    """An SDR as read back (rm:SdrEntryType): the latest version with routing and lifecycle."""

    sdr_id: str
    document: str
    status: SdrStatus
    version: int
    operator_wire: str
    provider_wire: str
    received_at: datetime
    status_changed_at: datetime
    decline: Decline | None = None
    provider_key: str = ""
    provider_partner_id: str = ""


@dataclass(frozen=True, slots=True)
class CheckQuery:
    """CheckSdrs: an operator's records (``operator_partner_id`` None: the marketplace
    operator's view of all), filtered, ordered by statusChangedAt then sdrId."""

    operator_partner_id: str | None
    operator_key: str | None
    statuses: tuple[SdrStatus, ...]
    period: tuple[datetime, datetime] | None
    sdr_ids: tuple[str, ...]
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class PendingQuery:
    """GetPendingSdrs: records waiting for one EVSP's decision, ordered by receivedAt, sdrId."""

    provider_partner_id: str
    provider_key: str | None
    operator_key: str | None
    received_before: datetime | None
    offset: int
    limit: int


class DeliveryMode(enum.StrEnum):
    """How an EVSP wants its SDRs (GeM: directly or in daily/weekly/monthly batches; OCHP: pull).

    Every pending record can be pulled (GetPendingSdrs) whatever the mode; the mode says what
    gembus pushes to the EVSP's sdr_receiver endpoint on top.
    """

    PUSH = "push"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    PULL = "pull"

    @property
    def schedule(self) -> str:
        """sdr-receiver:DeliveryScheduleType of the batches this mode produces."""
        return "immediate" if self is DeliveryMode.PUSH else self.value

    @property
    def batched(self) -> bool:
        return self in (DeliveryMode.DAILY, DeliveryMode.WEEKLY, DeliveryMode.MONTHLY)


#: Nothing is pushed until the EVSP chooses: the records wait for GetPendingSdrs (OCHP GetCDRs).
DEFAULT_DELIVERY = DeliveryMode.PULL


@dataclass(frozen=True, slots=True)
class DeliverySetting:
    partner_id: str
    mode: DeliveryMode
    updated_at: datetime
    updated_by: str


# ---------------------------------------------------------------------------- transitions


@dataclass(slots=True)
class Outcome:
    """The decision on one submitted record: its result and, if it changes, the new state."""

    result: SubmitResult
    status: SdrStatus | None = None  # the record's status afterwards; None: nothing stored
    version: int | None = None
    reason: str | None = None

    @property
    def stores(self) -> bool:
        """Whether the submission's content becomes the record's (current) version."""
        return self.result in (SubmitResult.ACCEPTED, SubmitResult.REVISED)


def on_submission(
    stored: StoredSdr | None, submitted_status: str, content_hash: str, plausible: bool
) -> Outcome:
    """Decide one submission against the stored record (the WSDL's transition table)."""
    if stored is None:
        return _first_submission(submitted_status, plausible)
    if stored.content_hash == content_hash:
        return Outcome(SubmitResult.DUPLICATE, stored.status, stored.version)
    if stored.status is SdrStatus.DECLINED and submitted_status == SdrStatus.REJECTED:
        # giving up a claim needs no plausible data: the record leaves clearing for good
        return Outcome(SubmitResult.REJECTED, SdrStatus.REJECTED, stored.version)
    if stored.status is SdrStatus.DECLINED and submitted_status == SdrStatus.REVISED:
        if not plausible:
            return Outcome(SubmitResult.IMPLAUSIBLE, stored.status, stored.version)
        return Outcome(SubmitResult.REVISED, SdrStatus.REVISED, stored.version + 1)
    return Outcome(SubmitResult.CONFLICT, stored.status, stored.version, _conflict_reason(stored))


def _first_submission(submitted_status: str, plausible: bool) -> Outcome:
    if not plausible:
        return Outcome(SubmitResult.IMPLAUSIBLE)
    if submitted_status != SdrStatus.NEW:
        return Outcome(
            SubmitResult.CONFLICT,
            reason=f"no record with this sdrId to mark {submitted_status}; "
            "a first submission has status new",
        )
    return Outcome(SubmitResult.ACCEPTED, SdrStatus.ACCEPTED, 1)


def _conflict_reason(stored: StoredSdr) -> str:
    if stored.status is SdrStatus.DECLINED:
        return "record is declined: re-submit it with status revised or rejected"
    return (
        f"record is {stored.status.value} (version {stored.version}); only a declined "
        "record can be revised or rejected"
    )


def on_confirmation(
    stored: StoredSdr, decision: Decision, version: int | None, has_reason: bool
) -> ConfirmResult:
    """Decide one ConfirmSdrs entry for a record addressed to the caller."""
    if version is not None and version != stored.version:
        return ConfirmResult.STALE_VERSION
    target = SdrStatus.APPROVED if decision is Decision.APPROVED else SdrStatus.DECLINED
    if stored.status is target:
        return ConfirmResult.DUPLICATE
    if stored.status not in PENDING:
        return ConfirmResult.INVALID_STATE
    if decision is Decision.DECLINED and not has_reason:
        return ConfirmResult.MISSING_REASON
    return ConfirmResult(decision.value)
