"""Financial clearing end to end: price plans, SDRs submitted and approved over SOAP, gross and
netted statements, their items, and the `gembus clearing` commands, over zeep clients whose
every message is checked against the canonical XSD.

Two partners that are each an EVSE operator and an EVSP (fc-alpha FR*FCA / FR-FCA, fc-beta
FR*FCB / FR-FCB) serve each other's customers, so money flows both ways and netting has work.
Hand-computed: alpha's plan for beta's customers is 0.50 per session + 0.30 per kWh, and each
of alpha's two 30-minute sessions of 21.340 kWh costs 0.50 + 6.402 = 6.902 -> 6.90 (13.80);
beta's plan for alpha's customers is 0.05 per minute: its one 30-minute session is 1.50.
Netted: beta pays alpha 12.30.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import zeep.exceptions

from domain.identifiers import emaid_check_digit
from tests.e2e.conftest import LiveServer, gembus_cli
from tests.support.sdr import fields
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e
ADMIN = ("gembus-admin", "demo-admin-password")
ALPHA = ("fc-alpha", "fc-alpha-password-1")
BETA = ("fc-beta", "fc-beta-password-1")
TNM = ("tnm-mobility", "demo-evsp-password")
D = Decimal


def _contract(provider: str) -> str:
    instance = "C00000001"
    return f"{provider}-{instance}-{emaid_check_digit(provider.replace('-', '') + instance)}"


@dataclass
class World:
    server: LiveServer
    period: dict[str, datetime]
    alpha_plan: str

    def clearing(self, who: tuple[str, str]) -> Any:
        return client(self.server.base_url, "financial_clearing", *who)

    def statement(self, who: tuple[str, str], strategy: str) -> Any:
        return self.clearing(who).GetClearingStatement(period=self.period, strategy=strategy)


def _register(server: LiveServer, who: tuple[str, str], key: str) -> None:
    client(server.base_url, "marketplace", *ADMIN).RegisterPartner(
        partnerId=who[0],
        password=who[1],
        data={
            "legalName": f"{who[0]} SAS",
            "roles": {"role": ["EvseOperator", "Evsp"]},
            "operatorIds": {"operatorId": [f"FR*{key}"]},
            "providerIds": {"providerId": [f"FR-{key}"]},
            "contact": {"email": f"ops@{who[0]}.example"},
        },
    )


def _submit_and_approve(
    server: LiveServer,
    operator: tuple[str, str],
    key: str,
    evsp: tuple[str, str],
    evsp_key: str,
    count: int,
    start: datetime,
) -> None:
    records = [
        fields(
            f"FR{key}{uuid.uuid4().hex[:10].upper()}",
            start=start + timedelta(minutes=40 * n),
            contract=_contract(f"FR-{evsp_key}"),
            evse=f"FR*{key}*E1*1",
        )
        for n in range(count)
    ]
    answer = client(server.base_url, "sdr", *operator).SubmitSdrs(
        operatorId=f"FR*{key}", sdrs={"sdr": records}
    )
    assert [r.result for r in answer.sdrResult] == ["accepted"] * count, answer
    confirmed = client(server.base_url, "sdr", *evsp).ConfirmSdrs(
        providerId=f"FR-{evsp_key}",
        confirmations={
            "confirmation": [
                {"sdrId": r["sdrId"], "version": 1, "decision": "approved"} for r in records
            ]
        },
    )
    assert [c.result for c in confirmed] == ["approved"] * count


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> Iterator[World]:
    _register(live_server, ALPHA, "FCA")
    _register(live_server, BETA, "FCB")
    since = {"validFrom": datetime(2020, 1, 1, tzinfo=UTC)}
    for who, operator, provider in ((ALPHA, "FR*FCA", "FR-FCB"), (BETA, "FR*FCB", "FR-FCA")):
        client(live_server.base_url, "marketplace", *who).CreateRoamingAgreement(
            operatorId=operator, providerId=provider, validity=since
        )
    alpha_plan = (
        client(live_server.base_url, "financial_clearing", *ALPHA)
        .SetPricePlan(
            pricePlan={
                "operatorId": "FR*FCA",
                "providerId": "FR-FCB",
                "currency": "EUR",
                "pricePerKwh": D("0.3000"),
                "pricePerSession": D("0.5000"),
                "validity": since,
                "contractReference": "RA-FCA-FCB-1",
            }
        )
        .pricePlanId
    )
    client(live_server.base_url, "financial_clearing", *BETA).SetPricePlan(
        pricePlan={
            "operatorId": "FR*FCB",
            "providerId": "FR-FCA",
            "currency": "EUR",
            "pricePerMinute": D("0.0500"),
            "validity": since,
        }
    )
    # sessions that ended before now, all in one calendar month (the clearing period)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    month = start.replace(day=1, hour=0, minute=0, second=0)
    if start - month < timedelta(hours=1):
        start = month + timedelta(hours=1)
    _submit_and_approve(live_server, ALPHA, "FCA", BETA, "FCB", 2, start)
    _submit_and_approve(live_server, BETA, "FCB", ALPHA, "FCA", 1, start)
    period = {"start": month, "end": (month + timedelta(days=32)).replace(day=1)}
    yield World(live_server, period, alpha_plan)


def test_a_party_sees_its_gross_lines_and_its_own_net_position(world: World) -> None:
    answer = world.statement(ALPHA, "gross")
    assert answer.status == "provisional" and answer.strategy == "gross"
    lines = {(g.debtor, g.creditor): (g.amount.amount, g.sdrCount) for g in answer.grossLines.line}
    assert lines == {
        ("fc-beta", "fc-alpha"): (D("13.80"), 2),
        ("fc-alpha", "fc-beta"): (D("1.50"), 1),
    }
    positions = {
        (p.partnerId, p.position.currency): p.position.amount
        for p in answer.netPositions.netPosition
    }
    assert positions == {("fc-alpha", "EUR"): D("12.30")}  # only its own


def test_netting_leaves_one_payment_for_the_pair(world: World) -> None:
    answer = world.statement(BETA, "netted")
    (line,) = answer.netLines.line
    assert (line.payer, line.payee, line.netAmount.amount, line.netAmount.currency) == (
        "fc-beta",
        "fc-alpha",
        D("12.30"),
        "EUR",
    )
    assert (line.grossPayerToPayee, line.grossPayeeToPayer, line.sdrCount) == (
        D("13.80"),
        D("1.50"),
        3,
    )


def test_every_line_is_traceable_to_its_sdrs(world: World) -> None:
    answer = world.statement(ALPHA, "gross")
    owed = next(g for g in answer.grossLines.line if g.debtor == "fc-beta")
    items = world.clearing(ALPHA).GetClearingStatementItems(
        statementId=answer.statementId, lineId=owed.lineId
    )
    assert [i.amount.amount for i in items.item] == [D("6.90"), D("6.90")]
    assert {i.pricePlanId for i in items.item} == {world.alpha_plan}
    assert all(i.sdrId.startswith("FRFCA") and i.energy == D("21.340") for i in items.item)
    assert items.pageInfo.totalCount == 2


def test_outsiders_see_nothing_of_the_pair(world: World) -> None:
    answer = world.statement(TNM, "gross")
    lines = answer.grossLines.line if answer.grossLines is not None else []
    assert not [g for g in lines if "fc-" in g.debtor + g.creditor]
    owed = next(g for g in world.statement(ALPHA, "gross").grossLines.line)
    with pytest.raises(zeep.exceptions.Fault) as raised:  # alpha's line, asked by tnm
        world.clearing(TNM).GetClearingStatementItems(
            statementId=answer.statementId, lineId=owed.lineId
        )
    code = raised.value.detail[0].findtext("{urn:gembus:common:v1}code")
    assert code in ("Client.UnknownStatement", "Client.UnknownLine")  # no party: not there
    plans = world.clearing(TNM).ListPricePlans(providerId="FR-FCB")
    assert plans.pageInfo.totalCount == 0


def test_price_plan_rules_are_declared_faults(world: World) -> None:
    overlapping = {
        "operatorId": "FR*FCA",
        "providerId": "FR-FCB",
        "currency": "EUR",
        "pricePerKwh": D("0.2500"),
        "validity": {
            "validFrom": datetime(2019, 1, 1, tzinfo=UTC),
            "validTo": datetime(2021, 1, 1, tzinfo=UTC),
        },
    }
    with pytest.raises(zeep.exceptions.Fault) as raised:
        world.clearing(BETA).SetPricePlan(pricePlan=overlapping)
    detail = raised.value.detail[0]
    assert detail.findtext("{urn:gembus:common:v1}code") == "Client.Overlap"
    assert detail.findtext("{urn:gembus:common:v1}field") == "validity"
    with pytest.raises(zeep.exceptions.Fault) as raised:
        world.clearing(TNM).SetPricePlan(
            pricePlan={**overlapping, "validity": {"validFrom": datetime(2030, 1, 1, tzinfo=UTC)}}
        )
    assert raised.value.detail[0].findtext("{urn:gembus:common:v1}code") == "Client.NotAuthorized"
    listed = world.clearing(BETA).ListPricePlans()
    assert {(p.data.operatorId, p.data.providerId) for p in listed.pricePlan} == {
        ("FR*FCA", "FR-FCB"),
        ("FR*FCB", "FR-FCA"),
    }


def test_the_clearing_run_issues_the_period_and_exports_it(world: World) -> None:
    month = world.period["start"].strftime("%Y-%m")
    out = gembus_cli(world.server.env, "clearing", "run", "--period", month)
    assert "issued CS-" in out and "EUR fc-beta owes fc-alpha 13.80 (2 SDRs)" in out
    statement_id = out.split("issued ", 1)[1].split(":", 1)[0]
    answer = world.statement(ALPHA, "netted")
    assert (answer.statementId, answer.status) == (statement_id, "issued")
    assert [(n.payer, n.netAmount.amount) for n in answer.netLines.line] == [
        ("fc-beta", D("12.30"))
    ]
    csv = gembus_cli(
        world.server.env, "clearing", "statement", statement_id, "--strategy", "netted"
    )
    assert any(
        row.split(",")[2:5] == ["fc-beta", "fc-alpha", "12.30"] for row in csv.splitlines()
    ), csv
    again = subprocess.run(
        [sys.executable, "-m", "gembus.cli", "clearing", "run", "--period", month],
        env=world.server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 1 and "already issued" in again.stderr
    plans = world.clearing(ALPHA).ListPricePlans(operatorId="FR*FCA").pricePlan
    assert [p.usedInStatement for p in plans] == [True]
