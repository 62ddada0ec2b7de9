"""SDRs on the wire: the stored ``rm:sdr`` documents and the elements built around them.

A record is kept as the ``rm:sdr`` element the operator sent (identifiers echoed exactly as
received, DOMAIN.md 7.3) with its ``status`` element left empty, because the status is the
clearing house's and changes after the record is stored; :func:`with_status` writes the
current one in whenever the record is read back. Entries (rm:SdrEntryType) and the
ReceiveSdrs request pushed to an EVSP are rendered here as text, once: like a Notify body
(domain/pubsub.py), a pushed batch is stored rendered in the outbox so a retry sends the very
same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from domain.clearing.sdr import SdrEntry

ROAMING_NS = "urn:gembus:roaming:v1"
COMMON_NS = "urn:gembus:common:v1"
SDR_RECEIVER_NS = "urn:gembus:sdr-receiver:v1"

#: The empty status element of a stored document, whatever prefix the operator used and
#: whatever namespace declarations its stack put on it (zeep declares them on each element).
_BLANK_STATUS = re.compile(r"<((?:[A-Za-z_][\w.\-]*:)?)status(\s[^<>]*)?/>")


def with_status(document: str, status: str) -> str:
    """The stored document with ``status`` written into its (empty) status element."""
    return _BLANK_STATUS.sub(rf"<\g<1>status\g<2>>{status}</\g<1>status>", document, count=1)


def timestamp(value: datetime) -> str:
    """xs:dateTime in UTC with a Z, seconds precision (what every gembus answer uses)."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entry_xml(entry: SdrEntry, wrapper: str) -> str:
    """One rm:SdrEntryType element named ``wrapper`` (a prefixed QName, e.g. ``s:sdrEntry``);
    the prefixes ``rm`` (roaming) and the wrapper's must be declared by an ancestor."""
    parts = [
        f"<{wrapper}>",
        with_status(entry.document, entry.status.value),
        f"<rm:version>{entry.version}</rm:version>",
        f"<rm:operatorId>{escape(entry.operator_wire)}</rm:operatorId>",
        f"<rm:providerId>{escape(entry.provider_wire)}</rm:providerId>",
        f"<rm:receivedAt>{timestamp(entry.received_at)}</rm:receivedAt>",
        f"<rm:statusChangedAt>{timestamp(entry.status_changed_at)}</rm:statusChangedAt>",
    ]
    if entry.decline is not None:
        reason = entry.decline.reason
        parts.append(
            f"<rm:decline><rm:reasonCode>{entry.decline.code}</rm:reasonCode>"
            + (f"<rm:reason>{escape(reason[:2000])}</rm:reason>" if reason else "")
            + f"<rm:declinedAt>{timestamp(entry.decline.at)}</rm:declinedAt></rm:decline>"
        )
    parts.append(f"</{wrapper}>")
    return "".join(parts)


@dataclass(frozen=True)
class PushBatch:
    """One ReceiveSdrs message for one EVSP provider ID (one part of a period's batch)."""

    batch_id: str
    provider_wire: str
    schedule: str  # immediate | daily | weekly | monthly
    entries: tuple[SdrEntry, ...]
    period: tuple[datetime, datetime] | None = None
    part: tuple[int, int] | None = None  # (index, count) when the period needs several


def receive_sdrs(batch: PushBatch) -> str:
    """The ReceiveSdrs element of xsd/sdr_receiver.xsd (field order as in the sequence)."""
    head = (
        f'<sr:ReceiveSdrs xmlns:sr="{SDR_RECEIVER_NS}" xmlns:rm="{ROAMING_NS}" '
        f'xmlns:cmn="{COMMON_NS}">'
        f"<sr:batchId>{batch.batch_id}</sr:batchId>"
        f"<sr:providerId>{escape(batch.provider_wire)}</sr:providerId>"
        f"<sr:schedule>{batch.schedule}</sr:schedule>"
    )
    if batch.period is not None:
        start, end = batch.period
        head += (
            f"<sr:batchPeriod><cmn:start>{timestamp(start)}</cmn:start>"
            f"<cmn:end>{timestamp(end)}</cmn:end></sr:batchPeriod>"
        )
    if batch.part is not None:
        index, count = batch.part
        head += f"<sr:part><sr:index>{index}</sr:index><sr:count>{count}</sr:count></sr:part>"
    body = "".join(entry_xml(e, "sr:sdrEntry") for e in batch.entries)
    return f"{head}<sr:sdrs>{body}</sr:sdrs></sr:ReceiveSdrs>"
