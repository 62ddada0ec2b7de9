"""The fake CLM as a real process, called by zeep through the canonical reservation WSDL.

zeep is built from wsdl/reservation.wsdl (not from anything the fake serves) with the
address overridden to the fake, and carries the contract-validating plugin, so every
request and response (fault details included) is checked against the canonical XSD.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from zeep import Client, Settings
from zeep.exceptions import Fault
from zeep.transports import Transport

from tests.conftest import REPO
from tests.fakes.clm import ClmProcess, serve, start_clm_process
from tests.support.zeep_validation import ContractValidationPlugin

pytestmark = pytest.mark.e2e

R = "urn:gembus:reservation:v1"
CMN = "urn:gembus:common:v1"
BINDING = f"{{{R}}}ReservationSoap11Binding"
WSDL = REPO / "wsdl" / "reservation.wsdl"
REFUSED = "DE*ICE*E123460*9"
CET = timezone(timedelta(hours=1))


def zeep_service(address: str, *, timeout: float = 10) -> tuple[Any, ContractValidationPlugin]:
    plugin = ContractValidationPlugin("reservation")
    settings = Settings(strict=True, forbid_dtd=True, forbid_entities=True, xml_huge_tree=False)
    client = Client(
        str(WSDL),
        plugins=[plugin],
        settings=settings,
        transport=Transport(timeout=10, operation_timeout=timeout),
    )
    return client.create_service(BINDING, address), plugin


def reserve(service: Any, evse_id: str, **extra: Any) -> Any:
    return service.ReserveEvse(
        providerId="NL-TNM",
        contractId="NL-TNM-000122045-U",
        token={"instance": "4A3B2C1D", "tokenType": "rfid", "representation": "plain"},
        evseId=evse_id,
        requestedStart=datetime(2012, 11, 20, 11, 15, tzinfo=CET),
        requestedExpiry=datetime(2012, 11, 20, 11, 45, tzinfo=CET),
        **extra,
    )


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ClmProcess]:
    process = start_clm_process("DE*ICE", refuse=[REFUSED], log_path=tmp_path / "clm.log")
    try:
        yield process
    finally:
        process.kill()


def test_reserve_and_cancel_through_the_canonical_wsdl(fake: ClmProcess) -> None:
    service, plugin = zeep_service(fake.url)
    reserved = reserve(service, "DE*ICE*E123460*2", partnerReservationId="TNM-RES-1")
    assert reserved.reservationId == "DEICE-R1"
    assert reserved.evseId == "DE*ICE*E123460*2"
    assert reserved.partnerReservationId == "TNM-RES-1"
    assert reserved.expiry == datetime(2012, 11, 20, 11, 45, tzinfo=CET)
    cancelled = service.CancelReservation(
        providerId="NL-TNM",
        evseId="DE*ICE*E123460*2",
        reservationId=reserved.reservationId,
        reason="Driver changed route",
    )
    assert cancelled.reservationId == "DEICE-R1"
    assert cancelled.cancelledAt.tzinfo is not None
    assert plugin.validated == 4  # two requests, two responses
    # another process can read what the fake received, raw bytes included
    received = fake.received()
    assert [r.operation for r in received] == ["ReserveEvse", "CancelReservation"]
    assert received[0].soap_action == f"{R}/ReserveEvse"
    child = received[0].body_child()
    assert child is not None and child.findtext(f"{{{R}}}partnerReservationId") == "TNM-RES-1"


def test_refused_evse_is_a_zeep_fault_with_the_gembus_detail(fake: ClmProcess) -> None:
    service, plugin = zeep_service(fake.url)
    with pytest.raises(Fault) as caught:
        reserve(service, REFUSED)
    fault = caught.value
    assert fault.code is not None and fault.code.endswith("Client.EvseNotReservable")
    assert fault.detail is not None
    assert fault.detail.findtext(f"{{{CMN}}}gembusFault/{{{CMN}}}code") == (
        "Client.EvseNotReservable"
    )
    assert fault.detail.findtext(f"{{{CMN}}}gembusFault/{{{CMN}}}field") == "evseId"
    assert plugin.validated == 2  # the request and the fault detail


def test_killed_provider_refuses_connections(fake: ClmProcess) -> None:
    service, _ = zeep_service(fake.url)
    reserve(service, "DE*ICE*E123460*2")
    fake.kill()
    assert not fake.alive()
    with pytest.raises(requests.exceptions.ConnectionError):
        reserve(service, "DE*ICE*E123460*2")


def test_slow_provider_times_the_caller_out(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    slow = start_clm_process("DE*ICE", delay_s=2, log_path=log)
    try:
        service, _ = zeep_service(slow.url, timeout=0.5)
        with pytest.raises(requests.exceptions.Timeout):
            reserve(service, "DE*ICE*E123460*2")
        # the request arrived even though nobody waited for the answer
        assert [r.operation for r in slow.received()] == ["ReserveEvse"]
    finally:
        slow.stop()
    assert not slow.alive()


def test_serve_in_a_thread(tmp_path: Path) -> None:
    from tests.fakes.clm import make_clm_app

    app = make_clm_app("DE*ICE")
    with serve(app) as running:
        assert requests.get(running.url, timeout=5).status_code == 200
        service, plugin = zeep_service(running.url)
        assert reserve(service, "DE*ICE*E123460*2").reservationId == "DEICE-R1"
    assert plugin.validated == 2
    assert etree.QName(app.received[0].body_child()).localname == "ReserveEvse"
