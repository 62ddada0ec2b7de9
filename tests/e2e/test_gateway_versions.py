"""Version transforms end to end: requesters and CLMs on different versions of reservation.

Two operators' CLMs run as real spyne processes (tests/fakes/clm.py): IT*VTW's implements
reservation v2 (urn:gembus:reservation:v2) and is registered on the marketplace as family
"reservation", version 2; IT*VON's implements v1. The EVSP (tnm-mobility) integrates with the
gateway in either version: zeep from /gateway/reservation?wsdl speaks v1, zeep from
/gateway/reservation_v2?wsdl speaks v2. Content routing reaches both CLMs from both; the
gateway converts the Body child (bus/transform.py) only when the versions differ, and every
message each side sees validates against its own version's canonical schema (the zeep plugin
checks the requester's side, the asserts below the CLM's).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import zeep.exceptions
from lxml import etree
from zeep import Client, Settings
from zeep.wsse.username import UsernameToken

from bus.contracts import all_contracts
from bus.guard import WSSE_NS
from tests.e2e.conftest import LiveServer, offer_reservation_service, register_operator
from tests.fakes.clm import ClmProcess, ReceivedRequest, start_clm_process
from tests.support.soap import envelope, wsse_header
from tests.support.zeep_validation import ContractValidationPlugin, client

pytestmark = pytest.mark.e2e
ADMIN = ("gembus-admin", "demo-admin-password")
TNM = ("tnm-mobility", "demo-evsp-password")
V1 = "urn:gembus:reservation:v1"
V2 = "urn:gembus:reservation:v2"
CMN = "urn:gembus:common:v1"
CONTRACT_ID = "NL-TNM-000122045-U"


@dataclass
class Provider:
    partner_id: str
    password: str
    operator_id: str
    version: int
    clm: ClmProcess
    service_id: str = ""


def _register_service(server: LiveServer, provider: Provider, family: str, version: int) -> Any:
    market = client(server.base_url, "marketplace", provider.partner_id, provider.password)
    return market.RegisterService(
        data={
            "name": f"{provider.partner_id} reservation v{version}",
            "category": "ValueAdded",
            "serviceInterface": {"family": family, "version": version},
            "endpointUrl": provider.clm.url,
            "description": "CLM reservation endpoint",
        }
    )


def _offer(server: LiveServer, provider: Provider) -> str:
    return offer_reservation_service(
        server, provider.partner_id, provider.password, provider.clm.url, version=provider.version
    )


@pytest.fixture(scope="module")
def providers(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Provider]]:
    logs = tmp_path_factory.mktemp("clm-versions")
    specs = {  # name: (partner ID, operator ID, reservation version the CLM implements)
        "v2": ("vtw-cpo-gw", "IT*VTW", 2),
        "v1": ("von-cpo-gw", "IT*VON", 1),
    }
    found: dict[str, Provider] = {}
    try:
        for name, (partner_id, operator_id, version) in specs.items():
            clm = start_clm_process(
                operator_id,
                log_path=logs / f"{name}.log",
                contract="reservation" if version == 1 else f"reservation_v{version}",
            )
            password = register_operator(live_server, partner_id, operator_id)
            found[name] = Provider(partner_id, password, operator_id, version, clm)
        for provider in found.values():
            provider.service_id = _offer(live_server, provider)
        yield found
    finally:
        for provider in found.values():
            provider.clm.kill()


def gateway(server: LiveServer, target: str, family: str) -> Any:
    """A zeep requester built from the gateway's WSDL for ``target``, validating every message
    against ``family``'s canonical schema (the version the requester speaks)."""
    settings = Settings(strict=True, forbid_dtd=True, forbid_entities=True, xml_huge_tree=False)
    return Client(
        f"{server.base_url}/gateway/{target}?wsdl",
        wsse=UsernameToken(*TNM, use_digest=True),
        settings=settings,
        plugins=[ContractValidationPlugin(family)],
    ).service


def fault_code(raised: pytest.ExceptionInfo[zeep.exceptions.Fault]) -> str:
    return str(raised.value.detail[0].findtext(f"{{{CMN}}}code"))


def received(provider: Provider) -> ReceivedRequest:
    """The last request the CLM received; its Body child validates in the CLM's version."""
    last = provider.clm.received()[-1]
    child = last.body_child()
    assert child is not None
    schema = all_contracts()["reservation" if provider.version == 1 else "reservation_v2"].schema
    assert schema.validate(child), schema.error_log
    return last


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def test_a_v1_requester_reserves_and_cancels_at_a_v2_clm(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    service = gateway(live_server, "reservation", "reservation")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    reference = f"TNM-{uuid.uuid4().hex[:12]}"
    answer = service.ReserveEvse(
        providerId="NL-TNM",
        contractId=CONTRACT_ID,
        token={"instance": "4A3B2C1D", "tokenType": "rfid"},
        evseId="IT*VTW*E1*1",
        partnerReservationId=reference,
        requestedStart=start,
        requestedExpiry=start + timedelta(minutes=45, seconds=30),
    )
    # v1 answer: expiry = start + the minutes the v2 CLM granted (45; seconds round down)
    assert answer.reservationId.startswith("ITVTW-R")
    assert answer.partnerReservationId == reference
    assert _utc(answer.start) == start
    assert _utc(answer.expiry) == start + timedelta(minutes=45)

    sent = received(providers["v2"])
    child = sent.body_child()
    assert child is not None and child.tag == f"{{{V2}}}ReserveEvse"
    assert child.findtext(f"{{{V2}}}customer/{{{V2}}}contractId") == CONTRACT_ID
    assert child.findtext(f"{{{V2}}}customer/{{{V2}}}token/{{{CMN}}}instance") == "4A3B2C1D"
    assert child.findtext(f"{{{V2}}}durationMinutes") == "45"
    assert child.find(f"{{{V2}}}requestedExpiry") is None
    assert sent.soap_action == f"{V2}/ReserveEvse"
    # the requester's SOAP header (its UsernameToken) travels on to the provider
    header = etree.fromstring(sent.body).find("{http://schemas.xmlsoap.org/soap/envelope/}Header")
    assert header is not None and header.find(f"{{{WSSE_NS}}}Security") is not None

    cancelled = service.CancelReservation(
        providerId="NL-TNM", evseId="IT*VTW*E1*1", reservationId=answer.reservationId
    )
    assert cancelled.reservationId == answer.reservationId and cancelled.cancelledAt
    assert received(providers["v2"]).body_child().tag == f"{{{V2}}}CancelReservation"


def test_a_v2_requester_reserves_and_cancels_at_a_v1_clm(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    service = gateway(live_server, "reservation_v2", "reservation_v2")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    answer = service.ReserveEvse(
        providerId="NL-TNM",
        customer={
            "contractId": CONTRACT_ID,
            "token": {"instance": "4A3B2C1D", "tokenType": "rfid"},
        },
        evseId="IT*VON*E7*1",
        requestedStart=start,
        durationMinutes=30,
    )
    assert answer.reservationId.startswith("ITVON-R")
    assert _utc(answer.start) == start and answer.grantedMinutes == 30

    child = received(providers["v1"]).body_child()
    assert child is not None and child.tag == f"{{{V1}}}ReserveEvse"
    assert child.findtext(f"{{{V1}}}contractId") == CONTRACT_ID
    assert child.findtext(f"{{{V1}}}token/{{{CMN}}}instance") == "4A3B2C1D"
    expiry = datetime.fromisoformat(child.findtext(f"{{{V1}}}requestedExpiry") or "")
    assert _utc(expiry) == start + timedelta(minutes=30)

    cancelled = service.CancelReservation(
        providerId="NL-TNM", evseId="IT*VON*E7*1", reservationId=answer.reservationId
    )
    assert cancelled.reservationId == answer.reservationId
    assert received(providers["v1"]).soap_action == f"{V1}/CancelReservation"


def test_a_v2_requester_without_a_start_gets_the_duration_from_now(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = gateway(live_server, "reservation_v2", "reservation_v2").ReserveEvse(
        providerId="NL-TNM",
        customer={"contractId": CONTRACT_ID},
        evseId="IT*VON*E8*1",
        durationMinutes=20,
    )
    assert answer.grantedMinutes == 20
    assert before <= _utc(answer.start) <= datetime.now(UTC)


def test_provider_faults_pass_through_in_either_direction(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        gateway(live_server, "reservation", "reservation").CancelReservation(
            providerId="NL-TNM", evseId="IT*VTW*E1*1", reservationId="ITVTW-R999"
        )
    assert fault_code(raised) == "Client.UnknownReservation"
    with pytest.raises(zeep.exceptions.Fault) as raised:
        gateway(live_server, "reservation_v2", "reservation_v2").CancelReservation(
            providerId="NL-TNM", evseId="IT*VON*E1*1", reservationId="ITVON-R999"
        )
    assert fault_code(raised) == "Client.UnknownReservation"


def test_a_period_v2_cannot_express_is_refused_before_the_clm(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    count = len(providers["v2"].clm.received())
    start = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(zeep.exceptions.Fault) as raised:
        gateway(live_server, "reservation", "reservation").ReserveEvse(
            providerId="NL-TNM",
            contractId=CONTRACT_ID,
            evseId="IT*VTW*E2*1",
            requestedStart=start,
            requestedExpiry=start + timedelta(seconds=30),
        )
    assert fault_code(raised) == "Client.InvalidReservationPeriod"
    assert raised.value.detail[0].findtext(f"{{{CMN}}}field") == "requestedExpiry"
    assert len(providers["v2"].clm.received()) == count


def test_same_version_traffic_stays_pass_through_bytes(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    body = envelope(
        f'<r:ReserveEvse xmlns:r="{V2}"><r:providerId>NL-TNM</r:providerId><r:customer>'
        f"<r:contractId>{CONTRACT_ID}</r:contractId></r:customer>"
        "<r:evseId>IT*VTW*E3*1</r:evseId><r:durationMinutes>15</r:durationMinutes></r:ReserveEvse>",
        wsse_header(*TNM),
    )
    answer = requests.post(
        f"{live_server.base_url}/gateway/reservation_v2",
        data=body,
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{V2}/ReserveEvse"'},
    )
    assert answer.status_code == 200 and b"<tns:grantedMinutes>15<" in answer.content
    assert received(providers["v2"]).body == body  # the very bytes, header included


def test_a_service_id_url_speaks_the_services_own_version(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    service_id = providers["v2"].service_id
    served = requests.get(f"{live_server.base_url}/gateway/{service_id}?wsdl", timeout=5)
    assert served.status_code == 200 and f'targetNamespace="{V2}"'.encode() in served.content
    v1 = requests.get(f"{live_server.base_url}/gateway/reservation?wsdl", timeout=5)
    v2 = requests.get(f"{live_server.base_url}/gateway/reservation_v2?wsdl", timeout=5)
    assert f'targetNamespace="{V1}"'.encode() in v1.content
    assert f'targetNamespace="{V2}"'.encode() in v2.content
    answer = gateway(live_server, service_id, "reservation_v2").ReserveEvse(
        providerId="NL-TNM",
        customer={"contractId": CONTRACT_ID},
        evseId="IT*VTW*E4*1",
        durationMinutes=10,
    )
    assert answer.grantedMinutes == 10


def test_the_marketplace_knows_v2_only_as_reservation_version_2(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    v1_clm, v2_clm = providers["v1"], providers["v2"]
    with pytest.raises(zeep.exceptions.Fault) as raised:
        _register_service(live_server, v2_clm, "reservation_v2", 1)
    assert fault_code(raised) == "Client.UnknownInterface"
    with pytest.raises(zeep.exceptions.Fault) as raised:  # a v1 CLM cannot claim v2
        _register_service(live_server, v1_clm, "reservation", 2)
    assert fault_code(raised) == "Client.ContractMismatch"
