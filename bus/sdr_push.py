"""Pushing SDRs to an EVSP's receiver (wsdl/sdr_receiver.wsdl) through the outbox.

An outbox row of kind ``sdr_receiver`` holds one rendered ReceiveSdrs batch; its batchId is
the row's idempotency key (``<batchId>/<part>`` for a part of a large period). The answer
acknowledges every record (sdr-receiver:AckType):

* ``received`` or ``duplicate`` -- delivered (the receiver keys on sdrId and version, so a
  record sent twice has one effect);
* ``refused`` with TEMPORARY_FAILURE, or missing from the answer -- sent again: the relay
  queues a *follow-up* batch of just those records under a new batchId (``<batchId>.r<n>``),
  due after the backoff, because the receiver must answer a repeated batchId exactly as the
  first time;
* ``refused`` for any other reason -- not pushed again (the record stays in GetPendingSdrs)
  and reported to the marketplace operator in the worker's log (``outbox.partly_refused``).

A fault answers for the whole batch: Client faults make a dead letter, anything else is
retried with the same batchId. After ``MAX_RESENDS`` follow-ups the row itself becomes a dead
letter, which ``gembus outbox retry`` re-drives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from lxml import etree

from bus.delivery import NOTIFY, MessageKind, Outcome, read_answer
from domain.pubsub import Delivery, OutboxEntry, Topic

SDR_RECEIVER_NS = "urn:gembus:sdr-receiver:v1"
KIND = "sdr_receiver"
#: How many follow-ups a batch may have before its rest becomes a dead letter.
MAX_RESENDS = 8
_NS = f"{{{SDR_RECEIVER_NS}}}"
_RM = "{urn:gembus:roaming:v1}"
_RESEND = re.compile(r"\.r(?P<n>[0-9]+)$")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_MAX_ERROR = 500

Key = tuple[str, str]  # (sdrId, version)


def batch_id_of(entry: OutboxEntry) -> str:
    """The wire batchId of a row (its key without the part suffix)."""
    return entry.idempotency_key.split("/", 1)[0]


def classify(entry: OutboxEntry, status_code: int, body: bytes) -> Outcome:
    """Read a ReceiveSdrs answer (pure apart from the follow-up's timestamp)."""
    answer = read_answer(status_code, body)
    if isinstance(answer, Outcome):
        return answer
    if answer.tag != f"{_NS}ReceiveSdrsResponse":
        return Outcome(False, error=f"HTTP {status_code}: unexpected answer {answer.tag}")
    batch_id = batch_id_of(entry)
    answered = answer.findtext(f"{_NS}batchId")
    if answered != batch_id:
        return Outcome(False, error=f"ReceiveSdrsResponse for batch {answered!r}, not {batch_id}")
    acks = _acks(answer)
    if _all_taken(acks, entry.payload):
        return Outcome(True, retryable=False)
    return _partial(entry, acks)


def _acks(answer: etree._Element) -> dict[Key, tuple[str, str | None, str | None]]:
    """(sdrId, version) -> (result, reasonCode, reason) of every ack."""
    acks = {}
    for ack in answer.iterfind(f"{_NS}ack"):
        key = (ack.findtext(f"{_NS}sdrId") or "", ack.findtext(f"{_NS}version") or "")
        acks[key] = (
            ack.findtext(f"{_NS}result") or "",
            ack.findtext(f"{_NS}reasonCode"),
            ack.findtext(f"{_NS}reason"),
        )
    return acks


def _all_taken(acks: Mapping[Key, tuple[str, str | None, str | None]], payload: str) -> bool:
    """The common case, decided without parsing the request: every record acknowledged
    received or duplicate (we render each entry as ``<sr:sdrEntry>``)."""
    taken = all(result in ("received", "duplicate") for result, _, _ in acks.values())
    return taken and len(acks) == payload.count("<sr:sdrEntry>")


def _partial(entry: OutboxEntry, acks: Mapping[Key, tuple[str, str | None, str | None]]) -> Outcome:
    request = etree.fromstring(entry.payload.encode(), _PARSER)
    resend, refused = [], []
    for sdr_entry in request.iterfind(f"{_NS}sdrs/{_NS}sdrEntry"):
        key = (
            sdr_entry.findtext(f"{_RM}sdr/{_RM}sdrId") or "",
            sdr_entry.findtext(f"{_RM}version") or "",
        )
        result, code, reason = acks.get(key, ("missing", None, None))
        if result == "missing" or (result == "refused" and code == "TEMPORARY_FAILURE"):
            resend.append(sdr_entry)
        elif result == "refused":
            refused.append(f"{key[0]} v{key[1]} refused {code}: {reason or ''}".strip())
    error = ("; ".join(refused))[:_MAX_ERROR] or None
    if not resend:
        return Outcome(True, retryable=False, error=error)
    generation = _generation(batch_id_of(entry)) + 1
    if generation > MAX_RESENDS:
        return Outcome(
            False,
            retryable=False,
            error=f"{len(resend)} records still not taken after {MAX_RESENDS} resends",
        )
    follow_up = _follow_up(entry, request, resend, generation)
    note = f"{len(resend)} records sent again as {follow_up.idempotency_key}"
    return Outcome(
        True, retryable=False, error="; ".join(filter(None, [note, error])), follow_up=follow_up
    )


def _generation(batch_id: str) -> int:
    match = _RESEND.search(batch_id)
    return int(match["n"]) if match else 0


def _follow_up(
    entry: OutboxEntry, request: etree._Element, resend: list[etree._Element], generation: int
) -> Delivery:
    """The same batch restricted to ``resend``, under the next resend batchId (a part's
    resends are told apart by its index: ``<batchId>.p<index>.r<n>``)."""
    stem = _RESEND.sub("", batch_id_of(entry))
    _, _, index = entry.idempotency_key.partition("/")
    batch_id = f"{stem}.p{index}.r{generation}" if index else f"{stem}.r{generation}"
    request.find(f"{_NS}batchId").text = batch_id  # type: ignore[union-attr]
    part = request.find(f"{_NS}part")
    if part is not None:  # a resend is a message of its own
        request.remove(part)
    sdrs = request.find(f"{_NS}sdrs")
    assert sdrs is not None
    for sdr_entry in list(sdrs):
        if sdr_entry not in resend:
            sdrs.remove(sdr_entry)
    payload = etree.tostring(request, encoding="unicode")
    return Delivery(
        batch_id,
        batch_id,
        Topic.SDR_AVAILABLE,
        entry.subscription_id,
        entry.endpoint_url,
        payload,
        datetime.now(UTC),
        kind=KIND,
    )


RECEIVE_SDRS = MessageKind(f"{SDR_RECEIVER_NS}/ReceiveSdrs", classify)


def outbox_kinds() -> dict[str, MessageKind]:
    """Every kind of outbox row gembus sends: what `gembus worker` delivers."""
    return {"notify": NOTIFY, KIND: RECEIVE_SDRS}
