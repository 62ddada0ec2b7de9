"""Clearing statements on both databases, against a hand-computed example: three EVSPs
(tnm, bmw, alpha), two currencies, SDRs priced by bilateral plans, gross and netted.

The SDRs are written straight into the ``sdr`` table (the SDR forwarding tests cover how they
get there); what is checked here is pricing, selection (approved, in the period, received and
approved before the cut-off), rounding, netting and traceability to the SDR IDs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.clearing.financial import (
    NetLine,
    Period,
    PlanFilter,
    PricePlanData,
    Prices,
    StatementStatus,
    Window,
    net_lines,
    net_positions,
    run_statement,
    set_price_plan,
)
from domain.identifiers import OperatorId, ProviderId
from domain.marketplace import partners as uc
from domain.partners import Contact, PartnerData, Role
from gembus.bootstrap import Gembus
from gembus.errors import ConflictError
from persistence.tables import SdrRow
from tests.support.marketplace import partner

pytestmark = pytest.mark.postgres
D = Decimal
NOV = Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
CUT_OFF = datetime(2026, 12, 3, tzinfo=UTC)
OWNERS = {
    "DE*ICE": "ice-charging",
    "DE*BMW": "bmw-emobility",
    "FR*ALP": "alpha-energy",
    "NL-TNM": "tnm-mobility",
    "DE-BMW": "bmw-emobility",
    "FR-ALP": "alpha-energy",
}


@pytest.fixture
def gembus(gembus: Gembus) -> Gembus:
    """The demo partners, alpha-energy (operator and EVSP like bmw), and the plans."""
    data = PartnerData(
        "Alpha Energy SAS",
        (Role.EVSE_OPERATOR, Role.EVSP),
        Contact("ops@alpha.example"),
        (OperatorId.parse("FR*ALP"),),
        (ProviderId.parse("FR-ALP"),),
    )
    with gembus.uow() as uow:
        uc.register_partner(uow, gembus.vault, uc.SYSTEM_ACTOR, "alpha-energy", data, "alpha-pw-1")
        uow.commit()
    admin = partner(gembus.uow, "gembus-admin")
    plans = [  # (operator, provider, currency, prices)
        ("DE*ICE", "NL-TNM", "EUR", Prices(per_kwh=D("0.30"), per_session=D("0.50"))),
        ("DE*ICE", "DE-BMW", "EUR", Prices(per_minute=D("0.02"))),
        ("DE*BMW", "NL-TNM", "EUR", Prices(per_kwh=D("0.25"))),
        ("DE*BMW", "FR-ALP", "EUR", Prices(per_session=D("2.00"))),
        ("FR*ALP", "DE-BMW", "EUR", Prices(per_kwh=D("0.35"))),
        ("DE*BMW", "NL-TNM", "CHF", Prices(per_session=D("1.00"))),
        ("FR*ALP", "NL-TNM", "CHF", Prices(per_kwh=D("0.5"))),
    ]
    with gembus.uow() as uow:
        for operator, provider, currency, prices in plans:
            plan = PricePlanData(
                OperatorId.parse(operator),
                ProviderId.parse(provider),
                "charging",
                currency,
                prices,
                Window(datetime(2026, 1, 1, tzinfo=UTC)),
            )
            set_price_plan(uow, admin, None, plan, datetime.now(UTC))
        uow.commit()
    return gembus


def _sdr(
    gembus: Gembus,
    sdr_id: str,
    operator: str,
    provider: str,
    currency: str,
    energy: str,
    minutes: float = 30,
    *,
    status: str = "approved",
    start: datetime = datetime(2026, 11, 10, 18, 0, tzinfo=UTC),
    received: datetime = datetime(2026, 11, 11, tzinfo=UTC),
) -> None:
    with gembus.uow() as uow:
        uow.clearing.session.add(  # type: ignore[attr-defined]
            SdrRow(
                sdr_id=sdr_id,
                operator_partner_id=OWNERS[operator],
                operator_key=OperatorId.parse(operator).key,
                operator_wire=operator,
                provider_partner_id=OWNERS[provider],
                provider_key=ProviderId.parse(provider).key,
                provider_wire=provider,
                evse_id=f"{operator}*E1*1",
                contract_id=f"{provider}-C12345678-X",
                contract_key=f"{ProviderId.parse(provider).key}C12345678",
                service_type="charging",
                status=status,
                version=1,
                content_hash="0" * 64,
                session_start=start,
                session_end=start + timedelta(minutes=minutes),
                total_cost=D("9.99"),
                currency=currency,
                energy_kwh=D(energy),
                received_at=received,
                status_changed_at=received + timedelta(hours=1),
            )
        )
        uow.commit()


def _example(gembus: Gembus) -> None:
    _sdr(gembus, "DEICE-S1", "DE*ICE", "NL-TNM", "EUR", "10.000")  # 0.50 + 3.00 = 3.50
    _sdr(gembus, "DEICE-S2", "DE*ICE", "NL-TNM", "EUR", "22.345")  # 0.50 + 6.7035 -> 7.20
    _sdr(gembus, "DEICE-S3", "DE*ICE", "DE-BMW", "EUR", "5", 61.5)  # 0.02 x 3690 s / 60 = 1.23
    _sdr(gembus, "DEBMW-S4", "DE*BMW", "NL-TNM", "EUR", "40.002")  # 10.0005 -> 10.00
    _sdr(gembus, "DEBMW-S5", "DE*BMW", "FR-ALP", "EUR", "7")  # 2.00
    _sdr(gembus, "FRALP-S6", "FR*ALP", "DE-BMW", "EUR", "15.5")  # 5.425 -> 5.43 (half-up)
    _sdr(gembus, "DEBMW-S7", "DE*BMW", "NL-TNM", "CHF", "3")  # 1.00
    _sdr(gembus, "FRALP-S8", "FR*ALP", "NL-TNM", "CHF", "3.333")  # 1.6665 -> 1.67
    _sdr(gembus, "DEICE-S9", "DE*ICE", "FR-ALP", "EUR", "4")  # no plan: unpriced
    _sdr(gembus, "DEICE-S10", "DE*ICE", "NL-TNM", "EUR", "9", status="accepted")  # not approved
    _sdr(
        gembus,
        "DEICE-S11",
        "DE*ICE",
        "NL-TNM",
        "EUR",
        "9",
        start=datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
    )  # October
    _sdr(
        gembus,
        "DEICE-S12",
        "DE*ICE",
        "NL-TNM",
        "EUR",
        "9",
        received=datetime(2026, 12, 5, tzinfo=UTC),
    )  # after the cut-off


def _issue(gembus: Gembus) -> object:
    days: list[Period] = []
    with gembus.uow() as uow:
        statement = run_statement(
            uow, "gembus-admin", NOV, CUT_OFF, StatementStatus.ISSUED, CUT_OFF, days.append
        )
        uow.commit()
    assert days == NOV.days() and len(days) == 30  # progress once per day
    return statement


def test_gross_lines_against_the_hand_computed_example(gembus: Gembus) -> None:
    _example(gembus)
    statement = _issue(gembus)
    gross = {(g.currency, g.debtor, g.creditor): (g.amount, g.sdr_count) for g in statement.lines}  # type: ignore[attr-defined]
    assert gross == {
        ("EUR", "tnm-mobility", "ice-charging"): (D("10.70"), 2),
        ("EUR", "bmw-emobility", "ice-charging"): (D("1.23"), 1),
        ("EUR", "tnm-mobility", "bmw-emobility"): (D("10.00"), 1),
        ("EUR", "alpha-energy", "bmw-emobility"): (D("2.00"), 1),
        ("EUR", "bmw-emobility", "alpha-energy"): (D("5.43"), 1),
        ("CHF", "tnm-mobility", "bmw-emobility"): (D("1.00"), 1),
        ("CHF", "tnm-mobility", "alpha-energy"): (D("1.67"), 1),
    }
    assert (statement.sdr_count, statement.unpriced_count) == (8, 1)  # type: ignore[attr-defined]


def test_netting_and_positions_against_the_hand_computed_example(gembus: Gembus) -> None:
    _example(gembus)
    lines = _issue(gembus).lines  # type: ignore[attr-defined]
    net = {(n.currency, n.payer, n.payee): (n.net_amount, n.sdr_count) for n in net_lines(lines)}
    assert net == {
        ("EUR", "tnm-mobility", "ice-charging"): (D("10.70"), 2),
        ("EUR", "bmw-emobility", "ice-charging"): (D("1.23"), 1),
        ("EUR", "tnm-mobility", "bmw-emobility"): (D("10.00"), 1),
        ("EUR", "bmw-emobility", "alpha-energy"): (D("3.43"), 2),
        ("CHF", "tnm-mobility", "bmw-emobility"): (D("1.00"), 1),
        ("CHF", "tnm-mobility", "alpha-energy"): (D("1.67"), 1),
    }
    positions = {(p.currency, p.partner_id): p.position for p in net_positions(lines)}
    assert positions == {
        ("EUR", "ice-charging"): D("11.93"),
        ("EUR", "tnm-mobility"): D("-20.70"),
        ("EUR", "bmw-emobility"): D("5.34"),
        ("EUR", "alpha-energy"): D("3.43"),
        ("CHF", "tnm-mobility"): D("-2.67"),
        ("CHF", "bmw-emobility"): D("1.00"),
        ("CHF", "alpha-energy"): D("1.67"),
    }


def test_every_line_re_adds_from_its_items_and_names_its_sdrs(gembus: Gembus) -> None:
    _example(gembus)
    statement = _issue(gembus)
    with gembus.uow() as uow:
        for line in statement.lines:  # type: ignore[attr-defined]
            items = uow.clearing.items(statement, line, 0, 1000)  # type: ignore[arg-type]
            assert sum(i.amount for i in items) == line.amount
            assert len(items) == line.sdr_count
            assert all(i.line_id == line.line_id for i in items)
        bmw_to_alpha = next(
            g
            for g in statement.lines  # type: ignore[attr-defined]
            if (g.debtor, g.creditor) == ("bmw-emobility", "alpha-energy")
        )
        (item,) = uow.clearing.items(statement, bmw_to_alpha, 0, 10)  # type: ignore[arg-type]
    assert (item.sdr_id, item.operator_id, item.provider_id, item.amount) == (
        "FRALP-S6",
        "FR*ALP",
        "DE-BMW",
        D("5.43"),
    )


def test_an_issued_period_is_issued_once_and_its_plans_are_frozen(gembus: Gembus) -> None:
    _example(gembus)
    _issue(gembus)
    with gembus.uow() as uow, pytest.raises(ConflictError):
        run_statement(uow, "gembus-admin", NOV, CUT_OFF, StatementStatus.ISSUED, CUT_OFF)
    with gembus.uow() as uow:
        plans, _ = uow.clearing.list_plans(None, PlanFilter(), (0, 100))
    used = {
        (p.data.operator_id.wire, p.data.provider_id.wire, p.data.currency)
        for p in plans
        if p.used_in_statement
    }
    assert ("DE*ICE", "NL-TNM", "EUR") in used and len(used) == 7


def test_net_lines_are_in_contract_order(gembus: Gembus) -> None:
    _example(gembus)
    lines: list[NetLine] = net_lines(_issue(gembus).lines)  # type: ignore[attr-defined]
    assert [(n.currency, n.line_id) for n in lines] == sorted(
        (n.currency, n.line_id) for n in lines
    )
