"""SDR forwarding rules without a database: plausibility (each rule), the state machine, the
decoding of a record (content hash, stored document) and the delivery periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from domain.clearing.plausibility import Facts, Rule, check, parse_contract
from domain.clearing.sdr import (
    ConfirmResult,
    Decision,
    DeliveryMode,
    SdrStatus,
    SdrSubmission,
    StoredSdr,
    SubmitResult,
    on_confirmation,
    on_submission,
)
from domain.clearing.sdr_delivery import period_of
from domain.clearing.sdr_forwarding import provider_wire
from domain.clearing.sdr_wire import with_status
from endpoints.sdr.messages import decode_sdr
from tests.support.sdr import BMW_CONTRACT, Period, record, submit_body

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=30)


def decode(xml: str) -> SdrSubmission:
    root = etree.fromstring(submit_body([xml]).encode())
    return decode_sdr(root.find("{urn:gembus:sdr:v1}sdrs/{urn:gembus:sdr:v1}sdr"), 1)


def facts(contract: str = "NL-TNM-000122045-U", **overrides: object) -> Facts:
    parsed, error = parse_contract(contract)
    values: dict[str, object] = {
        "operator_key": "DEICE",
        "now": NOW,
        "contract": parsed,
        "contract_error": error,
        "provider_owner": "tnm-mobility",
        "agreement_error": None,
    }
    values.update(overrides)
    return Facts(**values)  # type: ignore[arg-type]


def rules(xml: str, **fact_overrides: object) -> list[tuple[Rule, str | None]]:
    submission = decode(xml)
    contract = fact_overrides.pop("contract_id", submission.contract_id)
    return [(i.rule, i.field) for i in check(submission, facts(str(contract), **fact_overrides))]


# ---------------------------------------------------------------------------- plausibility


def test_a_good_record_breaks_no_rule() -> None:
    assert rules(record("DEICE0000000001", start=START)) == []


def test_sdr_id_must_start_with_the_operator_key() -> None:
    assert rules(record("DEBMW0000000001", start=START)) == [(Rule.SDR_ID_PREFIX_MISMATCH, "sdrId")]


def test_end_before_start_and_future_timestamps() -> None:
    late = NOW + timedelta(hours=2)
    found = rules(record("DEICE1", start=late, minutes=0, duration=None))
    assert (Rule.END_BEFORE_START, "endDateTime") in found
    assert (Rule.FUTURE_TIMESTAMP, "startDateTime") in found


def test_a_period_outside_the_session_names_the_field() -> None:
    periods = [Period(START, END + timedelta(minutes=5))]
    found = rules(record("DEICE1", start=START, periods=periods))
    assert found == [(Rule.PERIOD_OUTSIDE_SESSION, "chargingPeriods/chargingPeriod[1]/endDateTime")]


def test_a_period_ending_before_it_starts() -> None:
    periods = [Period(START + timedelta(minutes=10), START + timedelta(minutes=5))]
    assert rules(record("DEICE1", start=START, periods=periods)) == [
        (Rule.END_BEFORE_START, "chargingPeriods/chargingPeriod[1]/endDateTime")
    ]


def test_period_cost_must_be_value_times_price_within_a_minor_unit() -> None:
    close = [Period(START, END, cost="7.4749")]  # 7.47 vs 7.47: fine
    assert rules(record("DEICE1", start=START, periods=close, total="7.4749")) == []
    off = [Period(START, END, cost="7.49")]  # 2 cents off
    assert rules(record("DEICE1", start=START, periods=off, total="7.49")) == [
        (Rule.COST_MISMATCH, "chargingPeriods/chargingPeriod[1]/periodCost")
    ]


def test_total_cost_must_be_the_sum_of_the_periods() -> None:
    assert rules(record("DEICE1", start=START, total="9.9690")) == [
        (Rule.TOTAL_COST_MISMATCH, "totalCost")
    ]


def test_unknown_currency() -> None:
    assert rules(record("DEICE1", start=START, currency="XYZ")) == [
        (Rule.UNKNOWN_CURRENCY, "currency")
    ]


def test_zero_decimal_currencies_round_to_whole_units() -> None:
    periods = [Period(START, END, value="10", price="35", cost="350")]
    assert rules(record("DEICE1", start=START, periods=periods, currency="JPY")) == []


def test_negative_energy_and_negative_prices() -> None:
    periods = [Period(START, END, value="-1.000", price="0.35", cost="-0.35")]
    found = rules(record("DEICE1", start=START, periods=periods))
    assert (Rule.NEGATIVE_ENERGY, "chargingPeriods/chargingPeriod[1]/billingValue") in found
    assert (Rule.NEGATIVE_VALUE, "chargingPeriods/chargingPeriod[1]/periodCost") in found
    assert (Rule.NEGATIVE_VALUE, "totalCost") in found


def test_the_evse_must_be_the_senders() -> None:
    assert rules(record("DEICE1", start=START, evse="DE*BMW*E1*1")) == [
        (Rule.EVSE_NOT_SENDERS, "evseId")
    ]


def test_an_unmappable_evse_id_is_unknown() -> None:
    assert rules(record("DEICE1", start=START, evse="+999*823*1*2")) == [
        (Rule.EVSE_UNKNOWN, "evseId")
    ]


def test_contract_rules_use_what_the_registry_said() -> None:
    bad_check_digit = record("DEICE1", start=START, contract="NL-TNM-000122045-A")
    assert rules(bad_check_digit) == [(Rule.CONTRACT_ID_INVALID, "contractId")]
    unknown = record("DEICE1", start=START, contract="DE-8AA-001234567-0")
    assert rules(unknown, provider_owner=None) == [(Rule.CONTRACT_PROVIDER_UNKNOWN, "contractId")]
    no_agreement = record("DEICE1", start=START, contract=BMW_CONTRACT)
    assert rules(no_agreement, agreement_error="none") == [
        (Rule.NO_ROAMING_AGREEMENT, "contractId")
    ]


def test_duration_must_agree_to_the_second() -> None:
    assert rules(record("DEICE1", start=START, duration="000:29:59")) == [
        (Rule.DURATION_MISMATCH, "duration")
    ]


def test_service_fee_is_a_multiplier_of_one() -> None:
    periods = [Period(START, END), Period(START, END, "serviceFee", "2.0", "1.5000", "3.0000")]
    assert rules(record("DEICE1", start=START, periods=periods)) == [
        (Rule.INVALID_MULTIPLIER, "chargingPeriods/chargingPeriod[2]/billingValue")
    ]


def test_a_parking_sdr_bills_no_energy() -> None:
    found = rules(record("DEICE1", start=START, service_type="parking"))
    assert found == [(Rule.SERVICE_TYPE_MISMATCH, "chargingPeriods/chargingPeriod[1]/billingItem")]


def test_only_new_revised_or_rejected_may_be_submitted() -> None:
    assert rules(record("DEICE1", start=START, status="approved")) == [
        (Rule.STATUS_NOT_SUBMITTABLE, "status")
    ]


def test_a_blank_element_is_named() -> None:
    xml = record("DEICE1", start=START).replace(
        "<cmn:street>Invalidenstrasse</cmn:street>", "<cmn:street> </cmn:street>"
    )
    assert rules(xml) == [(Rule.EMPTY_ELEMENT, "chargePointAddress/street")]


def test_every_broken_rule_is_reported_not_only_the_first() -> None:
    xml = record("DEBMW1", start=START, currency="XYZ", evse="DE*BMW*E1*1", total="1.00")
    assert {r for r, _ in rules(xml)} == {
        Rule.SDR_ID_PREFIX_MISMATCH,
        Rule.EVSE_NOT_SENDERS,
        Rule.UNKNOWN_CURRENCY,
        Rule.TOTAL_COST_MISMATCH,
    }


# ---------------------------------------------------------------------------- decoding


def test_the_hash_ignores_prefixes_and_indentation_but_not_values() -> None:
    xml = record("DEICE1", start=START)
    renamed = xml.replace("rm:", "r:").replace("<s:sdr>", '<s:sdr xmlns:r="urn:gembus:roaming:v1">')
    indented = xml.replace("><rm:", ">\n    <rm:")
    changed = xml.replace("EMH-ED300L-0815", "EMH-ED300L-0816")
    assert decode(renamed).content_hash == decode(xml).content_hash
    assert decode(indented).content_hash == decode(xml).content_hash
    assert decode(changed).content_hash != decode(xml).content_hash
    assert decode(record("DEICE1", start=START, status="revised")).content_hash != (
        decode(xml).content_hash
    )


def test_the_stored_document_is_an_rm_sdr_with_the_status_written_in_when_read() -> None:
    document = decode(record("DEICE1", start=START)).document
    filled = etree.fromstring(with_status(document, "accepted").encode())
    assert filled.tag == "{urn:gembus:roaming:v1}sdr"
    assert filled.findtext("{urn:gembus:roaming:v1}status") == "accepted"
    assert filled.findtext("{urn:gembus:roaming:v1}evseId") == "DE*ICE*E123456*7"


def test_decoding_reads_amounts_as_decimals() -> None:
    submission = decode(record("DEICE1", start=START))
    assert str(submission.net_total) == "8.9690" and str(submission.energy_kwh) == "21.340"
    assert submission.start == START and submission.end == END


def test_provider_wire_keeps_the_contracts_form() -> None:
    assert provider_wire("NL-TNM-000122045-U") == "NL-TNM"
    assert provider_wire("DE*BMW*0010LY*3") == "DE*BMW"
    assert provider_wire("DE8AACA2B3C4D5") == "DE8AA"


# ---------------------------------------------------------------------------- state machine


def stored(status: SdrStatus, version: int = 1, content_hash: str = "h1") -> StoredSdr:
    return StoredSdr("DEICE1", status, version, content_hash, "ice", "tnm", "NLTNM")


@pytest.mark.parametrize(
    ("current", "submitted", "content_hash", "plausible", "expected"),
    [
        (None, "new", "h1", True, (SubmitResult.ACCEPTED, SdrStatus.ACCEPTED, 1)),
        (None, "new", "h1", False, (SubmitResult.IMPLAUSIBLE, None, None)),
        (None, "revised", "h1", True, (SubmitResult.CONFLICT, None, None)),
        (SdrStatus.ACCEPTED, "new", "h1", True, (SubmitResult.DUPLICATE, SdrStatus.ACCEPTED, 1)),
        (SdrStatus.APPROVED, "new", "h1", False, (SubmitResult.DUPLICATE, SdrStatus.APPROVED, 1)),
        (SdrStatus.ACCEPTED, "new", "h2", True, (SubmitResult.CONFLICT, SdrStatus.ACCEPTED, 1)),
        (SdrStatus.ACCEPTED, "revised", "h2", True, (SubmitResult.CONFLICT, SdrStatus.ACCEPTED, 1)),
        (SdrStatus.DECLINED, "revised", "h2", True, (SubmitResult.REVISED, SdrStatus.REVISED, 2)),
        (
            SdrStatus.DECLINED,
            "revised",
            "h2",
            False,
            (SubmitResult.IMPLAUSIBLE, SdrStatus.DECLINED, 1),
        ),
        (
            SdrStatus.DECLINED,
            "rejected",
            "h2",
            False,
            (SubmitResult.REJECTED, SdrStatus.REJECTED, 1),
        ),
        (SdrStatus.DECLINED, "new", "h2", True, (SubmitResult.CONFLICT, SdrStatus.DECLINED, 1)),
        (SdrStatus.REJECTED, "revised", "h3", True, (SubmitResult.CONFLICT, SdrStatus.REJECTED, 1)),
        (SdrStatus.APPROVED, "revised", "h2", True, (SubmitResult.CONFLICT, SdrStatus.APPROVED, 1)),
    ],
)
def test_submission_transitions(
    current: SdrStatus | None,
    submitted: str,
    content_hash: str,
    plausible: bool,
    expected: tuple[SubmitResult, SdrStatus | None, int | None],
) -> None:
    outcome = on_submission(
        stored(current) if current else None, submitted, content_hash, plausible
    )
    assert (outcome.result, outcome.status, outcome.version) == expected
    if outcome.result is SubmitResult.CONFLICT:
        assert outcome.reason


@pytest.mark.parametrize(
    ("current", "decision", "version", "has_reason", "expected"),
    [
        (SdrStatus.ACCEPTED, Decision.APPROVED, 1, False, ConfirmResult.APPROVED),
        (SdrStatus.REVISED, Decision.APPROVED, None, False, ConfirmResult.APPROVED),
        (SdrStatus.ACCEPTED, Decision.DECLINED, 1, True, ConfirmResult.DECLINED),
        (SdrStatus.ACCEPTED, Decision.DECLINED, 1, False, ConfirmResult.MISSING_REASON),
        (SdrStatus.APPROVED, Decision.APPROVED, 1, False, ConfirmResult.DUPLICATE),
        (SdrStatus.DECLINED, Decision.DECLINED, 1, True, ConfirmResult.DUPLICATE),
        (SdrStatus.APPROVED, Decision.DECLINED, 1, True, ConfirmResult.INVALID_STATE),
        (SdrStatus.DECLINED, Decision.APPROVED, 1, False, ConfirmResult.INVALID_STATE),
        (SdrStatus.REJECTED, Decision.APPROVED, 1, False, ConfirmResult.INVALID_STATE),
        (SdrStatus.REVISED, Decision.APPROVED, 1, False, ConfirmResult.STALE_VERSION),
    ],
)
def test_confirmation_transitions(
    current: SdrStatus,
    decision: Decision,
    version: int | None,
    has_reason: bool,
    expected: ConfirmResult,
) -> None:
    at_version = 2 if current is SdrStatus.REVISED else 1
    assert on_confirmation(stored(current, at_version), decision, version, has_reason) is expected


# ---------------------------------------------------------------------------- delivery periods


def test_batch_periods_are_utc_days_iso_weeks_and_months() -> None:
    at = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # a Wednesday
    assert period_of(at, DeliveryMode.DAILY) == (
        datetime(2026, 11, 25, tzinfo=UTC),
        datetime(2026, 11, 26, tzinfo=UTC),
    )
    assert period_of(at, DeliveryMode.WEEKLY) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
    assert period_of(datetime(2026, 12, 31, tzinfo=UTC), DeliveryMode.MONTHLY) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError):
        period_of(at, DeliveryMode.PUSH)


def test_the_status_is_written_in_whatever_the_senders_namespace_style() -> None:
    zeep_style = (
        '<rm:sdr xmlns:rm="urn:gembus:roaming:v1"><ns1:sdrId xmlns:ns1="urn:gembus:roaming:v1">'
        'DEICE1</ns1:sdrId><ns1:status xmlns:ns1="urn:gembus:roaming:v1"/></rm:sdr>'
    )
    default_style = '<sdr xmlns="urn:gembus:roaming:v1"><sdrId>DEICE1</sdrId><status/></sdr>'
    for document in (zeep_style, default_style):
        filled = etree.fromstring(with_status(document, "revised").encode())
        assert filled.findtext("{urn:gembus:roaming:v1}status") == "revised"
