"""SRV 1967 decisions on PostgreSQL and SQLite: active, expired, terminated, not yet valid, missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.marketplace import contracts
from domain.marketplace.model import Validity
from domain.marketplace.validation import ContractValidator, Reason
from gembus.bootstrap import Gembus
from tests.support.marketplace import contract, partner, published_offering

NOW = datetime.now(UTC)


def validator(gembus: Gembus, clock: list[float] | None = None) -> ContractValidator:
    ticks = clock if clock is not None else [0.0]
    return ContractValidator(gembus.uow, refresh_s=0.25, clock=lambda: ticks[0])


def test_service_contract_answers_follow_time(gembus: Gembus) -> None:
    ice, tnm = partner(gembus.uow, "ice-charging"), partner(gembus.uow, "tnm-mobility")
    offering = published_offering(gembus.uow, ice)
    window = Validity(NOW + timedelta(days=1), NOW + timedelta(days=31))
    accepted = contract(gembus.uow, tnm, offering, window)
    check = validator(gembus)

    def reason(at: datetime) -> Reason:
        return check.validate_service_contract("tnm-mobility", "ice-charging", at=at).reason

    assert reason(NOW) is Reason.NOT_YET_VALID
    assert reason(NOW + timedelta(days=2)) is Reason.OK
    assert reason(NOW + timedelta(days=40)) is Reason.EXPIRED
    answer = check.validate_service_contract(
        "tnm-mobility", "ice-charging", at=NOW + timedelta(days=2), interface=("evse_search", 1)
    )
    assert answer.valid and [c.contract_id for c, _ in answer.contracts] == [accepted.contract_id]
    assert (
        check.validate_service_contract(
            "tnm-mobility", "ice-charging", at=NOW + timedelta(days=2), interface=("sdr", None)
        ).reason
        is Reason.NO_CONTRACT
    )
    assert (
        check.validate_service_contract("ice-charging", "tnm-mobility").reason is Reason.NO_CONTRACT
    )


def test_termination_is_seen_at_once_locally_and_after_the_refresh_elsewhere(
    gembus: Gembus,
) -> None:
    ice, tnm = partner(gembus.uow, "ice-charging"), partner(gembus.uow, "tnm-mobility")
    accepted = contract(gembus.uow, tnm, published_offering(gembus.uow, ice))
    here, clock = validator(gembus), [100.0]
    elsewhere = validator(gembus, clock)  # another worker: learns only through the counter
    assert here.validate_service_contract("tnm-mobility", "ice-charging").valid
    assert elsewhere.validate_service_contract("tnm-mobility", "ice-charging").valid
    with gembus.uow() as uow:
        contracts.terminate_contract(uow, tnm, accepted.contract_id, None, "switching provider")
        uow.commit()
    here.invalidate()
    assert (
        here.validate_service_contract("tnm-mobility", "ice-charging").reason is Reason.TERMINATED
    )
    assert elsewhere.validate_service_contract(
        "tnm-mobility", "ice-charging"
    ).valid  # within 0.25 s
    clock[0] += 0.3
    assert (
        elsewhere.validate_service_contract("tnm-mobility", "ice-charging").reason
        is Reason.TERMINATED
    )


def test_missing_and_inactive_partners_and_unknown_services(gembus: Gembus) -> None:
    check = validator(gembus)
    assert (
        check.validate_service_contract("nobody-here", "ice-charging").reason
        is Reason.UNKNOWN_PARTNER
    )
    assert (
        check.validate_service_contract(
            "tnm-mobility", "ice-charging", service_id="svc-missing"
        ).reason
        is Reason.UNKNOWN_SERVICE
    )
    with gembus.uow() as uow:
        from domain.marketplace import partners as uc

        uc.deactivate_partner(uow, uc.SYSTEM_ACTOR, "ice-charging")
        uow.commit()
    check.invalidate()
    assert (
        check.validate_service_contract("tnm-mobility", "ice-charging").reason
        is Reason.PARTNER_INACTIVE
    )


def test_roaming_agreements_active_expired_terminated_missing(gembus: Gembus) -> None:
    ice = partner(gembus.uow, "ice-charging")
    check = validator(gembus)
    assert check.validate_roaming_agreement("DE*ICE", "NL-TNM").reason is Reason.NO_CONTRACT
    assert check.validate_roaming_agreement("DE*ICE", "FR-XXX").reason is Reason.UNKNOWN_PARTNER
    with gembus.uow() as uow:
        past = contracts.create_roaming_agreement(
            uow,
            ice,
            "DE*ICE",
            "NL-TNM",
            Validity(NOW - timedelta(days=60), NOW - timedelta(days=30)),
        )
        uow.commit()
    check.invalidate()
    assert check.validate_roaming_agreement("DE*ICE", "NL-TNM").reason is Reason.EXPIRED
    with gembus.uow() as uow:  # IDs in other wire forms meet on their keys
        current = contracts.create_roaming_agreement(
            uow, ice, "deice", "NLTNM", Validity(NOW - timedelta(days=1))
        )
        uow.commit()
    check.invalidate()
    answer = check.validate_roaming_agreement("DE*ICE", "NL-TNM")
    assert answer.valid and answer.reason is Reason.OK
    assert (answer.operator_partner_id, answer.provider_partner_id) == (
        "ice-charging",
        "tnm-mobility",
    )
    assert [a.agreement_id for a in answer.agreements] == [current.agreement_id]
    assert check.validate_roaming_agreement("DE*ICE", "NL-TNM", NOW - timedelta(days=45)).valid
    # between the two, the most recent agreement decides: it is not valid yet
    between = check.validate_roaming_agreement("DE*ICE", "NL-TNM", NOW - timedelta(days=10))
    assert between.reason is Reason.NOT_YET_VALID and len(between.agreements) == 2
    with gembus.uow() as uow:
        contracts.terminate_roaming_agreement(uow, ice, current.agreement_id, None, "ended")
        uow.commit()
    check.invalidate()
    assert check.validate_roaming_agreement("DE*ICE", "NL-TNM").reason is Reason.TERMINATED
    assert past.agreement_id != current.agreement_id


def test_overlapping_agreements_are_refused(gembus: Gembus) -> None:
    ice = partner(gembus.uow, "ice-charging")
    with gembus.uow() as uow:
        contracts.create_roaming_agreement(uow, ice, "DE*ICE", "NL-TNM", Validity(NOW))
        uow.commit()
    with gembus.uow() as uow, pytest.raises(contracts.OverlappingAgreementError):
        contracts.create_roaming_agreement(
            uow, ice, "DE*ICE", "NL-TNM", Validity(NOW + timedelta(days=5))
        )
