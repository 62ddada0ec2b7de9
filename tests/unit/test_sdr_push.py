"""How a ReceiveSdrs answer settles its outbox row (bus/sdr_push.py), fed as bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from bus.contracts import all_contracts
from bus.sdr_push import KIND, classify, outbox_kinds
from domain.clearing.sdr import SdrEntry, SdrStatus
from domain.clearing.sdr_wire import PushBatch, receive_sdrs
from domain.pubsub import DeliveryStatus, OutboxEntry

NS = "urn:gembus:sdr-receiver:v1"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DOCUMENT = (
    '<rm:sdr xmlns:rm="urn:gembus:roaming:v1" xmlns:cmn="urn:gembus:common:v1">'
    "<rm:sdrId>{id}</rm:sdrId><rm:evseId>DE*ICE*E1*1</rm:evseId><rm:token>"
    "<cmn:instance>AB</cmn:instance><cmn:tokenType>rfid</cmn:tokenType></rm:token>"
    "<rm:contractId>NL-TNM-000122045-U</rm:contractId><rm:status/>"
    "<rm:startDateTime>2026-11-25T10:00:00+01:00</rm:startDateTime>"
    "<rm:endDateTime>2026-11-25T10:30:00+01:00</rm:endDateTime>"
    "<rm:chargePointAddress><cmn:country>DE</cmn:country><cmn:city>Berlin</cmn:city>"
    "</rm:chargePointAddress><rm:chargePointType>AC</rm:chargePointType><rm:connectorType>"
    "<rm:connectorStandard>IEC_62196_T2</rm:connectorStandard>"
    "<rm:connectorFormat>Socket</rm:connectorFormat></rm:connectorType><rm:chargingPeriods>"
    "<rm:chargingPeriod><rm:startDateTime>2026-11-25T10:00:00+01:00</rm:startDateTime>"
    "<rm:endDateTime>2026-11-25T10:30:00+01:00</rm:endDateTime>"
    "<rm:billingItem>energy</rm:billingItem><rm:billingValue>1</rm:billingValue>"
    "<rm:itemPrice>0.30</rm:itemPrice></rm:chargingPeriod></rm:chargingPeriods>"
    "<rm:currency>EUR</rm:currency></rm:sdr>"
)


def entry_for(ids: list[str], batch_id: str = "sdrb-1") -> OutboxEntry:
    entries = tuple(
        SdrEntry(i, DOCUMENT.format(id=i), SdrStatus.ACCEPTED, 1, "DE*ICE", "NL-TNM", AT, AT)
        for i in ids
    )
    payload = receive_sdrs(PushBatch(batch_id, "NL-TNM", "immediate", entries))
    return OutboxEntry(
        7, batch_id, "SdrAvailable", "tnm-mobility", "http://evsp.example/sdr", payload,
        DeliveryStatus.PENDING, 0, AT, None, AT, None, batch_id, kind=KIND,
    )  # fmt: skip


def answer(batch_id: str, acks: list[tuple[str, str, str | None]]) -> bytes:
    body = "".join(
        f"<r:ack><r:sdrId>{i}</r:sdrId><r:version>1</r:version><r:result>{result}</r:result>"
        + (f"<r:reasonCode>{code}</r:reasonCode>" if code else "")
        + "</r:ack>"
        for i, result, code in acks
    )
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<r:ReceiveSdrsResponse xmlns:r="{NS}"><r:batchId>{batch_id}</r:batchId>{body}'
        "</r:ReceiveSdrsResponse></s:Body></s:Envelope>"
    ).encode()


def test_the_rendered_batch_is_valid_receive_sdrs() -> None:
    schema = all_contracts()["sdr_receiver"].schema
    payload = etree.fromstring(entry_for(["DEICE1", "DEICE2"]).payload.encode())
    assert schema.validate(payload), schema.error_log
    assert payload.findtext(".//{urn:gembus:roaming:v1}status") == "accepted"


def test_received_and_duplicate_acks_deliver_the_batch() -> None:
    entry = entry_for(["DEICE1", "DEICE2"])
    outcome = classify(
        entry, 200, answer("sdrb-1", [("DEICE1", "received", None), ("DEICE2", "duplicate", None)])
    )
    assert outcome.delivered and outcome.follow_up is None and outcome.error is None


def test_an_answer_for_another_batch_is_not_a_delivery() -> None:
    outcome = classify(entry_for(["DEICE1"]), 200, answer("sdrb-9", [("DEICE1", "received", None)]))
    assert not outcome.delivered and outcome.retryable


def test_temporary_failures_and_missing_acks_go_again_in_a_follow_up() -> None:
    entry = entry_for(["DEICE1", "DEICE2", "DEICE3"])
    acks = [("DEICE1", "received", None), ("DEICE2", "refused", "TEMPORARY_FAILURE")]
    outcome = classify(entry, 200, answer("sdrb-1", acks))
    assert outcome.delivered and outcome.follow_up is not None
    follow_up = outcome.follow_up
    assert follow_up.idempotency_key == "sdrb-1.r1" and follow_up.kind == KIND
    sent = etree.fromstring(follow_up.payload.encode())
    assert [e.text for e in sent.iter("{urn:gembus:roaming:v1}sdrId")] == ["DEICE2", "DEICE3"]
    assert sent.findtext(f"{{{NS}}}batchId") == "sdrb-1.r1"
    assert all_contracts()["sdr_receiver"].schema.validate(sent)
    again = classify(
        entry_for(["DEICE2", "DEICE3"], "sdrb-1.r1"),
        200,
        answer("sdrb-1.r1", [("DEICE2", "refused", "TEMPORARY_FAILURE")]),
    )
    assert again.follow_up is not None and again.follow_up.idempotency_key == "sdrb-1.r2"


def test_a_permanent_refusal_is_reported_not_resent() -> None:
    acks = [("DEICE1", "refused", "NOT_OUR_CONTRACT"), ("DEICE2", "received", None)]
    outcome = classify(entry_for(["DEICE1", "DEICE2"]), 200, answer("sdrb-1", acks))
    assert outcome.delivered and outcome.follow_up is None
    assert outcome.error is not None and "DEICE1 v1 refused NOT_OUR_CONTRACT" in outcome.error


def test_resends_end_in_a_dead_letter() -> None:
    entry = entry_for(["DEICE1"], "sdrb-1.r8")
    outcome = classify(
        entry, 200, answer("sdrb-1.r8", [("DEICE1", "refused", "TEMPORARY_FAILURE")])
    )
    assert not outcome.delivered and not outcome.retryable


def test_faults_answer_for_the_whole_batch() -> None:
    def fault(code: str) -> bytes:
        return (
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
            f"<faultcode>s:{code.split('.')[0]}</faultcode><faultstring>x</faultstring><detail>"
            f'<c:gembusFault xmlns:c="urn:gembus:common:v1"><c:code>{code}</c:code>'
            "<c:message>x</c:message></c:gembusFault></detail></s:Fault></s:Body></s:Envelope>"
        ).encode()

    entry = entry_for(["DEICE1"])
    server = classify(entry, 500, fault("Server.Unavailable"))
    client = classify(entry, 500, fault("Client.NotAuthorized"))
    assert not server.delivered and server.retryable
    assert not client.delivered and not client.retryable


def test_the_worker_knows_both_kinds_with_their_soap_actions() -> None:
    kinds = outbox_kinds()
    assert kinds["notify"].soap_action == "urn:gembus:notification:v1/Notify"
    assert kinds[KIND].headers["SOAPAction"] == '"urn:gembus:sdr-receiver:v1/ReceiveSdrs"'


def test_the_parts_of_one_batch_resend_under_distinct_keys() -> None:
    acks = answer("sdrb-1", [("DEICE1", "refused", "TEMPORARY_FAILURE")])
    keys = []
    for index in (1, 2):
        part = entry_for(["DEICE1"])
        part = OutboxEntry(**{**part.__dict__, "idempotency_key": f"sdrb-1/{index}"})
        outcome = classify(part, 200, acks)
        assert outcome.follow_up is not None
        keys.append(outcome.follow_up.idempotency_key)
    assert keys == ["sdrb-1.p1.r1", "sdrb-1.p2.r1"]
    again = entry_for(["DEICE1"], "sdrb-1.p2.r1")
    follow = classify(
        again, 200, answer("sdrb-1.p2.r1", [("DEICE1", "refused", "TEMPORARY_FAILURE")])
    )
    assert follow.follow_up is not None and follow.follow_up.idempotency_key == "sdrb-1.p2.r2"
