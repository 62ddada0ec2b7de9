"""Marketplace rules the WSDL declares, checked through the domain on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.marketplace import catalogue, contracts
from domain.marketplace.model import InterfaceRef, ServiceCategory, ServiceData, Validity
from gembus.bootstrap import Gembus
from gembus.errors import InvalidPeriodError, NotFoundError
from tests.support.marketplace import AcceptingInspector, contract, partner, published_offering

NOW = datetime.now(UTC)


def test_unknown_interface_is_named(gembus: Gembus) -> None:
    class NoSuchFamily(AcceptingInspector):
        def known(self, interface: InterfaceRef) -> bool:
            return False

    data = ServiceData(
        "X", ServiceCategory.VALUE_ADDED, InterfaceRef("teleport", 1), "https://x.example/t"
    )
    with gembus.uow() as uow, pytest.raises(NotFoundError) as raised:
        catalogue.register_service(
            uow, NoSuchFamily(), partner(gembus.uow, "ice-charging"), None, data
        )
    assert (
        raised.value.fault_code == "Client.UnknownInterface"
        and raised.value.field == "data/serviceInterface/family"
    )


def test_contract_windows_start_inside_the_offering_and_default_to_open_ended(
    gembus: Gembus,
) -> None:
    ice, tnm = partner(gembus.uow, "ice-charging"), partner(gembus.uow, "tnm-mobility")
    offering = published_offering(gembus.uow, ice, valid_to=NOW + timedelta(days=10))
    with gembus.uow() as uow, pytest.raises(InvalidPeriodError) as raised:
        contracts.accept_offering(uow, tnm, offering, Validity(NOW + timedelta(days=20)), None)
    assert raised.value.field == "validity/validFrom"
    assert contract(gembus.uow, tnm, offering).validity.valid_to is None


def test_an_end_in_the_past_is_refused(gembus: Gembus) -> None:
    ice, tnm = partner(gembus.uow, "ice-charging"), partner(gembus.uow, "tnm-mobility")
    signed = contract(gembus.uow, tnm, published_offering(gembus.uow, ice))
    with gembus.uow() as uow, pytest.raises(InvalidPeriodError):
        contracts.terminate_contract(uow, tnm, signed.contract_id, NOW - timedelta(days=1), None)
    with gembus.uow() as uow:
        ended = contracts.terminate_contract(
            uow, tnm, signed.contract_id, NOW + timedelta(days=1), "notice"
        )
        uow.commit()
    assert ended.terminated_at == NOW + timedelta(days=1)


def test_offerings_list_by_their_status_now(gembus: Gembus) -> None:
    from domain.marketplace.model import OfferingStatus
    from domain.marketplace.partners import Page

    ice = partner(gembus.uow, "ice-charging")
    expired = published_offering(gembus.uow, ice, valid_to=NOW - timedelta(days=1))
    current = published_offering(gembus.uow, ice, family="sdr")
    with gembus.uow() as uow:
        listed = {
            status: [
                o.offering_id
                for o in catalogue.list_offerings(
                    uow, service_id=None, provider_id="ice-charging", status=status, page=Page()
                )[0]
            ]
            for status in (OfferingStatus.OPEN, OfferingStatus.EXPIRED)
        }
    assert listed == {OfferingStatus.OPEN: [current], OfferingStatus.EXPIRED: [expired]}
