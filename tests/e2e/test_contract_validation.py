"""SRV 1967 over SOAP and usage metering, end to end on the demo marketplace."""

from __future__ import annotations

import pytest
import requests
import zeep.exceptions
from sqlalchemy import create_engine, text

from bus.contracts import all_contracts
from tests.conftest import REPO
from tests.e2e.conftest import LiveServer
from tests.support.soap import envelope, wsse_header
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e
TNM = ("tnm-mobility", "demo-evsp-password")
ICE = ("ice-charging", "demo-operator-password")


def test_service_contract_is_valid_for_the_demo_contract(live_server: LiveServer) -> None:
    service = client(live_server.base_url, "contract_validation", *TNM)
    answer = service.ValidateServiceContract(
        requesterPartnerId="tnm-mobility",
        providerPartnerId="gembus-admin",
        serviceInterface={"family": "evse_search", "version": 1},
    )
    assert answer.valid is True and answer.reasonCode == "OK"
    (matched,) = answer.contracts.contract
    assert matched.serviceInterface.family == "evse_search" and matched.status == "active"
    none = service.ValidateServiceContract(
        requesterPartnerId="tnm-mobility",
        providerPartnerId="gembus-admin",
        serviceInterface={"family": "sdr", "version": 1},
    )
    assert none.valid is False and none.reasonCode == "NO_CONTRACT"


def test_roaming_agreement_answers_with_the_owning_partners(live_server: LiveServer) -> None:
    answer = client(live_server.base_url, "contract_validation", *ICE).ValidateRoamingAgreement(
        operatorId="DE*ICE", providerId="NL-TNM"
    )
    assert answer.valid and (answer.operatorPartnerId, answer.providerPartnerId) == (
        "ice-charging",
        "tnm-mobility",
    )
    missing = client(live_server.base_url, "contract_validation", *ICE).ValidateRoamingAgreement(
        operatorId="DE*ICE", providerId="DE-BMW"
    )
    assert missing.valid is False and missing.reasonCode == "NO_CONTRACT"


def test_third_parties_may_not_ask(live_server: LiveServer) -> None:
    outsider = client(
        live_server.base_url, "contract_validation", "navi-search", "demo-search-password"
    )
    with pytest.raises(zeep.exceptions.Fault) as raised:
        outsider.ValidateRoamingAgreement(operatorId="DE*ICE", providerId="NL-TNM")
    assert raised.value.code.endswith("Client.NotAuthorized")


def test_calls_under_a_contract_are_metered(live_server: LiveServer) -> None:
    engine = create_engine(live_server.env["GEMBUS_DATABASE_URL"])
    query = text(
        "SELECT count(*), count(fault_code) FROM usage_call uc JOIN service_contract sc "
        "ON sc.contract_id = uc.contract_id WHERE sc.requester_id = 'tnm-mobility'"
    )
    with engine.connect() as connection:
        before = connection.execute(query).one()
    sample = (
        (REPO / "tests/fixtures/requests/evse_search/SearchEvse.xml").read_text().split("?>", 1)[-1]
    )
    action = all_contracts()["evse_search"].operation_named("SearchEvse").soap_action
    for _ in range(3):
        requests.post(
            f"{live_server.base_url}/services/evse_search",
            timeout=10,
            data=envelope(sample, wsse_header(*TNM)),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'},
        )
    # navi-search has no contract: its calls are not metered
    requests.post(
        f"{live_server.base_url}/services/evse_search",
        timeout=10,
        data=envelope(sample, wsse_header("navi-search", "demo-search-password")),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'},
    )
    with engine.connect() as connection:
        after = connection.execute(query).one()
        total = connection.execute(text("SELECT count(*) FROM usage_call")).scalar_one()
    engine.dispose()
    assert (after[0] - before[0], after[1] - before[1]) == (3, 0)  # answered, no faults
    assert total >= after[0]
