"""Price plans on both databases: who may set them, placement, replacement, visibility."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.clearing.financial import (
    OverlapError,
    PlanFilter,
    PlanInUseError,
    PricePlan,
    PricePlanData,
    Prices,
    Window,
    list_price_plans,
    set_price_plan,
)
from domain.identifiers import OperatorId, ProviderId
from domain.marketplace.partners import Page
from gembus.bootstrap import Gembus
from gembus.errors import NotAuthorizedError, NotFoundError
from tests.support.marketplace import partner

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _data(
    start: datetime = T0,
    end: datetime | None = None,
    operator: str = "DE*ICE",
    provider: str = "NL-TNM",
    currency: str = "EUR",
) -> PricePlanData:
    return PricePlanData(
        OperatorId.parse(operator),
        ProviderId.parse(provider),
        "charging",
        currency,
        Prices(per_kwh=Decimal("0.29"), per_session=Decimal("0.50")),
        Window(start, end),
        "RA-ICE-TNM-1",
    )


def _set(gembus: Gembus, who: str, data: PricePlanData, plan_id: str | None = None) -> PricePlan:
    with gembus.uow() as uow:
        plan = set_price_plan(uow, partner(gembus.uow, who), plan_id, data, datetime.now(UTC))
        uow.commit()
    return plan


def _list(gembus: Gembus, who: str, f: PlanFilter | None = None) -> list[PricePlan]:
    with gembus.uow() as uow:
        plans, total = list_price_plans(uow, partner(gembus.uow, who), f or PlanFilter(), Page())
    assert total == len(plans)
    return plans


def test_either_party_sets_the_plan_and_both_see_it(gembus: Gembus) -> None:
    plan = _set(gembus, "ice-charging", _data())
    stored = _list(gembus, "tnm-mobility")
    assert [p.plan_id for p in stored] == [plan.plan_id]
    assert stored[0].data.prices == Prices(per_kwh=Decimal("0.29"), per_session=Decimal("0.50"))
    assert stored[0].data.window == Window(T0) and stored[0].set_by == "ice-charging"
    assert _list(gembus, "bmw-emobility") == []  # not a party
    assert len(_list(gembus, "gembus-admin")) == 1  # the marketplace operator sees all
    with pytest.raises(NotAuthorizedError):
        _set(gembus, "bmw-emobility", _data())


def test_a_new_plan_ends_the_open_ended_one_it_starts_inside(gembus: Gembus) -> None:
    first = _set(gembus, "ice-charging", _data())
    second = _set(gembus, "tnm-mobility", _data(T0 + timedelta(days=10)))
    windows = {p.plan_id: p.data.window for p in _list(gembus, "ice-charging")}
    assert windows == {
        first.plan_id: Window(T0, T0 + timedelta(days=10)),
        second.plan_id: Window(T0 + timedelta(days=10)),
    }
    with pytest.raises(OverlapError):
        _set(gembus, "ice-charging", _data(T0 + timedelta(days=2), T0 + timedelta(days=12)))
    other_currency = _set(gembus, "ice-charging", _data(currency="CHF"))  # its own line
    valid = _list(gembus, "ice-charging", PlanFilter(valid_at=T0 + timedelta(days=3)))
    assert {p.plan_id for p in valid} == {first.plan_id, other_currency.plan_id}


def test_replacing_a_plan_keeps_its_id_unless_a_statement_used_it(gembus: Gembus) -> None:
    plan = _set(gembus, "ice-charging", _data())
    replaced = _set(gembus, "tnm-mobility", _data(T0 - timedelta(days=1)), plan.plan_id)
    assert replaced.plan_id == plan.plan_id and replaced.set_by == "tnm-mobility"
    assert [p.data.window for p in _list(gembus, "ice-charging")] == [
        Window(T0 - timedelta(days=1))
    ]
    with gembus.uow() as uow:
        uow.clearing.update_plan(dataclasses.replace(replaced, used_in_statement=True))
        uow.commit()
    with pytest.raises(PlanInUseError):
        _set(gembus, "ice-charging", _data(), plan.plan_id)
    with pytest.raises(NotFoundError):
        _set(gembus, "ice-charging", _data(), "PP-NO-SUCH-PLAN")


def test_a_plan_needs_owners_for_both_identifiers(gembus: Gembus) -> None:
    with pytest.raises(NotFoundError) as raised:
        _set(gembus, "gembus-admin", _data(provider="FR-XYZ"))
    assert raised.value.field == "pricePlan/providerId"
